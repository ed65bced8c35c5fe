/**
 * One op of a BATCH record: reading its header and applying it to a table. Shared by recovery
 * (replay.ts) and by a new worker finishing its predecessor's last batch (partition-log.ts), so
 * both apply exactly the same rules.
 *
 * Apply is pure: it never looks at the clock. An expired key is dropped by whoever deletes it
 * (the worker logs those deletes) or by recovery's final sweep (recovery.ts), never while ops
 * are replayed: an EXPIRE that extended a key's life must find the key, whatever time the
 * replay runs at.
 */
import { HashTable, PUT_NOT_FOUND, PUT_OK, type PutResult } from '../hashmap/index.js';
import {
  O_FLAGS, O_HASH, O_KEY_BYTES, O_OP, O_VALUE_BYTES, OP_DELETE, OP_EXPIRE, OP_EXPIRY_BYTES, OP_HEADER_BYTES, OP_PERSIST, OP_PUT,
  OPF_HAS_EXPIRY, OPF_KEEP_EXPIRY, OPF_KNOWN, OPF_VALUE_CODEC_MAX, OPF_VALUE_CODEC_SHIFT, readU32,
} from './format.js';

const U32_SPAN = 0x1_0000_0000;

export interface LoggedOp {
  op: number;
  flags: number;
  /** Absolute ms since the epoch, 0 when the op carries none. */
  expiry_ms: number;
  hash: number;
  key_offset: number;
  key_length: number;
  value_length: number;
  /** A PUT's value codec id (0 raw), from flag bits 2..4 (format version 3). */
  value_codec: number;
}

/** Reads the op at `at` into `out`; returns the offset after it, or -1 if it does not fit before `end` or is not an op this code knows. */
export function readLoggedOp(bytes: Uint8Array, at: number, end: number, out: LoggedOp): number {
  if (at + OP_HEADER_BYTES > end) return -1;
  const op = bytes[at + O_OP]!;
  const flags = bytes[at + O_FLAGS]!;
  if ((op !== OP_PUT && op !== OP_DELETE && op !== OP_EXPIRE && op !== OP_PERSIST) || (flags & ~OPF_KNOWN) !== 0) return -1;
  out.op = op;
  out.flags = flags;
  out.value_codec = (flags >>> OPF_VALUE_CODEC_SHIFT) & OPF_VALUE_CODEC_MAX;
  out.key_length = bytes[at + O_KEY_BYTES]! | (bytes[at + O_KEY_BYTES + 1]! << 8);
  out.value_length = readU32(bytes, at + O_VALUE_BYTES);
  out.hash = readU32(bytes, at + O_HASH);
  let key_offset = at + OP_HEADER_BYTES;
  out.expiry_ms = 0;
  if ((flags & OPF_HAS_EXPIRY) !== 0) {
    if (key_offset + OP_EXPIRY_BYTES > end) return -1;
    out.expiry_ms = readU32(bytes, key_offset + 4) * U32_SPAN + readU32(bytes, key_offset);
    key_offset += OP_EXPIRY_BYTES;
  }
  out.key_offset = key_offset;
  const next = key_offset + out.key_length + out.value_length;
  return next > end ? -1 : next;
}

/**
 * Applies one op. Returns PUT_OK, PUT_NOT_FOUND (an EXPIRE/PERSIST/DELETE of an absent key: not
 * an error on replay) or a failure (OUT_OF_MEMORY ...).
 */
export function applyLoggedOp(table: HashTable, bytes: Uint8Array, op: LoggedOp): PutResult {
  const { hash, key_offset, key_length } = op;
  switch (op.op) {
    case OP_PUT: {
      let expiry_ms = op.expiry_ms;
      if ((op.flags & OPF_KEEP_EXPIRY) !== 0) expiry_ms = table.expiry(table.find(hash, bytes, key_offset, key_length));
      return table.put(hash, bytes, key_offset, key_length, bytes, key_offset + key_length, op.value_length, expiry_ms, op.value_codec);
    }
    case OP_DELETE: return table.delete(hash, bytes, key_offset, key_length) ? PUT_OK : PUT_NOT_FOUND;
    case OP_EXPIRE: return table.setExpiry(hash, bytes, key_offset, key_length, op.expiry_ms);
    default: return table.setExpiry(hash, bytes, key_offset, key_length, 0);
  }
}

/**
 * Encodes file headers and records (format.ts) into one growable, reused byte buffer.
 *
 * A partition worker encodes a whole request packet's writes here and hands the buffer to
 * one write call: no allocation per op, and each key and value is copied exactly once (from
 * the packet into this buffer). The buffer only grows (doubling), so after warm-up a batch
 * allocates nothing.
 */
import { crc32c } from './crc32c.js';
import {
  FH_CRC, FH_GENERATION, FH_MAGIC, FH_PARTITION, FH_VERSION, FH_WORKERS, FILE_HEADER_BYTES, FORMAT_VERSION, O_HASH,
  O_KEY_BYTES, O_OP, O_VALUE_BYTES, O_FLAGS, OP_EXPIRY_BYTES, OP_HEADER_BYTES, OPF_HAS_EXPIRY, R_COUNT, R_CRC, R_PAYLOAD_BYTES, R_TYPE, RECORD_HEADER_BYTES, writeU32,
} from './format.js';

const INITIAL_BYTES = 64 * 1024;
/** Copies of at most this many bytes use a loop instead of set(subarray()). */
const COPY_LOOP_BYTES_MAX = 32;

export class RecordBuffer {
  bytes = new Uint8Array(INITIAL_BYTES);
  /** Bytes encoded so far. */
  length = 0;
  private record_start = -1;
  private record_count = 0;

  reset(): void {
    this.length = 0;
    this.record_start = -1;
  }

  get in_record(): boolean {
    return this.record_start >= 0;
  }

  /** Items (ops or u32s) appended to the open record so far. */
  get in_record_items(): number {
    return this.record_start >= 0 ? this.record_count : 0;
  }

  /** Appends a 32-byte file header. */
  writeFileHeader(magic: string, workers: number, partition: number, generation: number): void {
    this.ensure(FILE_HEADER_BYTES);
    const at = this.length;
    const b = this.bytes;
    b.fill(0, at, at + FILE_HEADER_BYTES);
    for (let i = 0; i < magic.length; i++) b[at + FH_MAGIC + i] = magic.charCodeAt(i);
    writeU32(b, at + FH_VERSION, FORMAT_VERSION);
    writeU32(b, at + FH_WORKERS, workers);
    writeU32(b, at + FH_PARTITION, partition);
    writeU32(b, at + FH_GENERATION, generation);
    writeU32(b, at + FH_CRC, crc32c(0, b, at, at + FH_CRC));
    this.length = at + FILE_HEADER_BYTES;
  }

  beginRecord(type: number): void {
    if (this.record_start >= 0) throw new Error('RecordBuffer: record already open');
    this.ensure(RECORD_HEADER_BYTES);
    const at = this.length;
    this.bytes.fill(0, at, at + RECORD_HEADER_BYTES);
    this.bytes[at + R_TYPE] = type;
    this.record_start = at;
    this.record_count = 0;
    this.length = at + RECORD_HEADER_BYTES;
  }

  /**
   * Appends one op (BATCH records): header, the expiry if `flags` has OPF_HAS_EXPIRY, then the
   * key and value bytes from `source`.
   */
  appendOp(
    op: number, hash: number, source: Uint8Array, key_offset: number, key_length: number, value_offset: number, value_length: number,
    flags = 0, expiry_ms = 0,
  ): void {
    const expiry_bytes = (flags & OPF_HAS_EXPIRY) !== 0 ? OP_EXPIRY_BYTES : 0;
    this.ensure(OP_HEADER_BYTES + expiry_bytes + key_length + value_length);
    const b = this.bytes;
    const at = this.length;
    b[at + O_OP] = op;
    b[at + O_FLAGS] = flags;
    b[at + O_KEY_BYTES] = key_length & 0xff;
    b[at + O_KEY_BYTES + 1] = key_length >>> 8;
    writeU32(b, at + O_VALUE_BYTES, value_length);
    writeU32(b, at + O_HASH, hash);
    const key_at = at + OP_HEADER_BYTES + expiry_bytes;
    if (expiry_bytes > 0) {
      writeU32(b, at + OP_HEADER_BYTES, expiry_ms % 0x1_0000_0000);
      writeU32(b, at + OP_HEADER_BYTES + 4, Math.floor(expiry_ms / 0x1_0000_0000));
    }
    copy(b, key_at, source, key_offset, key_length);
    copy(b, key_at + key_length, source, value_offset, value_length);
    this.length = key_at + key_length + value_length;
    this.record_count++;
  }

  /** Appends one u32 item (ABORT records). */
  appendU32(value: number): void {
    this.ensure(4);
    writeU32(this.bytes, this.length, value);
    this.length += 4;
    this.record_count++;
  }

  /** Appends raw bytes to the open record (a compressed payload); counts no item. */
  appendBytes(source: Uint8Array): void {
    this.ensure(source.length);
    this.bytes.set(source, this.length);
    this.length += source.length;
  }

  /** Closes the open record: fills in length, count (or `count` if given) and checksum. */
  endRecord(count?: number): void {
    const start = this.record_start;
    if (start < 0) throw new Error('RecordBuffer: no record open');
    const b = this.bytes;
    writeU32(b, start + R_PAYLOAD_BYTES, this.length - start - RECORD_HEADER_BYTES);
    writeU32(b, start + R_COUNT, count ?? this.record_count);
    const header_crc = crc32c(0, b, start, start + R_CRC);
    writeU32(b, start + R_CRC, crc32c(header_crc, b, start + RECORD_HEADER_BYTES, this.length));
    this.record_start = -1;
  }

  /** Drops an open record (e.g. a batch with no writes in it). */
  cancelRecord(): void {
    if (this.record_start < 0) return;
    this.length = this.record_start;
    this.record_start = -1;
  }

  private ensure(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}

function copy(target: Uint8Array, target_offset: number, source: Uint8Array, source_offset: number, length: number): void {
  if (length <= COPY_LOOP_BYTES_MAX) {
    for (let i = 0; i < length; i++) target[target_offset + i] = source[source_offset + i]!;
  } else {
    target.set(source.subarray(source_offset, source_offset + length), target_offset);
  }
}

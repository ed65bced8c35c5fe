/**
 * Applies BATCH records to hash tables: recovery's inner loop.
 *
 * Each op is routed by its stored murmur3 hash to `tables[hash % tables.length]`, so the same
 * loop loads a partition's own files (one table) and re-partitions a directory written with
 * another worker count (all tables). Puts and deletes are absolute, so applying a record
 * twice, or over a fuzzy snapshot that already holds some of its effects, gives the same
 * result as applying it once. Ops listed in the record's ABORT are skipped.
 */
import { HashTable, PUT_NOT_FOUND, PUT_OK } from '../hashmap/index.js';
import { PersistenceError, PersistenceErrorCode } from './errors.js';
import { OP_DELETE, OP_PUT, readU32 } from './format.js';
import { applyLoggedOp, readLoggedOp, type LoggedOp } from './logged-op.js';
import type { RecordView } from './record-reader.js';

export interface ReplayCounts {
  puts: number;
  deletes: number;
  /** EXPIRE and PERSIST ops. */
  expiries: number;
  skipped: number;
}

/** Applies one BATCH record. Throws PersistenceError when a put does not fit or the record is malformed. */
export function applyBatch(record: RecordView, tables: HashTable[], counts: ReplayCounts, source: string): void {
  const b = record.bytes;
  const end = record.payload_offset + record.payload_bytes;
  let at = record.payload_offset;
  let abort_next = record.abort_count > 0 ? readU32(b, record.abort_offset) : -1;
  let abort_seen = 0;
  const op: LoggedOp = { op: 0, flags: 0, expiry_ms: 0, hash: 0, key_offset: 0, key_length: 0, value_length: 0, value_codec: 0 };
  for (let i = 0; i < record.count; i++) {
    at = readLoggedOp(b, at, end, op);
    if (at < 0) throw malformed(source);
    if (i === abort_next) {
      abort_seen++;
      abort_next = abort_seen < record.abort_count ? readU32(b, record.abort_offset + 4 * abort_seen) : -1;
      counts.skipped++;
      continue;
    }
    const table = tables[op.hash % tables.length]!;
    const result = applyLoggedOp(table, b, op);
    if (result !== PUT_OK && result !== PUT_NOT_FOUND) {
      throw new PersistenceError(PersistenceErrorCode.OUT_OF_MEMORY, `${source}: the data does not fit in --max-memory (partition ${op.hash % tables.length} is full after ${table.keys} keys); start with a larger --max-memory`);
    }
    if (op.op === OP_PUT) counts.puts++;
    else if (op.op === OP_DELETE) counts.deletes++;
    else counts.expiries++;
  }
  if (at !== end) throw malformed(source);
}

/**
 * Drops every key whose expiry is at or before `now_ms` (the end of recovery: keys that
 * expired while the node was down are not loaded). Returns how many were dropped.
 */
export function dropExpired(table: HashTable, now_ms: number): number {
  if (table.expiring_keys === 0) return 0;
  const result = new Float64Array(3);
  // One pass over both slot arrays (the step is bounded by their sizes).
  table.expireStep(0, 0x1000_0000, now_ms, result);
  return result[2]!;
}

function malformed(source: string): PersistenceError {
  return new PersistenceError(PersistenceErrorCode.CORRUPT, `${source}: a record passes its checksum but its ops do not add up (written by a different program?)`);
}

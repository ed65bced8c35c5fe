/**
 * Applies BATCH records to hash tables: recovery's inner loop.
 *
 * Each op is routed by its stored murmur3 hash to `tables[hash % tables.length]`, so the same
 * loop loads a partition's own files (one table) and re-partitions a directory written with
 * another worker count (all tables). Puts and deletes are absolute, so applying a record
 * twice, or over a fuzzy snapshot that already holds some of its effects, gives the same
 * result as applying it once. Ops listed in the record's ABORT are skipped.
 */
import { HashTable, PUT_OK } from '../hashmap/index.js';
import { PersistenceError, PersistenceErrorCode } from './errors.js';
import { O_HASH, O_KEY_BYTES, O_OP, O_VALUE_BYTES, OP_DELETE, OP_HEADER_BYTES, OP_PUT, readU32 } from './format.js';
import type { RecordView } from './record-reader.js';

export interface ReplayCounts {
  puts: number;
  deletes: number;
  skipped: number;
}

/** Applies one BATCH record. Throws PersistenceError when a put does not fit or the record is malformed. */
export function applyBatch(record: RecordView, tables: HashTable[], counts: ReplayCounts, source: string): void {
  const b = record.bytes;
  const end = record.payload_offset + record.payload_bytes;
  let at = record.payload_offset;
  let abort_next = record.abort_count > 0 ? readU32(b, record.abort_offset) : -1;
  let abort_seen = 0;
  for (let i = 0; i < record.count; i++) {
    if (at + OP_HEADER_BYTES > end) throw malformed(source);
    const op = b[at + O_OP]!;
    const key_length = b[at + O_KEY_BYTES]! | (b[at + O_KEY_BYTES + 1]! << 8);
    const value_length = readU32(b, at + O_VALUE_BYTES);
    const hash = readU32(b, at + O_HASH);
    const key_offset = at + OP_HEADER_BYTES;
    at = key_offset + key_length + value_length;
    if (at > end) throw malformed(source);
    if (i === abort_next) {
      abort_seen++;
      abort_next = abort_seen < record.abort_count ? readU32(b, record.abort_offset + 4 * abort_seen) : -1;
      counts.skipped++;
      continue;
    }
    const table = tables[hash % tables.length]!;
    if (op === OP_PUT) {
      if (table.put(hash, b, key_offset, key_length, b, key_offset + key_length, value_length) !== PUT_OK) {
        throw new PersistenceError(PersistenceErrorCode.OUT_OF_MEMORY, `${source}: the data does not fit in --max-memory (partition ${hash % tables.length} is full after ${table.keys} keys); start with a larger --max-memory`);
      }
      counts.puts++;
    } else if (op === OP_DELETE) {
      table.delete(hash, b, key_offset, key_length);
      counts.deletes++;
    } else {
      throw malformed(source);
    }
  }
  if (at !== end) throw malformed(source);
}

function malformed(source: string): PersistenceError {
  return new PersistenceError(PersistenceErrorCode.CORRUPT, `${source}: a record passes its checksum but its ops do not add up (written by a different program?)`);
}

/**
 * Reads a log or snapshot file record by record, verifying every checksum.
 *
 * A record that is incomplete or fails its checksum is either a TORN TAIL (nothing valid
 * follows it: the last write was cut off by a crash; the caller truncates it) or CORRUPTION
 * (a valid record follows somewhere after it). Corruption stops recovery with the file name
 * and byte offset, unless `repair` is set: then the bad bytes up to the next valid record are
 * skipped and reported. A BATCH record is handed over together with the ABORT record right
 * after it, if any, so replay can skip puts that failed with OUT_OF_MEMORY.
 */
import { statSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { crc32c } from './crc32c.js';
import { PersistenceError, PersistenceErrorCode } from './errors.js';
import { FileWindow } from './file-window.js';
import {
  FH_CRC, FH_GENERATION, FH_MAGIC, FH_MAGIC_BYTES, FH_PARTITION, FH_VERSION, FH_WORKERS, FILE_HEADER_BYTES, FORMAT_VERSION, FORMAT_VERSION_OLDEST,
  DEFLATE_RAW_BYTES_FIELD, R_COUNT, R_CRC, R_PAYLOAD_BYTES, R_RESERVED, R_TYPE, readU32, RECORD_ABORT, RECORD_BATCH, RECORD_BATCH_DEFLATE,
  RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, RECORD_SNAPSHOT_END,
} from './format.js';

export interface FileExpectation {
  magic: string;
  workers: number;
  partition: number;
  generation: number;
}

/** One record as seen by the visitor; byte views are valid only during the call. */
export interface RecordView {
  type: number;
  count: number;
  bytes: Uint8Array;
  payload_offset: number;
  payload_bytes: number;
  /** The following ABORT record's indices (u32 each), or abort_count 0. */
  abort_offset: number;
  abort_count: number;
}

export interface ReadResult {
  file_bytes: number;
  /** Offset just past the last good record: the file's valid length. */
  valid_bytes: number;
  torn_bytes: number;
  /** Bytes skipped in --repair mode, and where. */
  dropped: { offset: number; bytes: number }[];
  records: number;
  /** Count of the SNAPSHOT_END record, or -1 if none was read. */
  snapshot_end_count: number;
  header_torn: boolean;
}

export interface ReadOptions {
  repair: boolean;
}

/** Reads `path`; calls `visit` for every BATCH record (with its ABORT) in order. */
export function readRecordFile(path: string, expect: FileExpectation, options: ReadOptions, visit: (record: RecordView) => void): ReadResult {
  const size = statSync(path).size;
  const result: ReadResult = { file_bytes: size, valid_bytes: 0, torn_bytes: 0, dropped: [], records: 0, snapshot_end_count: -1, header_torn: false };
  if (size < FILE_HEADER_BYTES) {
    // A crash right after the file was created: nothing in it was ever acknowledged.
    result.torn_bytes = size;
    result.header_torn = true;
    return result;
  }
  const window = new FileWindow(path, size);
  try {
    checkHeader(window, path, expect);
    result.valid_bytes = FILE_HEADER_BYTES;
    readRecords(window, path, options, result, visit);
  } finally {
    window.close();
  }
  return result;
}

function checkHeader(window: FileWindow, path: string, expect: FileExpectation): void {
  window.ensure(0, FILE_HEADER_BYTES);
  const b = window.bytes;
  if (readU32(b, FH_CRC) !== crc32c(0, b, 0, FH_CRC)) {
    throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: file header (bytes 0..${FILE_HEADER_BYTES}) fails its checksum; start with --repair to drop this file`);
  }
  const magic = String.fromCharCode(...b.subarray(FH_MAGIC, FH_MAGIC + FH_MAGIC_BYTES));
  const version = readU32(b, FH_VERSION);
  const fields = `magic ${JSON.stringify(magic)}, version ${version}, workers ${readU32(b, FH_WORKERS)}, partition ${readU32(b, FH_PARTITION)}, generation ${readU32(b, FH_GENERATION)}`;
  if (magic !== expect.magic || version < FORMAT_VERSION_OLDEST || version > FORMAT_VERSION || readU32(b, FH_WORKERS) !== expect.workers ||
    readU32(b, FH_PARTITION) !== expect.partition || readU32(b, FH_GENERATION) !== expect.generation) {
    throw new PersistenceError(PersistenceErrorCode.MISMATCH, `${path}: header says ${fields}; expected magic ${JSON.stringify(expect.magic)}, version ${FORMAT_VERSION_OLDEST}..${FORMAT_VERSION}, workers ${expect.workers}, partition ${expect.partition}, generation ${expect.generation}`);
  }
}

/** Length of the valid record at `offset` (header + payload), or 0 if there is none. */
function validRecordAt(window: FileWindow, offset: number): number {
  if (!window.ensure(offset, RECORD_HEADER_BYTES)) return 0;
  let b = window.bytes;
  let at = offset - window.base;
  const type = b[at + R_TYPE]!;
  if (type < RECORD_BATCH || type > RECORD_BATCH_DEFLATE) return 0;
  if (b[at + R_RESERVED] !== 0 || b[at + R_RESERVED + 1] !== 0 || b[at + R_RESERVED + 2] !== 0) return 0;
  const payload_bytes = readU32(b, at + R_PAYLOAD_BYTES);
  if (payload_bytes > RECORD_PAYLOAD_BYTES_MAX) return 0;
  if (type === RECORD_ABORT && payload_bytes !== readU32(b, at + R_COUNT) * 4) return 0;
  if (type === RECORD_SNAPSHOT_END && payload_bytes !== 0) return 0;
  if (type === RECORD_BATCH_DEFLATE && payload_bytes < DEFLATE_RAW_BYTES_FIELD) return 0;
  const length = RECORD_HEADER_BYTES + payload_bytes;
  if (!window.ensure(offset, length)) return 0;
  b = window.bytes;
  at = offset - window.base;
  const header_crc = crc32c(0, b, at, at + R_CRC);
  return crc32c(header_crc, b, at + RECORD_HEADER_BYTES, at + length) === readU32(b, at + R_CRC) ? length : 0;
}

/**
 * The BATCH payload inside a BATCH_DEFLATE record at `at` (already checksummed). A record whose
 * checksum holds but whose deflated bytes do not inflate to the length it states was written
 * wrong, not torn: that stops recovery (no --repair can tell which entries it held).
 */
function inflateRecord(bytes: Uint8Array, at: number, length: number, path: string, offset: number): Uint8Array {
  const payload_at = at + RECORD_HEADER_BYTES;
  const raw_bytes = readU32(bytes, payload_at);
  let inflated: Buffer;
  try {
    inflated = inflateSync(bytes.subarray(payload_at + DEFLATE_RAW_BYTES_FIELD, at + length), { maxOutputLength: Math.max(1, raw_bytes) });
  } catch (error) {
    throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: deflated record at byte offset ${offset} does not inflate (${(error as Error).message})`);
  }
  if (inflated.length !== raw_bytes) {
    throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: deflated record at byte offset ${offset} inflates to ${inflated.length} bytes, its header says ${raw_bytes}`);
  }
  return inflated;
}

/** First offset after `from` holding a valid record, or -1. Byte by byte: only on the damage path. */
function findNextValid(window: FileWindow, from: number): number {
  for (let offset = from + 1; offset + RECORD_HEADER_BYTES <= window.size; offset++) {
    if (validRecordAt(window, offset) > 0) return offset;
  }
  return -1;
}

function readRecords(window: FileWindow, path: string, options: ReadOptions, result: ReadResult, visit: (record: RecordView) => void): void {
  const view: RecordView = { type: 0, count: 0, bytes: window.bytes, payload_offset: 0, payload_bytes: 0, abort_offset: 0, abort_count: 0 };
  let offset = FILE_HEADER_BYTES;
  while (offset < window.size) {
    const length = validRecordAt(window, offset);
    if (length === 0) {
      const next = findNextValid(window, offset);
      if (next < 0) {
        result.torn_bytes = window.size - offset;
        return;
      }
      if (!options.repair) {
        throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: damaged record at byte offset ${offset} (${next - offset} bytes up to the next valid record at ${next}); start with --repair to drop what cannot be read`);
      }
      result.dropped.push({ offset, bytes: next - offset });
      offset = next;
      continue;
    }
    let at = offset - window.base;
    const type = window.bytes[at + R_TYPE]!;
    let consumed = length;
    if (type === RECORD_BATCH) {
      const abort_length = validRecordAt(window, offset + length);
      const has_abort = abort_length > 0 && window.bytes[offset + length - window.base + R_TYPE] === RECORD_ABORT;
      // Both records must sit in the window at once: re-anchor it at this record.
      if (!window.ensure(offset, length + (has_abort ? abort_length : 0))) throw new Error('unreachable: validated range');
      at = offset - window.base;
      view.bytes = window.bytes;
      view.type = type;
      view.count = readU32(window.bytes, at + R_COUNT);
      view.payload_offset = at + RECORD_HEADER_BYTES;
      view.payload_bytes = length - RECORD_HEADER_BYTES;
      view.abort_offset = has_abort ? at + length + RECORD_HEADER_BYTES : 0;
      view.abort_count = has_abort ? readU32(window.bytes, at + length + R_COUNT) : 0;
      visit(view);
      if (has_abort) {
        consumed += abort_length;
        result.records++;
      }
    } else if (type === RECORD_BATCH_DEFLATE) {
      view.bytes = inflateRecord(window.bytes, at, length, path, offset);
      view.type = RECORD_BATCH;
      view.count = readU32(window.bytes, at + R_COUNT);
      view.payload_offset = 0;
      view.payload_bytes = view.bytes.length;
      view.abort_offset = 0;
      view.abort_count = 0;
      visit(view);
    } else if (type === RECORD_SNAPSHOT_END) {
      result.snapshot_end_count = readU32(window.bytes, at + R_COUNT);
    }
    // An ABORT not right after a BATCH refers to nothing: the writer never produces one.
    result.records++;
    offset += consumed;
    result.valid_bytes = offset;
  }
}

/**
 * Writes one partition's snapshot by scanning its table in bounded steps (HashTable.scan),
 * so a worker can interleave the steps with serving batches.
 *
 * Each step encodes about `entries_max` live entries as one BATCH record of PUTs (the same
 * record format as the log) and writes it to `...snap.tmp`. `finish()` appends SNAPSHOT_END,
 * fsyncs, renames the file into place and fsyncs the directory: a `.snap` name therefore
 * always means a complete, durable snapshot. The snapshot is fuzzy (keys changed during the
 * scan may appear with either value); the log started just before the scan fixes that up.
 *
 * With `compress`, a step's record is written as RECORD_BATCH_DEFLATE when deflate saves at
 * least an eighth of it (format.ts): 3.4-4.5x fewer bytes for small text values, which clients
 * leave raw below their 4 KiB threshold (docs/PERFORMANCE.md, "Compressing snapshots"). The
 * worker calls stepAsync with a DeflateRecord that sends the record to the node's background
 * pool (src/node/codec-pool.ts, through the main thread) and keeps serving packets until it
 * comes back; recovery (nothing else running) calls step, which deflates inline. A record
 * whose sample looks random, or that did not shrink enough, is written raw, and after one that
 * did not shrink the next DEFLATE_BACKOFF_RECORDS are not tried: incompressible data costs the
 * sample plus about one deflate in 17.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { HashTable, SCAN_END } from '../hashmap/index.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import { fsyncDirectory } from './data-dir.js';
import { looksCompressible, worthCompressed } from '../protocol/value-codec.js';
import { fileName, OP_PUT, OPF_HAS_EXPIRY, R_COUNT, readU32, RECORD_BATCH, RECORD_BATCH_DEFLATE, RECORD_HEADER_BYTES, RECORD_SNAPSHOT_END, SNAPSHOT_MAGIC, valueCodecFlags } from './format.js';
import { RecordBuffer } from './record-buffer.js';

/** Bytes one step aims to copy, whatever the value sizes: keeps each pause short. */
const STEP_BYTES_TARGET = 256 * 1024;
const STEP_ENTRIES_MAX = 4096;
/** Scratch for one entry's key and value, grown to the largest entry seen. */
const SCRATCH_BYTES_INITIAL = 64 * 1024;
/** Deflate level 1, as values (docs/PERFORMANCE.md, "Value compression: which codec"). */
const DEFLATE_OPTIONS = { level: 1 } as const;
/** Records written raw, untried, after one that did not shrink by an eighth. */
const DEFLATE_BACKOFF_RECORDS = 16;

/** Deflates a record payload elsewhere: the deflated bytes if they save an eighth, else null. `payload` is the callee's to keep (or move). */
export type DeflateRecord = (payload: Uint8Array) => Promise<Uint8Array | null>;

/** One step's record, encoded raw in the writer's buffer, not yet written. */
interface PendingRecord {
  payload: Uint8Array;
  count: number;
}

export class SnapshotWriter {
  readonly temporary_path: string;
  readonly final_path: string;
  bytes_written = 0;
  entries = 0;
  /** Records written deflated, and raw (for the report and tests). */
  records_deflated = 0;
  records_raw = 0;
  private readonly compress: boolean;
  private backoff_records = 0;
  private readonly dir: string;
  private readonly table: HashTable;
  private readonly buffer = new RecordBuffer();
  private scratch = new Uint8Array(SCRATCH_BYTES_INITIAL);
  private fd = -1;
  private cursor = 0;
  private readonly visit: (ref: number) => void;

  constructor(dir: string, workers: number, partition: number, generation: number, table: HashTable, compress = false) {
    this.dir = dir;
    this.compress = compress;
    this.table = table;
    this.temporary_path = join(dir, fileName(workers, partition, generation, 'snap.tmp'));
    this.final_path = join(dir, fileName(workers, partition, generation, 'snap'));
    this.fd = openSync(this.temporary_path, 'w');
    this.buffer.writeFileHeader(SNAPSHOT_MAGIC, workers, partition, generation);
    this.flush();
    this.visit = (ref) => this.encodeEntry(ref);
  }

  /** Copies the next bounded slice of the table, deflating inline. Returns true when the scan is complete. */
  step(): boolean {
    const record = this.scanSlice();
    if (record !== null) this.seal(record, this.tryDeflate(record) ? deflateSync(record.payload, DEFLATE_OPTIONS) : null);
    this.flush();
    return this.cursor === SCAN_END;
  }

  /**
   * As step, but `deflate` runs elsewhere: the caller's thread serves other work meanwhile. The
   * slice is copied out of the table before that, so the table may change. One at a time: the
   * record waits in this writer's buffer.
   */
  async stepAsync(deflate: DeflateRecord): Promise<boolean> {
    const record = this.scanSlice();
    // A copy for the pool: the payload is a view into this writer's buffer.
    if (record !== null) this.seal(record, this.tryDeflate(record) ? await deflate(record.payload.slice()) : null);
    this.flush();
    return this.cursor === SCAN_END;
  }

  /** Encodes about one step of entries as a raw BATCH record in the buffer; null when the slice held none. */
  private scanSlice(): PendingRecord | null {
    if (this.cursor === SCAN_END) return null;
    const stats_keys = this.table.keys;
    const average_bytes = stats_keys > 0 ? Math.max(16, this.table.stats().payload_bytes / stats_keys) : 16;
    const entries_max = Math.max(1, Math.min(STEP_ENTRIES_MAX, Math.floor(STEP_BYTES_TARGET / average_bytes)));
    // The buffer holds nothing else: flush() empties it after the file header and every record.
    if (this.buffer.length !== 0) throw new Error('SnapshotWriter: buffer not flushed before a step');
    this.buffer.beginRecord(RECORD_BATCH);
    this.cursor = this.table.scan(this.cursor, entries_max, this.visit);
    if (this.buffer.in_record_items === 0) {
      this.buffer.cancelRecord();
      return null;
    }
    this.buffer.endRecord();
    return { payload: this.buffer.bytes.subarray(RECORD_HEADER_BYTES, this.buffer.length), count: readU32(this.buffer.bytes, R_COUNT) };
  }

  private tryDeflate(record: PendingRecord): boolean {
    if (!this.compress) return false;
    if (this.backoff_records > 0) {
      this.backoff_records--;
      return false;
    }
    return looksCompressible(record.payload);
  }

  /** Keeps the raw record in the buffer, or replaces it with its deflated form when that saves an eighth. */
  private seal(record: PendingRecord, deflated: Uint8Array | null): void {
    // A u32 of the raw length goes before the deflated bytes.
    if (deflated === null || !worthCompressed(record.payload.length, deflated.length + 4)) {
      if (deflated !== null) this.backoff_records = DEFLATE_BACKOFF_RECORDS;
      this.records_raw++;
      return;
    }
    const raw_bytes = record.payload.length;
    this.buffer.reset();
    this.buffer.beginRecord(RECORD_BATCH_DEFLATE);
    this.buffer.appendU32(raw_bytes);
    this.buffer.appendBytes(deflated);
    this.buffer.endRecord(record.count);
    this.records_deflated++;
  }

  /** Ends the snapshot and makes it durable under its final name. */
  finish(): void {
    this.buffer.beginRecord(RECORD_SNAPSHOT_END);
    this.buffer.endRecord(this.entries);
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.temporary_path, this.final_path);
    fsyncDirectory(this.dir);
  }

  /** Gives up: closes and removes the temporary file. Never throws. */
  abort(): void {
    try {
      if (this.fd >= 0) closeSync(this.fd);
    } catch {
      // Closing a file we are abandoning: nothing to do about an error.
    }
    this.fd = -1;
    try {
      unlinkSync(this.temporary_path);
    } catch {
      // Already gone, or the disk is in trouble; start-up removes leftovers too.
    }
  }

  private encodeEntry(ref: number): void {
    const table = this.table;
    const key_length = table.keyLength(ref);
    const value_length = table.valueLength(ref);
    if (key_length + value_length > this.scratch.length) this.scratch = new Uint8Array(2 * (key_length + value_length));
    table.copyKey(ref, this.scratch, 0);
    table.copyValue(ref, this.scratch, key_length);
    const hash = murmur3_x86_32(this.scratch, 0, key_length, KEY_HASH_SEED);
    // The absolute expiry travels with the entry; an expired one is dropped at the end of recovery.
    // So does the value codec id: a compressed value is written as stored.
    const expiry_ms = table.expiry(ref);
    const flags = (expiry_ms > 0 ? OPF_HAS_EXPIRY : 0) | valueCodecFlags(table.valueFlags(ref));
    this.buffer.appendOp(OP_PUT, hash, this.scratch, 0, key_length, key_length, value_length, flags, expiry_ms);
    this.entries++;
  }

  private flush(): void {
    let written = 0;
    const length = this.buffer.length;
    while (written < length) written += writeSync(this.fd, this.buffer.bytes, written, length - written);
    this.bytes_written += length;
    this.buffer.reset();
  }
}

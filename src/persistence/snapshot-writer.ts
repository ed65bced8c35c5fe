/**
 * Writes one partition's snapshot by scanning its table in bounded steps (HashTable.scan),
 * so a worker can interleave the steps with serving batches.
 *
 * Each step encodes about `entries_max` live entries as one BATCH record of PUTs (the same
 * record format as the log) and writes it to `...snap.tmp`. `finish()` appends SNAPSHOT_END,
 * fsyncs, renames the file into place and fsyncs the directory: a `.snap` name therefore
 * always means a complete, durable snapshot. The snapshot is fuzzy (keys changed during the
 * scan may appear with either value); the log started just before the scan fixes that up.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HashTable, SCAN_END } from '../hashmap/index.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import { fsyncDirectory } from './data-dir.js';
import { fileName, OP_PUT, OPF_HAS_EXPIRY, RECORD_BATCH, RECORD_SNAPSHOT_END, SNAPSHOT_MAGIC, valueCodecFlags } from './format.js';
import { RecordBuffer } from './record-buffer.js';

/** Bytes one step aims to copy, whatever the value sizes: keeps each pause short. */
const STEP_BYTES_TARGET = 256 * 1024;
const STEP_ENTRIES_MAX = 4096;
/** Scratch for one entry's key and value, grown to the largest entry seen. */
const SCRATCH_BYTES_INITIAL = 64 * 1024;

export class SnapshotWriter {
  readonly temporary_path: string;
  readonly final_path: string;
  bytes_written = 0;
  entries = 0;
  private readonly dir: string;
  private readonly table: HashTable;
  private readonly buffer = new RecordBuffer();
  private scratch = new Uint8Array(SCRATCH_BYTES_INITIAL);
  private fd = -1;
  private cursor = 0;
  private readonly visit: (ref: number) => void;

  constructor(dir: string, workers: number, partition: number, generation: number, table: HashTable) {
    this.dir = dir;
    this.table = table;
    this.temporary_path = join(dir, fileName(workers, partition, generation, 'snap.tmp'));
    this.final_path = join(dir, fileName(workers, partition, generation, 'snap'));
    this.fd = openSync(this.temporary_path, 'w');
    this.buffer.writeFileHeader(SNAPSHOT_MAGIC, workers, partition, generation);
    this.flush();
    this.visit = (ref) => this.encodeEntry(ref);
  }

  /** Copies the next bounded slice of the table. Returns true when the scan is complete. */
  step(): boolean {
    if (this.cursor === SCAN_END) return true;
    const stats_keys = this.table.keys;
    const average_bytes = stats_keys > 0 ? Math.max(16, this.table.stats().payload_bytes / stats_keys) : 16;
    const entries_max = Math.max(1, Math.min(STEP_ENTRIES_MAX, Math.floor(STEP_BYTES_TARGET / average_bytes)));
    this.buffer.beginRecord(RECORD_BATCH);
    this.cursor = this.table.scan(this.cursor, entries_max, this.visit);
    if (this.buffer.in_record_items > 0) this.buffer.endRecord();
    else this.buffer.cancelRecord();
    this.flush();
    return this.cursor === SCAN_END;
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

/**
 * A partition worker's persistence: log-then-apply group commit, the fsync policy, and
 * background compaction. Used only by workers/partition-worker.ts, only with --data-dir.
 *
 * Per request packet: `appendBatch` encodes the packet's PUTs and DELETEs as ONE BATCH record
 * and writes it with one write call (plus an fdatasync under `always`) BEFORE the worker
 * applies them. If the write fails, the worker applies none of them and answers DISK_ERROR:
 * what the log does not hold was never applied, so nothing acknowledged can be lost, and the
 * next packet tries again (space freed = writes resume). A PUT that then fails in the table
 * with OUT_OF_MEMORY is cancelled by an ABORT record written right after its BATCH, before the
 * reply goes out; replay skips it.
 *
 * Where to append lives in the worker's shared counters (LOG_GENERATION, LOG_BYTES_*), written
 * after every successful write: a worker restarted on the same table reopens that log and cuts
 * it back to that length (the dead worker's last, unapplied record, if any), and never replays.
 *
 * Compaction: once the partition's files pass max(compact_min_bytes, 2 x payload), a new log
 * generation is started (all later writes go there), then a SnapshotWriter copies the table in
 * bounded steps scheduled with setImmediate between packets. When the snapshot is durable
 * under its final name, files of older generations are removed. Recovery = newest snapshot,
 * then every log from its generation on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HashTable } from '../hashmap/index.js';
import { Op, Status } from '../protocol/constants.js';
import { WorkerCounter, type RequestPacket } from '../engine/packet.js';
import { fsyncDirectory, listDataFiles, partitionDiskBytes, partitionFiles, removeFiles } from './data-dir.js';
import { FILE_HEADER_BYTES, fileName, LOG_MAGIC, RECORD_ABORT, RECORD_BATCH } from './format.js';
import { LogFile } from './log-file.js';
import type { PersistenceOptions } from './options.js';
import { RecordBuffer } from './record-buffer.js';
import { SnapshotWriter } from './snapshot-writer.js';

const EVERYSEC_INTERVAL_MS = 1000;
/** After a failed compaction, wait this long before trying again. */
const COMPACTION_RETRY_MS = 5000;
/** Re-check the compaction trigger (which reads table stats) at most every this many log bytes. */
const TRIGGER_CHECK_BYTES = 1024 * 1024;

export class PartitionLog {
  private readonly options: PersistenceOptions;
  private readonly partition: number;
  private readonly table: HashTable;
  private readonly counters: Float64Array;
  private readonly buffer = new RecordBuffer();
  private file: LogFile | null = null;
  private generation: number;
  /** An ABORT record that could not be written yet; it must precede the next record. */
  private pending_abort: Uint8Array | null = null;
  private snapshot: SnapshotWriter | null = null;
  private compaction_not_before_ms = 0;
  private next_trigger_check_bytes = 0;
  private last_error = '';

  constructor(options: PersistenceOptions, partition: number, table: HashTable, counters: Float64Array) {
    this.options = options;
    this.partition = partition;
    this.table = table;
    this.counters = counters;
    this.generation = Math.max(1, counters[WorkerCounter.LOG_GENERATION]!);
    try {
      // Leftovers of a compaction the previous worker did not finish.
      const listing = listDataFiles(options.data_dir);
      const temporaries = listing.filter(({ file }) => file.workers === options.workers && file.partition === partition && file.kind === 'snap.tmp');
      removeFiles(options.data_dir, temporaries.map(({ name }) => name));
      this.counters[WorkerCounter.DISK_BYTES] = partitionDiskBytes(options.data_dir, options.workers, partition);
    } catch (error) {
      this.failed(error);
    }
    this.openLog(); // on failure, every batch retries it (and answers DISK_ERROR until it works)
    if (options.fsync === 'everysec') setInterval(() => this.syncIfDirty(), EVERYSEC_INTERVAL_MS).unref();
  }

  /** Logs the packet's writes as one record. False: nothing was logged; apply none of them. */
  appendBatch(request: RequestPacket): boolean {
    const buffer = this.buffer;
    buffer.reset();
    if (this.pending_abort !== null) buffer.appendRaw(this.pending_abort);
    buffer.beginRecord(RECORD_BATCH);
    const count = request.op_count;
    const data = request.data;
    let data_offset = 0;
    let payload_bytes = 0;
    for (let i = 0; i < count; i++) {
      const op = request.op[i]!;
      const key_length = request.key_length[i]!;
      const value_length = request.value_length[i]!;
      if (op === Op.PUT || op === Op.DELETE) {
        buffer.appendOp(op, request.hash[i]!, data, data_offset, key_length, data_offset + key_length, value_length);
        payload_bytes += key_length + value_length;
      }
      data_offset += key_length + value_length;
    }
    const ops = buffer.in_record_items;
    if (ops === 0) {
      buffer.cancelRecord();
      if (buffer.length === 0) return true;
    } else {
      buffer.endRecord();
    }
    if (!this.write()) return false;
    this.pending_abort = null;
    this.counters[WorkerCounter.LOGGED_OPS]! += ops;
    this.counters[WorkerCounter.LOGGED_PAYLOAD_BYTES]! += payload_bytes;
    return true;
  }

  /** After apply: cancels the logged PUTs that failed with OUT_OF_MEMORY (status per packet op). */
  abortFailedPuts(request: RequestPacket, status: Uint8Array): void {
    const buffer = this.buffer;
    buffer.reset();
    buffer.beginRecord(RECORD_ABORT);
    let logged_index = 0;
    for (let i = 0; i < request.op_count; i++) {
      const op = request.op[i]!;
      if (op !== Op.PUT && op !== Op.DELETE) continue;
      if (op === Op.PUT && status[i] === Status.OUT_OF_MEMORY) buffer.appendU32(logged_index);
      logged_index++;
    }
    if (buffer.in_record_items === 0) {
      buffer.cancelRecord();
      return;
    }
    buffer.endRecord();
    // Kept aside first: if this write fails, the next one must start with it.
    this.pending_abort = buffer.bytes.slice(0, buffer.length);
    if (this.write()) this.pending_abort = null;
  }

  /** Called after every packet: starts a compaction when the files have grown enough. */
  afterBatch(): void {
    const disk_bytes = this.counters[WorkerCounter.DISK_BYTES]!;
    if (this.snapshot !== null || disk_bytes < this.next_trigger_check_bytes) return;
    this.next_trigger_check_bytes = disk_bytes + Math.min(TRIGGER_CHECK_BYTES, this.options.compact_min_bytes / 4);
    const threshold = Math.max(this.options.compact_min_bytes, 2 * this.table.stats().payload_bytes);
    if (disk_bytes > threshold && this.pending_abort === null && Date.now() >= this.compaction_not_before_ms) this.startCompaction();
  }

  /** The last disk error, for the worker to report. */
  get error(): string {
    return this.last_error;
  }

  /** Writes the buffer to the current log under the fsync policy. False on any failure (the log is left as before). */
  private write(): boolean {
    const buffer = this.buffer;
    const file = this.file ?? this.openLog();
    if (file === null) return false;
    try {
      file.append(buffer.bytes, buffer.length);
    } catch (error) {
      return this.failed(error);
    }
    if (this.options.fsync === 'always') {
      try {
        file.sync();
        this.counters[WorkerCounter.FSYNCS]! += 1;
      } catch (error) {
        file.unappend(buffer.length);
        return this.failed(error);
      }
    }
    this.publishLogBytes(file.valid_bytes);
    this.counters[WorkerCounter.DISK_BYTES]! += buffer.length;
    this.counters[WorkerCounter.DISK_BYTES_WRITTEN]! += buffer.length;
    return true;
  }

  private failed(error: unknown): false {
    this.counters[WorkerCounter.DISK_ERRORS]! += 1;
    this.last_error = `${(error as NodeJS.ErrnoException).code ?? ''} ${(error as Error).message}`;
    return false;
  }

  /** Single store publishes a new length: LOG_BYTES of this generation's parity. */
  private publishLogBytes(valid_bytes: number): void {
    this.counters[(this.generation & 1) === 0 ? WorkerCounter.LOG_BYTES_EVEN : WorkerCounter.LOG_BYTES_ODD] = valid_bytes;
  }

  private logPath(generation: number): string {
    return join(this.options.data_dir, fileName(this.options.workers, this.partition, generation, 'log'));
  }

  /** Opens the current generation's log at its published length, creating it if needed. Null on failure. */
  private openLog(): LogFile | null {
    const path = this.logPath(this.generation);
    const valid_bytes = this.counters[(this.generation & 1) === 0 ? WorkerCounter.LOG_BYTES_EVEN : WorkerCounter.LOG_BYTES_ODD]!;
    try {
      if (valid_bytes >= FILE_HEADER_BYTES && existsSync(path)) {
        this.file = LogFile.open(path, valid_bytes);
      } else {
        this.file = this.createLog(this.generation);
        this.publishLogBytes(this.file.valid_bytes);
      }
      return this.file;
    } catch (error) {
      this.file = null;
      this.failed(error);
      return null;
    }
  }

  private createLog(generation: number): LogFile {
    const header = new RecordBuffer();
    header.writeFileHeader(LOG_MAGIC, this.options.workers, this.partition, generation);
    const file = LogFile.create(this.logPath(generation), header.bytes, header.length);
    fsyncDirectory(this.options.data_dir);
    this.counters[WorkerCounter.DISK_BYTES_WRITTEN]! += header.length;
    return file;
  }

  private syncIfDirty(): void {
    const file = this.file;
    if (file === null || !file.dirty) return;
    try {
      file.sync();
      this.counters[WorkerCounter.FSYNCS]! += 1;
    } catch (error) {
      this.failed(error);
    }
  }

  /** Switches to a new log generation, then snapshots the table in steps. */
  private startCompaction(): void {
    const generation = this.generation + 1;
    let snapshot: SnapshotWriter;
    try {
      const next = this.createLog(generation);
      // The old log is complete from here on: make it durable before it stops being the tail.
      this.file?.sync();
      this.file?.close();
      this.file = next;
      this.generation = generation;
      this.publishLogBytes(next.valid_bytes);
      this.counters[WorkerCounter.LOG_GENERATION] = generation; // publish the switch
      snapshot = new SnapshotWriter(this.options.data_dir, this.options.workers, this.partition, generation, this.table);
    } catch (error) {
      this.failed(error);
      this.compaction_not_before_ms = Date.now() + COMPACTION_RETRY_MS;
      return;
    }
    this.snapshot = snapshot;
    setImmediate(() => this.compactionStep());
  }

  private compactionStep(): void {
    const snapshot = this.snapshot;
    if (snapshot === null) return;
    const written_before = snapshot.bytes_written;
    try {
      const done = snapshot.step();
      if (done) snapshot.finish();
      this.counters[WorkerCounter.DISK_BYTES_WRITTEN]! += snapshot.bytes_written - written_before;
      if (!done) {
        setImmediate(() => this.compactionStep());
        return;
      }
    } catch (error) {
      snapshot.abort();
      this.snapshot = null;
      this.failed(error);
      this.compaction_not_before_ms = Date.now() + COMPACTION_RETRY_MS;
      return;
    }
    this.snapshot = null;
    this.counters[WorkerCounter.COMPACTIONS]! += 1;
    try {
      const files = partitionFiles(listDataFiles(this.options.data_dir), this.options.workers, this.partition);
      removeFiles(this.options.data_dir, files.stale);
      this.counters[WorkerCounter.DISK_BYTES] = partitionDiskBytes(this.options.data_dir, this.options.workers, this.partition);
    } catch (error) {
      // Stale files are harmless (ignored and removed on the next start or compaction).
      this.failed(error);
    }
    this.next_trigger_check_bytes = 0;
  }
}

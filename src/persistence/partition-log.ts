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
 * reply goes out; replay skips it. No error is answered before the log agrees with it: the
 * ABORT is retried (the packet's replies wait) until it is written, and a failed BATCH write is
 * cut off the file before its ops answer DISK_ERROR.
 *
 * Where to append lives in the worker's shared counters (LOG_GENERATION, LOG_BYTES_*), written
 * after every successful write: a worker restarted on the same table reopens that log and cuts
 * it back to that length (the dead worker's last record, if it was never published). A worker
 * killed after publishing a BATCH but before applying all of it leaves the log ahead of memory;
 * the counters BATCHES_LOGGED/BATCHES_APPLIED tell the new worker, which re-applies that one
 * record before it serves anything (finishInterruptedBatch).
 *
 * Compaction: once the partition's files pass max(compact_min_bytes, 2 x payload), a new log
 * generation is started (all later writes go there), then a SnapshotWriter copies the table in
 * bounded steps scheduled with setImmediate between packets. When the snapshot is durable
 * under its final name, files of older generations are removed. Recovery = newest snapshot,
 * then every log from its generation on.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { HashTable } from '../hashmap/index.js';
import { PUT_NOT_FOUND, PUT_OK } from '../hashmap/index.js';
import { EXPIRY_KEEP, Op, Status } from '../protocol/constants.js';
import { crc32c } from './crc32c.js';
import { recordFsync, WorkerCounter, type RequestPacket } from '../engine/packet.js';
import { fsyncDirectory, listDataFiles, partitionDiskBytes, partitionFiles, removeFiles } from './data-dir.js';
import {
  FILE_HEADER_BYTES, fileName, LOG_MAGIC, OP_DELETE, OPF_HAS_EXPIRY, OPF_KEEP_EXPIRY, valueCodecFlags,
  R_COUNT, R_CRC, R_PAYLOAD_BYTES, R_TYPE, readU32, RECORD_ABORT, RECORD_BATCH, RECORD_HEADER_BYTES,
} from './format.js';
import { LogFile } from './log-file.js';
import { applyLoggedOp, readLoggedOp, type LoggedOp } from './logged-op.js';
import type { PersistenceOptions } from './options.js';
import { RecordBuffer } from './record-buffer.js';
import { SnapshotWriter, type DeflateRecord } from './snapshot-writer.js';

const EVERYSEC_INTERVAL_MS = 1000;
/** After a failed compaction, wait this long before trying again. */
const COMPACTION_RETRY_MS = 5000;
/** Re-check the compaction trigger (which reads table stats) at most every this many log bytes. */
const TRIGGER_CHECK_BYTES = 1024 * 1024;
/** Backoff between attempts at a write that must land before the packet may be answered. */
const RETRY_DELAY_MS_FIRST = 10;
const RETRY_DELAY_MS_MAX = 1000;

/** Blocks this worker thread (Atomics.wait on a cell nobody notifies): the packet's replies must wait, and nothing else may run on the table meanwhile. */
const sleep_cell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(duration_ms: number): void {
  Atomics.wait(sleep_cell, 0, 0, duration_ms);
}

export type Warn = (message: string) => void;

export class PartitionLog {
  private readonly options: PersistenceOptions;
  private readonly partition: number;
  private readonly table: HashTable;
  private readonly counters: Float64Array;
  private readonly buffer = new RecordBuffer();
  private file: LogFile | null = null;
  private readonly warn: Warn;
  private generation: number;
  private snapshot: SnapshotWriter | null = null;
  /** Where compaction sends snapshot records to be deflated (the node's background pool). */
  private readonly deflate: DeflateRecord;
  private compaction_not_before_ms = 0;
  private next_trigger_check_bytes = 0;
  private last_error = '';
  /** Test hook: ABORT writes still to fail on purpose (PersistenceOptions.test_abort_write_failures). */
  private abort_failures_left: number;

  constructor(options: PersistenceOptions, partition: number, table: HashTable, counters: Float64Array, warn: Warn, deflate: DeflateRecord) {
    this.options = options;
    this.deflate = deflate;
    this.warn = warn;
    this.abort_failures_left = options.test_abort_write_failures;
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

  /**
   * Logs the packet's writes as one record. False: nothing was logged (and nothing of it is left
   * in the file); apply none of them. After applying, call `batchApplied`.
   */
  appendBatch(request: RequestPacket): boolean {
    const buffer = this.buffer;
    buffer.reset();
    buffer.beginRecord(RECORD_BATCH);
    const count = request.op_count;
    const data = request.data;
    let data_offset = 0;
    let payload_bytes = 0;
    for (let i = 0; i < count; i++) {
      const op = request.op[i]!;
      const key_length = request.key_length[i]!;
      const value_length = request.value_length[i]!;
      if (isLoggedOp(op)) {
        const expiry_ms = request.expiry[i]!;
        // The protocol's op codes are the log's (format.ts); PERSIST and DELETE carry no expiry.
        const expiry_flags = op === Op.EXPIRE || (op === Op.PUT && expiry_ms > 0) ? OPF_HAS_EXPIRY
          : op === Op.PUT && expiry_ms === EXPIRY_KEEP ? OPF_KEEP_EXPIRY : 0;
        const flags = op === Op.PUT ? expiry_flags | valueCodecFlags(request.value_codec[i]!) : expiry_flags;
        // A DELETE's value is absent: a PUT whose expiry had passed became a DELETE in place (partition-worker.ts).
        const logged_value_length = op === Op.DELETE ? 0 : value_length;
        buffer.appendOp(op, request.hash[i]!, data, data_offset, key_length, data_offset + key_length, logged_value_length, flags, expiry_ms);
        payload_bytes += key_length + logged_value_length;
      }
      data_offset += key_length + value_length;
    }
    const ops = buffer.in_record_items;
    if (ops === 0) {
      buffer.cancelRecord();
      return true;
    }
    buffer.endRecord();
    if (!this.write(true)) {
      // The ops will answer DISK_ERROR, so the record must not survive in the file: a cut that
      // failed is retried now (a record left past the published end would be replayed by a
      // recovery after a crash). Then withdraw the announcement.
      this.retryUntil('cutting a failed write off the log', () => this.file === null || this.file.cutBackNow());
      this.counters[WorkerCounter.BATCHES_LOGGED] = this.counters[WorkerCounter.BATCHES_APPLIED]!;
      return false;
    }
    this.counters[WorkerCounter.LOGGED_OPS]! += ops;
    this.counters[WorkerCounter.LOGGED_PAYLOAD_BYTES]! += payload_bytes;
    return true;
  }

  /**
   * Logs DELETEs of `count` keys the worker found expired (keys[key_offsets[i]..+key_lengths[i]],
   * hashes in `hashes`), as one BATCH record, before it deletes them. Logged because whether a
   * key had expired depends on the clock at the time: a replay must not decide it again (an
   * EXPIRE that ran before the old expiry must still find the key). False: nothing was logged,
   * so the keys must not be deleted (they stay hidden from reads).
   */
  appendExpiredDeletes(count: number, hashes: Uint32Array, keys: Uint8Array, key_offsets: Uint32Array, key_lengths: Uint32Array): boolean {
    if (count === 0) return true;
    const buffer = this.buffer;
    buffer.reset();
    buffer.beginRecord(RECORD_BATCH);
    for (let i = 0; i < count; i++) buffer.appendOp(OP_DELETE, hashes[i]!, keys, key_offsets[i]!, key_lengths[i]!, 0, 0);
    buffer.endRecord();
    if (!this.write(false)) {
      this.retryUntil('cutting a failed write off the log', () => this.file === null || this.file.cutBackNow());
      return false;
    }
    this.counters[WorkerCounter.LOGGED_OPS]! += count;
    return true;
  }

  /** After the whole packet is applied (and its ABORT written): the log and memory agree again. One store. */
  batchApplied(): void {
    this.counters[WorkerCounter.BATCHES_APPLIED] = this.counters[WorkerCounter.BATCHES_LOGGED]!;
  }

  /**
   * After apply: cancels the logged PUTs that failed (OUT_OF_MEMORY, or INTERNAL) with an ABORT
   * record right after their BATCH. Returns only once the ABORT is written (and fdatasynced
   * under `always`), retrying with backoff: answering OUT_OF_MEMORY before that would let a
   * recovery resurrect the put. `status` is per packet op.
   */
  abortFailedPuts(request: RequestPacket, status: Uint8Array): void {
    const failed: number[] = [];
    let logged_index = 0;
    for (let i = 0; i < request.op_count; i++) {
      const op = request.op[i]!;
      if (!isLoggedOp(op)) continue;
      // A PUT answering NOT_FOUND was a conditional op that wrote a key that was absent (Op.PUT_NX).
      if (op === Op.PUT && status[i] !== Status.OK && status[i] !== Status.NOT_FOUND) failed.push(logged_index);
      else if ((op === Op.EXPIRE || op === Op.PERSIST) && status[i] !== Status.OK && status[i] !== Status.NOT_FOUND) failed.push(logged_index);
      logged_index++;
    }
    this.writeAbort(failed);
  }

  /**
   * Called once by a new worker before it serves anything. If the previous worker died after
   * its last BATCH record was published but before the packet was fully applied, memory lacks
   * some of the logged ops; this re-applies the whole record (puts and deletes are absolute,
   * so ops that did land are rewritten with the same result) and writes the ABORT for puts
   * that fail now. Returns the ops re-applied, or -1 when there was nothing to finish.
   */
  finishInterruptedBatch(): number {
    const counters = this.counters;
    const logged = counters[WorkerCounter.BATCHES_LOGGED]!;
    const applied = counters[WorkerCounter.BATCHES_APPLIED]!;
    if (logged === applied) return -1;
    if (logged !== applied + 1) throw new Error(`partition ${this.partition}: batches logged ${logged}, applied ${applied}: at most one may be unfinished`);
    const start = counters[WorkerCounter.LAST_BATCH_START]!;
    const end = counters[WorkerCounter.LAST_BATCH_END]!;
    let file = this.file;
    this.retryUntil('reopening the log', () => (file = this.file ?? this.openLog()) !== null);
    const published_bytes = file!.valid_bytes;
    if (end > published_bytes) {
      // Announced but never published: the reopened log no longer holds it, and apply only starts after publishing.
      this.batchApplied();
      return -1;
    }
    let bytes: Uint8Array = new Uint8Array(0);
    // The record after the BATCH, if any, can only be its ABORT (nothing else is written before batchApplied).
    const read_bytes = Math.min(published_bytes, end + RECORD_HEADER_BYTES) - start;
    this.retryUntil('reading the interrupted batch back from the log', () => {
      try {
        bytes = readRange(this.logPath(this.generation), start, read_bytes);
        return true;
      } catch (error) {
        return this.failed(error);
      }
    });
    const record_bytes = end - start;
    checkBatchRecord(bytes, record_bytes, this.partition);
    if (read_bytes > record_bytes) {
      if (bytes[record_bytes + R_TYPE] !== RECORD_ABORT) throw new Error(`partition ${this.partition}: the record after the unfinished batch is not its ABORT`);
      // Its ABORT is written only after the whole packet was applied: nothing is missing.
      this.batchApplied();
      return 0;
    }
    const failed: number[] = [];
    const count = readU32(bytes, R_COUNT);
    let at = RECORD_HEADER_BYTES;
    const op: LoggedOp = { op: 0, flags: 0, expiry_ms: 0, hash: 0, key_offset: 0, key_length: 0, value_length: 0, value_codec: 0 };
    for (let i = 0; i < count; i++) {
      at = readLoggedOp(bytes, at, record_bytes, op);
      if (at < 0) throw new Error(`partition ${this.partition}: an op of the unfinished batch cannot be read`);
      // An overwrite with a value of the same length (and the same flags) is in place and cannot
      // fail, so a put that fails here did not leave its value in the table the first time either.
      const result = applyLoggedOp(this.table, bytes, op);
      if (result !== PUT_OK && result !== PUT_NOT_FOUND) failed.push(i);
    }
    if (at !== record_bytes) throw new Error(`partition ${this.partition}: the unfinished batch's ops do not add up`);
    this.writeAbort(failed);
    this.batchApplied();
    return count;
  }

  /** Called after every packet: starts a compaction when the files have grown enough. */
  afterBatch(): void {
    const disk_bytes = this.counters[WorkerCounter.DISK_BYTES]!;
    if (this.snapshot !== null || disk_bytes < this.next_trigger_check_bytes) return;
    this.next_trigger_check_bytes = disk_bytes + Math.min(TRIGGER_CHECK_BYTES, this.options.compact_min_bytes / 4);
    const threshold = Math.max(this.options.compact_min_bytes, 2 * this.table.stats().payload_bytes);
    if (disk_bytes > threshold && Date.now() >= this.compaction_not_before_ms) this.startCompaction();
  }

  /** The last disk error, for the worker to report. */
  get error(): string {
    return this.last_error;
  }

  /** ABORT record for the logged op indices `failed` (none: nothing written); returns once it is in the log. */
  private writeAbort(failed: number[]): void {
    if (failed.length === 0) return;
    const buffer = this.buffer;
    buffer.reset();
    buffer.beginRecord(RECORD_ABORT);
    for (const index of failed) buffer.appendU32(index);
    buffer.endRecord();
    this.retryUntil('writing an ABORT record', () => {
      if (this.abort_failures_left > 0) {
        this.abort_failures_left--;
        return this.failed(new Error('failed on purpose (test hook PIKV_TEST_ABORT_WRITE_FAILURES)'));
      }
      return this.write(false);
    });
  }

  /**
   * Calls `attempt` until it returns true, sleeping with backoff in between, and warns once
   * while it keeps failing. For the writes an answer depends on: blocking the partition (its
   * GETs included) is the price of never reporting an outcome the log contradicts.
   */
  private retryUntil(what: string, attempt: () => boolean): void {
    let delay_ms = RETRY_DELAY_MS_FIRST;
    let warned = false;
    while (!attempt()) {
      if (!warned) {
        this.warn(`partition ${this.partition}: ${what} failed (${this.last_error.trim()}); the partition waits and retries until it works`);
        warned = true;
      }
      sleepMs(delay_ms);
      delay_ms = Math.min(delay_ms * 2, RETRY_DELAY_MS_MAX);
    }
    if (warned) this.warn(`partition ${this.partition}: ${what} succeeded; serving again`);
  }

  /**
   * Writes the buffer to the current log under the fsync policy. False on any failure (the log
   * is left as before, or its cut is pending: LogFile.cutBackNow). `announce_batch`: the buffer
   * is one BATCH record; its place is stored in the shared counters BEFORE the write, so a
   * worker killed anywhere after the publishing store leaves its successor able to find it.
   */
  private write(announce_batch: boolean): boolean {
    const buffer = this.buffer;
    const file = this.file ?? this.openLog();
    if (file === null) return false;
    if (announce_batch) {
      const counters = this.counters;
      counters[WorkerCounter.LAST_BATCH_START] = file.valid_bytes;
      counters[WorkerCounter.LAST_BATCH_END] = file.valid_bytes + buffer.length;
      counters[WorkerCounter.BATCHES_LOGGED] = counters[WorkerCounter.BATCHES_APPLIED]! + 1;
    }
    try {
      file.append(buffer.bytes, buffer.length);
    } catch (error) {
      return this.failed(error);
    }
    if (this.options.fsync === 'always') {
      try {
        this.timedSync(file);
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

  /** file.sync(), counted with its latency (FSYNCS, FSYNC_SECONDS, FSYNC_BUCKETS); throws as sync() does. */
  private timedSync(file: LogFile): void {
    const started = performance.now();
    file.sync();
    recordFsync(this.counters, (performance.now() - started) / 1000);
  }

  private syncIfDirty(): void {
    const file = this.file;
    if (file === null || !file.dirty) return;
    try {
      this.timedSync(file);
    } catch (error) {
      this.failed(error);
    }
  }

  /** Switches to a new log generation, then snapshots the table in steps. */
  private startCompaction(): void {
    // finishInterruptedBatch looks for an unfinished batch in the current generation only.
    if (this.counters[WorkerCounter.BATCHES_LOGGED] !== this.counters[WorkerCounter.BATCHES_APPLIED]) throw new Error('compaction started with a batch not yet applied');
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
      snapshot = new SnapshotWriter(this.options.data_dir, this.options.workers, this.partition, generation, this.table, this.options.snapshot_compress);
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
    if (snapshot !== null) void this.runCompactionStep(snapshot);
  }

  /**
   * One step. Its deflate runs in the node's background pool (SnapshotWriter.stepAsync): packets
   * are served meanwhile, and the next step starts only once this one is written.
   */
  private async runCompactionStep(snapshot: SnapshotWriter): Promise<void> {
    const written_before = snapshot.bytes_written;
    let done: boolean;
    try {
      done = await snapshot.stepAsync(this.deflate);
      if (done) snapshot.finish();
      this.counters[WorkerCounter.DISK_BYTES_WRITTEN]! += snapshot.bytes_written - written_before;
    } catch (error) {
      this.compactionFailed(snapshot, error);
      return;
    }
    if (done) this.compactionDone();
    else setImmediate(() => this.compactionStep());
  }

  private compactionFailed(snapshot: SnapshotWriter, error: unknown): void {
    snapshot.abort();
    if (this.snapshot === snapshot) this.snapshot = null;
    this.failed(error);
    this.compaction_not_before_ms = Date.now() + COMPACTION_RETRY_MS;
  }

  private compactionDone(): void {
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

/** Bytes [offset, offset + length) of the file at `path`. Throws on failure or a short file. */
function readRange(path: string, offset: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  const fd = openSync(path, 'r');
  try {
    let filled = 0;
    while (filled < length) {
      const got = readSync(fd, bytes, filled, length - filled, offset + filled);
      if (got === 0) throw new Error(`${path}: ends before byte ${offset + length}`);
      filled += got;
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** Throws unless bytes[0, record_bytes) is one intact BATCH record (the previous worker published it, so anything else is a bug or a damaged disk). */
function checkBatchRecord(bytes: Uint8Array, record_bytes: number, partition: number): void {
  const header_crc = crc32c(0, bytes, 0, R_CRC);
  if (bytes[R_TYPE] !== RECORD_BATCH || readU32(bytes, R_PAYLOAD_BYTES) !== record_bytes - RECORD_HEADER_BYTES ||
    crc32c(header_crc, bytes, RECORD_HEADER_BYTES, record_bytes) !== readU32(bytes, R_CRC)) {
    throw new Error(`partition ${partition}: the unfinished batch at the log tail is not an intact BATCH record`);
  }
}

/** Ops a BATCH record holds: the writes. */
function isLoggedOp(op: number): boolean {
  return op === Op.PUT || op === Op.DELETE || op === Op.EXPIRE || op === Op.PERSIST;
}

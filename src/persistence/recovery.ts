/**
 * Start-up recovery, in the main thread before any worker starts: it owns every partition's
 * SharedArrayBuffer, so it loads them directly and then hands each worker a table that is
 * already full plus the log to append to (via the worker's shared counters).
 *
 * Why here and not in the workers: (1) re-partitioning (a directory written with another
 * worker count) is just routing each record by hash % workers into the right table, which
 * only a thread holding all tables can do; (2) damage stops start-up with an ordinary
 * exception before the node listens; (3) a worker restarted on a live table can never replay
 * by mistake: workers never replay at all. The cost is one core instead of W: measured in
 * docs/PERSISTENCE.md (1M keys well under the 2 s goal).
 *
 * Per old partition: load its newest snapshot, replay its logs from that generation on, cut a
 * torn tail off the newest log. Re-partitioning or --repair then rewrites the affected
 * partitions as fresh snapshots (and, for a new worker count, switches MANIFEST last, so a
 * crash in between leaves the old layout intact; the new files are removed as leftovers).
 */
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { HashTable } from '../hashmap/index.js';
import { WorkerCounter } from '../engine/packet.js';
import {
  ensureDirectory, fsyncDirectory, listDataFiles, partitionFiles, readManifest, removeFiles, writeManifest,
} from './data-dir.js';
import { PersistenceError, PersistenceErrorCode } from './errors.js';
import { FILE_HEADER_BYTES, fileName, FORMAT_VERSION, LOG_MAGIC, SNAPSHOT_MAGIC } from './format.js';
import { LogFile } from './log-file.js';
import type { PersistenceOptions } from './options.js';
import { readRecordFile, type ReadResult } from './record-reader.js';
import { RecordBuffer } from './record-buffer.js';
import { applyBatch, dropExpired, type ReplayCounts } from './replay.js';
import { SnapshotWriter } from './snapshot-writer.js';

export interface RecoveryReport {
  keys: number;
  puts: number;
  deletes: number;
  /** Keys dropped because their expiry passed before the end of recovery. */
  expired: number;
  files: number;
  bytes_read: number;
  elapsed_ms: number;
  /** Worker count the directory had, if it was re-partitioned. */
  repartitioned_from: number | null;
  /** Human-readable lines: torn tails cut, bytes dropped by --repair. */
  notes: string[];
}

interface PartitionState {
  /** Generation the worker appends to, and that log's valid length (0: create it). */
  generation: number;
  log_bytes: number;
  damaged: boolean;
}

/** Loads the data directory into `tables` and tells each worker where to append. */
export function recoverNode(options: PersistenceOptions, repair: boolean, tables: HashTable[], counters: Float64Array[]): RecoveryReport {
  const started_ms = performance.now();
  const dir = options.data_dir;
  const workers = options.workers;
  ensureDirectory(dir);
  const manifest = readManifest(dir);
  let listing = listDataFiles(dir);
  if (manifest === null) {
    if (listing.length > 0) throw new PersistenceError(PersistenceErrorCode.MISMATCH, `${dir} holds pikv data files but no MANIFEST; refusing to guess how they were written`);
    writeManifest(dir, workers);
  }
  const stored_workers = manifest?.workers ?? workers;
  // Files of another worker count: a re-partition that crashed before switching MANIFEST.
  removeFiles(dir, listing.filter(({ file }) => file.workers !== stored_workers).map(({ name }) => name));
  listing = listDataFiles(dir);

  const report: RecoveryReport = { keys: 0, puts: 0, deletes: 0, expired: 0, files: 0, bytes_read: 0, elapsed_ms: 0, repartitioned_from: null, notes: [] };
  const counts: ReplayCounts = { puts: 0, deletes: 0, expiries: 0, skipped: 0 };
  const states: PartitionState[] = [];
  for (let partition = 0; partition < stored_workers; partition++) {
    states.push(loadPartition(dir, stored_workers, partition, listing, repair, tables, counts, report));
  }
  report.puts = counts.puts;
  report.deletes = counts.deletes;
  // Keys whose expiry passed while the node was down are not loaded (their deletes are not logged).
  const now_ms = Date.now();
  for (const table of tables) report.expired += dropExpired(table, now_ms);
  // A version-1 data dir: its files stay readable as they are; the manifest says the newest version once loaded.
  if (manifest !== null && manifest.version !== FORMAT_VERSION && stored_workers === workers) writeManifest(dir, workers);

  if (stored_workers !== workers) {
    // Every new partition becomes one fresh snapshot; MANIFEST switches only once all are durable.
    for (let partition = 0; partition < workers; partition++) rewritePartition(dir, workers, partition, 1, tables[partition]!, counters[partition]!, options.snapshot_compress);
    writeManifest(dir, workers);
    removeFiles(dir, listDataFiles(dir).filter(({ file }) => file.workers !== workers).map(({ name }) => name));
    report.repartitioned_from = stored_workers;
  } else {
    for (let partition = 0; partition < workers; partition++) {
      const state = states[partition]!;
      if (state.damaged) {
        // --repair dropped bytes: replace the damaged files by a snapshot of what was read.
        rewritePartition(dir, workers, partition, state.generation + 1, tables[partition]!, counters[partition]!, options.snapshot_compress);
        const stale = partitionFiles(listDataFiles(dir), workers, partition).stale;
        removeFiles(dir, stale);
        report.notes.push(`partition ${partition}: rewritten as snapshot generation ${state.generation + 1} after repair`);
      } else {
        publishLog(counters[partition]!, state.generation, state.log_bytes);
      }
    }
  }
  for (const table of tables) report.keys += table.keys;
  report.elapsed_ms = performance.now() - started_ms;
  return report;
}

function loadPartition(
  dir: string, workers: number, partition: number, listing: ReturnType<typeof listDataFiles>, repair: boolean,
  tables: HashTable[], counts: ReplayCounts, report: RecoveryReport,
): PartitionState {
  const files = partitionFiles(listing, workers, partition);
  removeFiles(dir, files.stale);
  const state: PartitionState = { generation: Math.max(1, files.snapshot_generation), log_bytes: 0, damaged: false };
  const note = (path: string, result: ReadResult): void => {
    report.files++;
    report.bytes_read += result.file_bytes;
    for (const drop of result.dropped) report.notes.push(`${path}: --repair dropped ${drop.bytes} bytes at offset ${drop.offset}`);
    if (result.dropped.length > 0) state.damaged = true;
  };
  if (files.snapshot_generation > 0) {
    const path = join(dir, fileName(workers, partition, files.snapshot_generation, 'snap'));
    const result = readRecordFile(path, { magic: SNAPSHOT_MAGIC, workers, partition, generation: files.snapshot_generation }, { repair },
      (record) => applyBatch(record, tables, counts, path));
    note(path, result);
    if (result.snapshot_end_count < 0 || result.torn_bytes > 0) {
      if (!repair) throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: snapshot is incomplete after byte offset ${result.valid_bytes}; start with --repair to keep what can be read`);
      report.notes.push(`${path}: --repair kept an incomplete snapshot (${result.torn_bytes} bytes unreadable at offset ${result.valid_bytes})`);
      state.damaged = true;
    }
  }
  const logs = files.log_generations;
  for (let i = 0; i < logs.length; i++) {
    const generation = logs[i]!;
    const path = join(dir, fileName(workers, partition, generation, 'log'));
    const result = readRecordFile(path, { magic: LOG_MAGIC, workers, partition, generation }, { repair },
      (record) => applyBatch(record, tables, counts, path));
    note(path, result);
    const newest = i === logs.length - 1;
    if (result.torn_bytes > 0) {
      if (!newest && !repair) {
        throw new PersistenceError(PersistenceErrorCode.CORRUPT, `${path}: damaged record at byte offset ${result.valid_bytes} of a log that is not the newest; start with --repair to drop it`);
      }
      report.notes.push(`${path}: cut a torn tail of ${result.torn_bytes} bytes at offset ${result.valid_bytes}`);
      if (!newest) state.damaged = true;
      truncateSync(path, result.valid_bytes);
    }
    state.generation = generation;
    state.log_bytes = result.header_torn ? 0 : result.valid_bytes;
  }
  return state;
}

/** Writes `table` as snapshot `generation` plus an empty log of that generation; points the worker at it. */
function rewritePartition(dir: string, workers: number, partition: number, generation: number, table: HashTable, counters: Float64Array, compress: boolean): void {
  const snapshot = new SnapshotWriter(dir, workers, partition, generation, table, compress);
  try {
    while (!snapshot.step()) { /* bounded steps, run back to back: nothing else is running yet */ }
    snapshot.finish();
  } catch (error) {
    snapshot.abort();
    throw new PersistenceError(PersistenceErrorCode.IO, `cannot write ${snapshot.final_path}: ${(error as Error).message}`);
  }
  const header = new RecordBuffer();
  header.writeFileHeader(LOG_MAGIC, workers, partition, generation);
  const log = LogFile.create(join(dir, fileName(workers, partition, generation, 'log')), header.bytes, header.length);
  log.close();
  fsyncDirectory(dir);
  publishLog(counters, generation, FILE_HEADER_BYTES);
}

function publishLog(counters: Float64Array, generation: number, log_bytes: number): void {
  counters[(generation & 1) === 0 ? WorkerCounter.LOG_BYTES_EVEN : WorkerCounter.LOG_BYTES_ODD] = log_bytes;
  counters[WorkerCounter.LOG_GENERATION] = generation;
}

/** One line for the start-up log. */
export function describeRecovery(report: RecoveryReport): string[] {
  const mib = (report.bytes_read / 1024 / 1024).toFixed(1);
  const lines = [`recovered ${report.keys} keys in ${Math.round(report.elapsed_ms)} ms (${report.puts} puts and ${report.deletes} deletes replayed from ${report.files} files, ${mib} MiB)`];
  if (report.expired > 0) lines.push(`dropped ${report.expired} keys whose expiry passed while the node was down`);
  if (report.repartitioned_from !== null) lines.push(`re-partitioned the data directory from ${report.repartitioned_from} to the current worker count`);
  return lines.concat(report.notes);
}

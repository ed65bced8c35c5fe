/**
 * Persistence settings as they travel from the config to the main thread's recovery and to
 * each partition worker (inside WorkerInit, so plain data only).
 */

/** Same meanings as Redis's appendfsync; see docs/PERSISTENCE.md for the guarantees. */
export const FSYNC_POLICIES = ['always', 'everysec', 'no'] as const;
export type FsyncPolicy = (typeof FSYNC_POLICIES)[number];

export interface PersistenceOptions {
  data_dir: string;
  fsync: FsyncPolicy;
  /** A partition is compacted once its files pass both this and 2x its payload bytes. */
  compact_min_bytes: number;
  /** Compaction deflates the snapshot records that compress (format version 4, RECORD_BATCH_DEFLATE). */
  snapshot_compress: boolean;
  /** Partitions (workers) of this node: part of every file name and header. */
  workers: number;
  /** Test hook (PIKV_TEST_HOOKS=1 and PIKV_TEST_ABORT_WRITE_FAILURES=N): each worker's first N attempts at writing an ABORT record fail. 0 otherwise. */
  test_abort_write_failures: number;
}

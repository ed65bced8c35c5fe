/**
 * Node and per-worker statistics, read without asking the workers: their counters and their
 * tables' accounting live in shared memory the main thread can read at any time. Counters a
 * worker is updating may be one batch stale; nothing else about them can be wrong.
 */
import { PROTOCOL_VERSION } from '../protocol/constants.js';
import { WorkerCounter } from '../engine/packet.js';
import type { Partition } from '../engine/partition.js';
import type { ServerConfig } from './config.js';

export interface WorkerStats {
  partition: number;
  keys: number;
  bytes_used: number;
  bytes_reserved: number;
  bytes_capacity: number;
  payload_bytes: number;
  index_slots: number;
  ops: number;
  gets: number;
  get_hits: number;
  puts: number;
  deletes: number;
  batches: number;
  /** Ops the main thread executed itself while the worker was idle (docs/ARCHITECTURE.md, "Main-thread fast path"). */
  main_thread_gets: number;
  main_thread_writes: number;
  out_of_memory: number;
  ops_queued: number;
  restarts: number;
  /** Persistence (0 without --data-dir): bytes of this partition's live files. */
  disk_bytes: number;
  /** Bytes written to disk ever (logs, snapshots, headers), and per logged op / payload byte. */
  disk_bytes_written: number;
  logged_ops: number;
  disk_bytes_per_op: number;
  disk_bytes_per_payload_byte: number;
  disk_errors: number;
  fsyncs: number;
  compactions: number;
  /** Live keys with an expiry (expired or not yet deleted). */
  expiring_keys: number;
  /** Keys this worker deleted because their expiry passed (on access or by active expiry). */
  expired_keys: number;
  expire_steps: number;
}

export interface NodeStats {
  protocol_version: number;
  uptime_s: number;
  connections: number;
  requests_inflight: number;
  workers: number;
  keys: number;
  bytes_used: number;
  bytes_capacity: number;
  ops: number;
  expiring_keys: number;
  expired_keys: number;
  /** Whether this node's clock is trusted for expiries, and why (node/clock.ts). */
  clock: { synced: boolean; reason: string };
  memory: { rss_bytes: number; heap_used_bytes: number; external_bytes: number; array_buffers_bytes: number };
  /** Ops dropped unexecuted because their client had gone. */
  ops_dropped: number;
  limits: Record<string, number>;
  per_worker: WorkerStats[];
}

interface StatsSource {
  readonly config: ServerConfig;
  readonly clock: { readonly synced: boolean; readonly reason: string };
  readonly partitions: Partition[];
  readonly started_ms: number;
}

function workerStats(partition: Partition): WorkerStats {
  const table = partition.table.stats();
  const c = partition.counters;
  const gets = c[WorkerCounter.GETS]! + partition.main_thread_gets;
  const puts = c[WorkerCounter.PUTS]!;
  const deletes = c[WorkerCounter.DELETES]!;
  const written = c[WorkerCounter.DISK_BYTES_WRITTEN]!;
  const logged_ops = c[WorkerCounter.LOGGED_OPS]!;
  const logged_payload = c[WorkerCounter.LOGGED_PAYLOAD_BYTES]!;
  return {
    partition: partition.index,
    keys: table.keys,
    bytes_used: table.bytes_used,
    bytes_reserved: table.bytes_reserved,
    bytes_capacity: table.bytes_capacity,
    payload_bytes: table.payload_bytes,
    index_slots: table.index_slots,
    ops: gets + puts + deletes,
    gets,
    get_hits: c[WorkerCounter.GET_HITS]! + partition.main_thread_hits,
    puts,
    deletes,
    batches: c[WorkerCounter.BATCHES]!,
    main_thread_gets: partition.main_thread_gets,
    main_thread_writes: partition.main_thread_writes,
    out_of_memory: c[WorkerCounter.OUT_OF_MEMORY]!,
    ops_queued: partition.ops_queued,
    restarts: partition.restarts,
    disk_bytes: c[WorkerCounter.DISK_BYTES]!,
    disk_bytes_written: written,
    logged_ops: logged_ops,
    disk_bytes_per_op: logged_ops > 0 ? round3(written / logged_ops) : 0,
    disk_bytes_per_payload_byte: logged_payload > 0 ? round3(written / logged_payload) : 0,
    disk_errors: c[WorkerCounter.DISK_ERRORS]!,
    fsyncs: c[WorkerCounter.FSYNCS]!,
    compactions: c[WorkerCounter.COMPACTIONS]!,
    expiring_keys: table.expiring_keys,
    expired_keys: c[WorkerCounter.EXPIRED_KEYS]!,
    expire_steps: c[WorkerCounter.EXPIRE_STEPS]!,
  };
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

export function collectStats(source: StatsSource, connections: number, requests_inflight: number): NodeStats {
  const per_worker = source.partitions.map(workerStats);
  const memory = process.memoryUsage();
  const { config } = source;
  return {
    protocol_version: PROTOCOL_VERSION,
    uptime_s: Math.round((Date.now() - source.started_ms) / 1000),
    connections,
    requests_inflight,
    workers: per_worker.length,
    keys: per_worker.reduce((sum, w) => sum + w.keys, 0),
    bytes_used: per_worker.reduce((sum, w) => sum + w.bytes_used, 0),
    bytes_capacity: per_worker.reduce((sum, w) => sum + w.bytes_capacity, 0),
    ops: per_worker.reduce((sum, w) => sum + w.ops, 0),
    expiring_keys: per_worker.reduce((sum, w) => sum + w.expiring_keys, 0),
    expired_keys: per_worker.reduce((sum, w) => sum + w.expired_keys, 0),
    clock: { synced: source.clock.synced, reason: source.clock.reason },
    memory: { rss_bytes: memory.rss, heap_used_bytes: memory.heapUsed, external_bytes: memory.external, array_buffers_bytes: memory.arrayBuffers },
    ops_dropped: source.partitions.reduce((total, partition) => total + partition.ops_dropped, 0),
    limits: {
      key_bytes_max: config.key_bytes_max,
      value_bytes_max: config.value_bytes_max,
      batch_ops_max: config.batch_ops_max,
      frame_bytes_max: config.frame_bytes_max,
      response_bytes_max: config.response_bytes_max,
      connection_requests_inflight_max: config.connection_requests_inflight_max,
      connections_max: config.connections_max,
      memory_bytes_max: config.memory_bytes_max,
    },
    per_worker,
  };
}

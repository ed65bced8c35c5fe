/** The shape of one benchmark run's results: every figure, as written to results.json. */
import type { LatencySummary } from './hdr.js';
import type { ThreadSplit } from './proc.js';
import type { SystemInfo } from './sysinfo.js';

/** Which client produced a figure. */
export type Driver =
  | 'pikv-raw' // pre-encoded frames over plain ws sockets
  | 'pikv-client-batch' // client library batch(), an object per op
  | 'pikv-client-columns' // client library batchColumns()
  | 'pikv-client-get' // client library get(), one call at a time
  | 'pikv-load-cli' // `pikv load FILE`
  | 'redis-benchmark' // Redis's C benchmark client
  | 'redis-resp-node' // this benchmark's raw RESP generator
  | 'redis-cli-pipe'; // `redis-cli --pipe`

export const DRIVER_NOTES: Readonly<Record<Driver, string>> = {
  'pikv-raw': 'pre-encoded pikv frames over plain `ws` sockets (server limit)',
  'pikv-client-batch': 'pikv client library `batch()` with one object per op',
  'pikv-client-columns': 'pikv client library `batchColumns()`',
  'pikv-client-get': 'pikv client library `get()`, one call at a time',
  'pikv-load-cli': '`pikv load FILE` (the CLI)',
  'redis-benchmark': '`redis-benchmark` (Redis C client)',
  'redis-resp-node': 'pre-encoded RESP pipeline from Node, replies counted by a minimal scanner',
  'redis-cli-pipe': '`redis-cli --pipe`',
};

export interface RunRecord {
  workload: string;
  system: 'pikv' | 'redis';
  driver: Driver;
  label: string;
  params: Record<string, number | string>;
  ops: number;
  requests: number;
  wall_s: number;
  ops_per_s: number;
  server_cpu_s: number;
  server_cpu_us_per_op: number;
  /** Kernel-mode part of server_cpu_s (socket syscalls, loopback TCP). */
  server_cpu_system_s?: number;
  /** pikv only: where the server's CPU went, from /proc/PID/task/TID/stat. */
  server_threads?: ThreadSplit;
  client_cpu_s: number;
  /** Client CPU seconds per wall second: near 1.0 means a saturated (single-threaded) client. */
  client_cpu_share: number;
  misses: number;
  errors: number;
  latency?: LatencySummary;
  /** redis-benchmark's own latency figures, in ms. */
  latency_ms?: { avg: number; p50: number; p99: number; max: number };
  /** Upper bounds: this machine's CPU seconds charged at each board's power. */
  ops_per_joule?: Record<string, number>;
  /** The same with CPU seconds scaled to a Pi core (energy.ts piEstimate): estimates, for the boards with a core score. */
  ops_per_joule_pi_scaled?: Record<string, { ops_per_joule: number; ops_per_s: number; slowdown: number }>;
  extra?: Record<string, number | string>;
}

export interface Comparison {
  workload: string;
  label: string;
  pikv: { driver: Driver; ops_per_s: number };
  redis: { driver: Driver; ops_per_s: number; note?: string };
  ratio: number;
}

export interface MemoryFigures {
  keys: number;
  pikv: { bytes_used: number; bytes_used_empty: number; bytes_per_key: number; rss_bytes: number; rss_bytes_empty: number; rss_bytes_per_key: number;
    per_worker: { partition: number; keys: number; bytes_used: number; index_slots: number; payload_bytes: number }[] };
  redis?: { used_memory: number; used_memory_empty: number; bytes_per_key: number; used_memory_rss: number; rss_bytes_empty: number; rss_bytes_per_key: number };
}

export interface Goal {
  name: string;
  target: string;
  measured: string;
  ratio: number | null;
  met: boolean | null;
}

export interface BenchResults {
  system: SystemInfo;
  options: Record<string, unknown>;
  zipf_check?: unknown;
  runs: RunRecord[];
  comparisons: Comparison[];
  memory?: MemoryFigures;
  goals: Goal[];
  notes: string[];
  /** This machine's single-core score on the benchmark the Pi scores were published with (core-score.ts). */
  core_score?: { events_per_s: number | null; source: string };
}

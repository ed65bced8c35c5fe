/**
 * What every workload gets: the options, the running servers, the results being collected,
 * and measure(), which wraps one load run with wall time, client CPU, server CPU (split by
 * thread for pikv) and the energy estimate, and records it.
 */
import { opsPerJoule, piScaledOpsPerJoule } from './energy.js';
import { cpuSeconds, splitThreadCpu, systemCpuSeconds, threadCpuSeconds } from './proc.js';
import type { BenchResults, Driver, RunRecord } from './results.js';
import type { RunningServer } from './servers.js';
import type { LoadTotals } from './redis-resp.js';

export interface BenchOptions {
  quick: boolean;
  only: string[];
  keys: number;
  seconds: number;
  key_bytes: number;
  value_bytes: number;
  batches: number[];
  connections_sweep: number[];
  value_sizes: number[];
  /** Connections and requests in flight per connection for the throughput workloads. */
  connections: number;
  depth: number;
  ycsb_batch: number;
  workers: number;
  max_memory: string;
  /** pikv serve --metrics: "off" measures what counting ops and latency costs (docs/OBSERVABILITY.md). */
  metrics: 'on' | 'off';
  out_dir: string;
  /** -P depths for the redis-benchmark side-by-side workload (always -c 50). */
  rb_pipelines: number[];
}

export interface BenchContext {
  options: BenchOptions;
  pikv: RunningServer;
  redis: RunningServer | null;
  results: BenchResults;
  /** Whether both servers hold the `keys` records of the main data set. */
  dataset_loaded: boolean;
  /** Whether the redis-benchmark binary is installed (it can measure pikv's RESP port without a Redis server). */
  redis_benchmark: boolean;
  log(line: string): void;
}

export interface RunMeta {
  workload: string;
  system: 'pikv' | 'redis';
  driver: Driver;
  label: string;
  params: Record<string, number | string>;
}

export interface RunOutcome extends LoadTotals {
  /** Set when the load ran in a child process (redis-benchmark, CLIs); else this process's CPU is used. */
  client_cpu_s?: number;
  wall_s?: number;
  server_cpu_s?: number;
  extra?: Partial<RunRecord>;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** "Pi 4B ops/J bound 588k, scaled 310k": the upper bound beside the Pi-scaled estimate. */
function energyNote(record: RunRecord): string {
  const board = 'Raspberry Pi 4B';
  const bound = record.ops_per_joule?.[board];
  if (bound === undefined) return '';
  const scaled = record.ops_per_joule_pi_scaled?.[board];
  return `  Pi 4B ops/J bound ${bound}${scaled === undefined ? '' : `, scaled ${scaled.ops_per_joule} (×${scaled.slowdown} CPU)`}`;
}

/** Runs `load` against `server` and records the run. */
export async function measure(ctx: BenchContext, server: RunningServer, meta: RunMeta, load: () => Promise<RunOutcome>): Promise<RunRecord> {
  const server_cpu_before_s = cpuSeconds(server.pid);
  const threads_before = threadCpuSeconds(server.pid);
  const system_before_s = systemCpuSeconds(server.pid);
  const main_system_before_s = systemCpuSeconds(server.pid, server.pid);
  const client_before = process.cpuUsage();
  const started_ms = performance.now();
  const outcome = await load();
  const measured_wall_s = (performance.now() - started_ms) / 1000;
  const client_usage = process.cpuUsage(client_before);
  const threads_after = threadCpuSeconds(server.pid);
  const server_system_s = systemCpuSeconds(server.pid) - system_before_s;
  const main_system_s = systemCpuSeconds(server.pid, server.pid) - main_system_before_s;
  const wall_s = outcome.wall_s ?? measured_wall_s;
  const server_cpu_s = outcome.server_cpu_s ?? cpuSeconds(server.pid) - server_cpu_before_s;
  const client_cpu_s = outcome.client_cpu_s ?? (client_usage.user + client_usage.system) / 1e6;
  const record: RunRecord = {
    ...meta,
    ops: outcome.ops,
    requests: outcome.requests,
    wall_s: round(wall_s, 3),
    ops_per_s: Math.round(outcome.ops / wall_s),
    server_cpu_s: round(server_cpu_s, 2),
    server_cpu_us_per_op: round((server_cpu_s * 1e6) / Math.max(outcome.ops, 1), 3),
    ...(outcome.server_cpu_s === undefined ? { server_cpu_system_s: round(server_system_s, 2) } : {}),
    client_cpu_s: round(client_cpu_s, 2),
    client_cpu_share: round(client_cpu_s / wall_s, 2),
    misses: outcome.misses,
    errors: outcome.errors,
    ops_per_joule: opsPerJoule(outcome.ops, wall_s, server_cpu_s),
    ...outcome.extra,
  };
  if (server.system === 'pikv' && outcome.server_cpu_s === undefined) {
    const split = splitThreadCpu(server.pid, server.worker_tids, threads_before, threads_after);
    record.server_threads = { main_s: round(split.main_s, 2), main_system_s: round(main_system_s, 2), workers_s: round(split.workers_s, 2), other_s: round(split.other_s, 2) };
  }
  const host_score = ctx.results.core_score?.events_per_s;
  if (host_score) {
    // The busiest thread bounds a board's throughput: Redis's event loop is the whole process; pikv's main
    // thread or one worker (workers' CPU split evenly). Unknown (0) when the run carried its own CPU figure.
    const workers = Math.max(1, server.worker_tids.length);
    const busiest_s = server.system === 'redis' ? server_cpu_s : record.server_threads ? Math.max(record.server_threads.main_s, record.server_threads.workers_s / workers) : 0;
    record.ops_per_joule_pi_scaled = piScaledOpsPerJoule(outcome.ops, wall_s, server_cpu_s, host_score, Math.min(busiest_s, server_cpu_s));
  }
  ctx.results.runs.push(record);
  const threads = record.server_threads ? ` [main ${record.server_threads.main_s}s${record.server_threads.main_system_s === undefined ? '' : ` (kernel ${record.server_threads.main_system_s}s)`} workers ${record.server_threads.workers_s}s other ${record.server_threads.other_s}s]` : '';
  const misses = record.misses + record.errors > 0 ? ` misses ${record.misses} errors ${record.errors}` : '';
  ctx.log(`  ${meta.system.padEnd(5)} ${meta.driver.padEnd(19)} ${meta.label.padEnd(28)} ${String(record.ops_per_s).padStart(10)} ops/s  server ${record.server_cpu_us_per_op} µs/op${record.server_cpu_system_s !== undefined ? ` (kernel ${record.server_cpu_system_s}s of ${record.server_cpu_s}s)` : ''}${threads}  client ${record.client_cpu_share} core${misses}${energyNote(record)}`);
  return record;
}

/** Adds a pikv/Redis comparison when both runs exist. */
export function compare(ctx: BenchContext, workload: string, label: string, pikv: RunRecord | undefined, redis: RunRecord | undefined, redis_ops_per_s?: number, note?: string): void {
  if (pikv === undefined || (redis === undefined && redis_ops_per_s === undefined)) return;
  const reference = redis_ops_per_s ?? redis!.ops_per_s;
  ctx.results.comparisons.push({
    workload, label,
    pikv: { driver: pikv.driver, ops_per_s: pikv.ops_per_s },
    redis: { driver: redis?.driver ?? 'redis-benchmark', ops_per_s: Math.round(reference), ...(note === undefined ? {} : { note }) },
    ratio: round(pikv.ops_per_s / Math.max(reference, 1), 2),
  });
}

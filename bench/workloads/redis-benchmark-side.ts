/**
 * redis-benchmark side by side: Redis's own C client, with the same flags, against pikv's
 * RESP port and against the Redis server the bench started: `-c 50`, `-P` 1 / 16 / 1024,
 * `-r <keys>` (1,000,000 by default, the main data set, so GETs hit), `-d <value bytes>`,
 * GET and SET as separate runs (`-t get` / `-t set`, `--csv`), so each run's server CPU
 * (/proc/PID/stat utime+stime over the measured run) belongs to one command. Reports ops/s,
 * pikv/Redis, and server CPU µs per op for both.
 */
import { compare, measure, type BenchContext } from '../lib/context.js';
import { cpuSeconds, splitThreadCpu, threadCpuSeconds } from '../lib/proc.js';
import { runRedisBenchmark } from '../lib/redis-benchmark.js';
import type { RunRecord } from '../lib/results.js';
import type { RunningServer } from '../lib/servers.js';
import { ensureDataset } from './dataset.js';

const WORKLOAD = 'redis-benchmark';
export const RB_CONNECTIONS = 50;

async function runAgainst(ctx: BenchContext, server: RunningServer, port: number, test: 'get' | 'set', pipeline: number): Promise<RunRecord> {
  const { options } = ctx;
  const label = `${test.toUpperCase()} -c ${RB_CONNECTIONS} -P ${pipeline}`;
  const params = { op: test.toUpperCase(), connections: RB_CONNECTIONS, pipeline, keyspace: options.keys, value_bytes: options.value_bytes };
  let server_cpu_at_start_s = 0;
  let threads_at_start = new Map<number, number>();
  return measure(ctx, server, { workload: WORKLOAD, system: server.system, driver: 'redis-benchmark', label, params }, async () => {
    // Only the measured run counts (not the calibration run before it): CPU, and for pikv the per-thread split.
    const result = await runRedisBenchmark(
      { port, test: { kind: 'builtin', name: test }, pipeline, connections: RB_CONNECTIONS, key_count: options.keys, value_bytes: options.value_bytes, seconds: options.seconds },
      () => {
        server_cpu_at_start_s = cpuSeconds(server.pid);
        if (server.system === 'pikv') threads_at_start = threadCpuSeconds(server.pid);
      },
    );
    const server_cpu_s = cpuSeconds(server.pid) - server_cpu_at_start_s;
    const split = server.system === 'pikv' ? splitThreadCpu(server.pid, server.worker_tids, threads_at_start, threadCpuSeconds(server.pid)) : null;
    const round = (value: number): number => Math.round(value * 100) / 100;
    return {
      requests: result.requests, ops: result.ops, misses: 0, errors: 0, wall_s: result.wall_s, client_cpu_s: result.client_cpu_s, server_cpu_s,
      extra: { latency_ms: result.latency_ms, ...(split === null ? {} : { server_threads: { main_s: round(split.main_s), workers_s: round(split.workers_s), other_s: round(split.other_s) } }) },
    };
  });
}

export async function runRedisBenchmarkSide(ctx: BenchContext): Promise<void> {
  if (ctx.redis_benchmark === false) {
    const line = 'redis-benchmark not found (Debian: apt-get install -y redis-tools): the redis-benchmark workload is skipped';
    ctx.log(`  ${line}`);
    ctx.results.notes.push(line);
    return;
  }
  const resp_port = ctx.pikv.resp_port;
  if (resp_port === undefined) throw new Error('pikv was started without a RESP port');
  await ensureDataset(ctx);
  for (const pipeline of ctx.options.rb_pipelines) {
    for (const test of ['get', 'set'] as const) {
      const pikv = await runAgainst(ctx, ctx.pikv, resp_port, test, pipeline);
      const redis = ctx.redis === null ? undefined : await runAgainst(ctx, ctx.redis, ctx.redis.port, test, pipeline);
      compare(ctx, WORKLOAD, pikv.label, pikv, redis);
      if (redis !== undefined) {
        ctx.log(`    pikv/Redis ${(pikv.ops_per_s / Math.max(redis.ops_per_s, 1)).toFixed(2)}×; server CPU per op pikv ${pikv.server_cpu_us_per_op} µs, Redis ${redis.server_cpu_us_per_op} µs`);
      }
    }
  }
}

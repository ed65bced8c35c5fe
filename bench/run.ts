/**
 * `npm run bench`: starts a pikv node and (when installed) a Redis server on free loopback
 * ports, runs the selected workloads against both, writes bench/results/<timestamp>/
 * (results.json, report.md, SVG charts) and stops both servers by PID, also on errors and
 * Ctrl-C.
 *
 *   npm run bench                                  # everything (~10 min on 2 cores)
 *   npm run bench -- --only redis-benchmark        # redis-benchmark, same flags, against pikv's RESP port and Redis
 *   npm run bench -- --quick                       # ~1 min smoke run
 *   npm run bench -- --only ycsb,latency --keys 100000 --seconds 3
 *
 * Workloads, in the order they run: load, memory, batch, connections, ycsb, latency, values,
 * redis-benchmark (the same redis-benchmark flags against pikv's RESP port and Redis),
 * compression (client-side value compression on against off, on its own node).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { memorySnapshot } from './lib/baseline.js';
import type { BenchContext, BenchOptions } from './lib/context.js';
import { judgeGoals } from './lib/goals.js';
import { writeReport } from './lib/report.js';
import type { BenchResults } from './lib/results.js';
import { REDIS_INSTALL_HINT, redisVersion, startPikv, startRedis, type RunningServer } from './lib/servers.js';
import { systemInfo } from './lib/sysinfo.js';
import { checkZipfSkew } from './lib/zipf.js';
import { runBatchSize } from './workloads/batch-size.js';
import { runBulkLoad } from './workloads/bulk-load.js';
import { runConnections } from './workloads/connections.js';
import { runLatency } from './workloads/latency.js';
import { runMemory } from './workloads/memory.js';
import { runValueSize } from './workloads/value-size.js';
import { runYcsb } from './workloads/ycsb.js';
import { runRedisBenchmarkSide } from './workloads/redis-benchmark-side.js';
import { runCompression } from './workloads/compression.js';
import { hostCoreScore } from './lib/core-score.js';
import { redisBenchmarkInstalled } from './lib/servers.js';

export const WORKLOADS = ['load', 'memory', 'batch', 'connections', 'ycsb', 'latency', 'values', 'redis-benchmark', 'compression'] as const;
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

const USAGE = `usage: npm run bench -- [options]
  --quick                 ~1 minute smoke run (100k keys, short runs, fewer sweep points)
  --only LIST             workloads, comma-separated: ${WORKLOADS.join(',')}
  --keys N                records in the data set (default 1000000; quick 100000)
  --seconds S             seconds per measured run (default 3; quick 0.7)
  --batches LIST          ops per request for the batch sweep (default 1,16,128,1024,8192)
  --connections LIST      connection counts for the unbatched sweep (default 1,8,50,64)
  --values LIST           value sizes in bytes (default 16,128,1024,16384,1048576)
  --conns N --depth N     connections x requests in flight for throughput runs (default 2 x 8;
                          redis-benchmark gets -c N*depth)
  --ycsb-batch N          ops per request for YCSB (default 1024)
  --value-bytes N --key-bytes N   record shape (default 100, 16)
  --workers N --max-memory SIZE   pikv serve settings (default 4, 2gb)
  --metrics on|off        pikv serve --metrics (default on); off measures the metrics' cost
  --rb-pipelines LIST     -P depths for the redis-benchmark workload, always -c 50 (default 1,16,1024)
  --host-core-score N     this machine's sysbench cpu single-thread events per CPU-second, for the
                          Pi-scaled energy estimate (default: measure it with sysbench, ~1 CPU-second,
                          if installed: apt-get install -y sysbench; else the estimate is left out)
  --no-redis              benchmark pikv alone
  --out DIR               results folder (default bench/results/<timestamp>)
  --report DIR            re-judge the goals and rewrite report.md and charts from DIR/results.json`;

/** Rebuilds a results folder's report from its results.json (after a report format change). */
function rereport(dir: string): void {
  const results = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as BenchResults;
  results.goals = judgeGoals(results, Number(results.options.ycsb_batch ?? 1024));
  console.log(`rewrote ${writeReport(results, dir).join(', ')} in ${dir}`);
}

function numbers(text: string, name: string): number[] {
  const list = text.split(',').map((item) => Number(item.trim()));
  if (list.length === 0 || list.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`--${name} takes positive numbers separated by commas, got ${text}`);
  return list;
}

function metricsOption(value: string | undefined): 'on' | 'off' {
  if (value === undefined || value === 'on' || value === 'off') return value ?? 'on';
  throw new Error(`--metrics takes on or off, got ${value}`);
}

function parseOptions(): BenchOptions & { no_redis: boolean; host_core_score: number | undefined } {
  const { values: args } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, only: { type: 'string' }, keys: { type: 'string' }, seconds: { type: 'string' },
      batches: { type: 'string' }, connections: { type: 'string' }, values: { type: 'string' }, conns: { type: 'string' }, depth: { type: 'string' },
      'ycsb-batch': { type: 'string' }, 'value-bytes': { type: 'string' }, 'key-bytes': { type: 'string' }, workers: { type: 'string' },
      'max-memory': { type: 'string' }, metrics: { type: 'string' }, 'rb-pipelines': { type: 'string' }, 'host-core-score': { type: 'string' }, report: { type: 'string' }, 'no-redis': { type: 'boolean', default: false }, out: { type: 'string' }, help: { type: 'boolean', default: false },
    },
  });
  if (args.report !== undefined) {
    rereport(args.report);
    process.exit(0);
  }
  if (args.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = args.quick === true;
  const only = args.only === undefined ? [...WORKLOADS] : args.only.split(',').map((w) => w.trim());
  for (const name of only) if (!(WORKLOADS as readonly string[]).includes(name)) throw new Error(`unknown workload ${name}; choose from ${WORKLOADS.join(',')}`);
  const one = (text: string | undefined, fallback: number, name: string): number => (text === undefined ? fallback : numbers(text, name)[0]!);
  const key_bytes = one(args['key-bytes'], 16, 'key-bytes');
  if (key_bytes < 8) throw new Error('--key-bytes must be at least 8');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    quick, only,
    keys: one(args.keys, quick ? 100_000 : 1_000_000, 'keys'),
    seconds: one(args.seconds, quick ? 0.7 : 3, 'seconds'),
    key_bytes,
    value_bytes: one(args['value-bytes'], 100, 'value-bytes'),
    batches: numbers(args.batches ?? (quick ? '1,1024' : '1,16,128,1024,8192'), 'batches'),
    connections_sweep: numbers(args.connections ?? (quick ? '1,50' : '1,8,50,64'), 'connections'),
    value_sizes: numbers(args.values ?? (quick ? '128,16384,1048576' : '16,128,1024,16384,1048576'), 'values'),
    connections: one(args.conns, 2, 'conns'),
    depth: one(args.depth, 8, 'depth'),
    ycsb_batch: one(args['ycsb-batch'], 1024, 'ycsb-batch'),
    workers: one(args.workers, 4, 'workers'),
    max_memory: args['max-memory'] ?? '2gb',
    metrics: metricsOption(args.metrics),
    out_dir: args.out ?? path.join(RESULTS_DIR, stamp),
    rb_pipelines: numbers(args['rb-pipelines'] ?? '1,16,1024', 'rb-pipelines'),
    no_redis: args['no-redis'] === true,
    host_core_score: args['host-core-score'] === undefined ? undefined : numbers(args['host-core-score'], 'host-core-score')[0]!,
  };
}

async function runWorkloads(ctx: BenchContext): Promise<void> {
  const empty = await memorySnapshot(ctx.pikv, ctx.redis);
  const steps: Record<(typeof WORKLOADS)[number], () => Promise<void>> = {
    load: () => runBulkLoad(ctx),
    memory: () => runMemory(ctx, empty),
    batch: () => runBatchSize(ctx),
    connections: () => runConnections(ctx),
    ycsb: () => runYcsb(ctx),
    latency: () => runLatency(ctx),
    values: () => runValueSize(ctx),
    'redis-benchmark': () => runRedisBenchmarkSide(ctx),
    compression: () => runCompression(ctx),
  };
  for (const name of WORKLOADS) {
    if (!ctx.options.only.includes(name)) continue;
    const started_ms = performance.now();
    ctx.log(`\n== ${name}`);
    try {
      await steps[name]();
    } catch (error) {
      const message = `workload ${name} failed: ${(error as Error).stack ?? String(error)}`;
      ctx.results.notes.push(message);
      ctx.log(`  ${message}`);
    }
    ctx.log(`  (${name}: ${((performance.now() - started_ms) / 1000).toFixed(1)} s)`);
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const version = options.no_redis ? null : redisVersion();
  if (!options.no_redis && version === null) console.log(REDIS_INSTALL_HINT);
  const zipf = checkZipfSkew(Math.min(options.keys, 1_000_000));
  console.log(`zipfian self-check (θ=0.99, ${zipf.samples} samples): rank 0 ${(zipf.top1_share_measured * 100).toFixed(2)}% (theory ${(zipf.top1_share_expected * 100).toFixed(2)}%), ` +
    `top 10 ${(zipf.top10_share_measured * 100).toFixed(2)}% (theory ${(zipf.top10_share_expected * 100).toFixed(2)}%): ${zipf.ok ? 'ok' : 'FAILED'}`);
  if (!zipf.ok) throw new Error('the Zipfian generator is not skewed as theory says; refusing to run');
  mkdirSync(options.out_dir, { recursive: true });
  const { no_redis: _, host_core_score, out_dir, ...shown } = options;
  const core_score = hostCoreScore(host_core_score);
  console.log(`this machine's single-core score for the Pi-scaled energy estimate: ${core_score.events_per_s ?? 'none'} (${core_score.source})`);
  const results: BenchResults = {
    system: systemInfo(version), options: shown, zipf_check: zipf, runs: [], comparisons: [], goals: [],
    notes: [`Client and servers share this machine's ${systemInfo(version).cores} cores; each run reports both sides' CPU.`],
    core_score: { events_per_s: core_score.events_per_s, source: core_score.source },
  };
  let pikv: RunningServer | null = null;
  let redis: RunningServer | null = null;
  try {
    const redis_benchmark = redisBenchmarkInstalled();
    pikv = await startPikv({ workers: options.workers, max_memory: options.max_memory, resp: options.only.includes('redis-benchmark') && redis_benchmark,
      serve_args: ['--metrics', options.metrics] });
    redis = version === null ? null : await startRedis();
    console.log(`pikv ${pikv.url} (pid ${pikv.pid}, worker threads ${pikv.worker_tids.join(',')})${redis ? `; Redis ${version} ${redis.url} (pid ${redis.pid})` : ''}`);
    const ctx: BenchContext = { options, pikv, redis, results, dataset_loaded: false, redis_benchmark, log: (line) => console.log(line) };
    await runWorkloads(ctx);
  } finally {
    await Promise.all([pikv?.stop(), redis?.stop()]);
  }
  results.goals = judgeGoals(results, options.ycsb_batch);
  const files = writeReport(results, out_dir);
  console.log('\nGoals:');
  for (const goal of results.goals) console.log(`  ${goal.met === null ? 'n/a   ' : goal.met ? 'MET   ' : 'MISSED'} ${goal.name}: ${goal.measured} (ratio ${goal.ratio ?? '–'}; target ${goal.target})`);
  console.log(`\nResults: ${out_dir}/ (${files.join(', ')})`);
}

main().catch((error: unknown) => {
  console.error(`bench: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

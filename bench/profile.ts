/**
 * `npm run profile`: records where a pikv node spends its CPU under one workload.
 *
 *  1. Starts `pikv serve` under `node --cpu-prof --cpu-prof-dir=DIR` (one .cpuprofile per
 *     thread: main and every partition worker), fills the data set, runs the workload,
 *     stops the node gracefully so the profiles are written, and prints a top-N self-time
 *     table per thread plus the per-thread CPU split from /proc.
 *  2. With --clinic, runs the same workload again under `npx --yes clinic@13 flame` (fetched
 *     on demand, not a dependency) for a main-thread flame graph.
 *
 *   npm run profile -- --workload get --keys 1000000 --seconds 5 [--clinic]
 *   npm run profile -- --workload get --value-bytes 16384 --batch 64 --keys 10000
 *
 * Workloads: get | put | ycsb-b (raw frames ×1024, 2 conns × 8), unbatched (raw GET ×1,
 * 50 conns), latency (client get(), 1 conn), load (`pikv load` of the data set).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchContext, BenchOptions } from './lib/context.js';
import { formatSummary, summarizeProfile } from './lib/cpuprofile.js';
import { pikvClient, pikvRaw, type LoadShape } from './lib/drivers.js';
import { startPikv, type PikvStartOptions } from './lib/servers.js';
import { makeBatches, YCSB_READ_SHARE } from './lib/ycsb.js';
import { uniformChooser } from './lib/zipf.js';
import { runBulkLoad } from './workloads/bulk-load.js';
import { ensureDataset, mainKeys, recordValue } from './workloads/dataset.js';

const PROFILE_WORKLOADS = ['get', 'put', 'ycsb-b', 'unbatched', 'latency', 'load'] as const;
type ProfileWorkload = (typeof PROFILE_WORKLOADS)[number];
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

interface ProfileOptions {
  workload: ProfileWorkload;
  keys: number;
  seconds: number;
  top: number;
  workers: number;
  value_bytes: number;
  /** Ops per request for get/put/ycsb-b (default 1024). */
  batch_ops: number;
  clinic: boolean;
  out_dir: string;
}

function parseOptions(): ProfileOptions {
  const { values: args } = parseArgs({
    options: {
      workload: { type: 'string', default: 'get' }, keys: { type: 'string', default: '1000000' }, seconds: { type: 'string', default: '5' },
      top: { type: 'string', default: '15' }, 'value-bytes': { type: 'string', default: '100' }, batch: { type: 'string' }, workers: { type: 'string', default: '4' }, clinic: { type: 'boolean', default: false }, out: { type: 'string' },
    },
  });
  const workload = args.workload as ProfileWorkload;
  if (!PROFILE_WORKLOADS.includes(workload)) throw new Error(`--workload must be one of ${PROFILE_WORKLOADS.join(', ')}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    workload, keys: Number(args.keys), seconds: Number(args.seconds), top: Number(args.top), workers: Number(args.workers), clinic: args.clinic === true,
    value_bytes: Number(args['value-bytes']), batch_ops: Number(args.batch ?? 1024),
    out_dir: args.out ?? path.join(RESULTS_DIR, `profile-${workload}-${stamp}`),
  };
}

function benchOptions(options: ProfileOptions): BenchOptions {
  const { keys, seconds, workers, out_dir, value_bytes } = options;
  return {
    quick: false, only: [], keys, seconds, key_bytes: 16, value_bytes, batches: [], connections_sweep: [], value_sizes: [],
    connections: 2, depth: 8, ycsb_batch: 1024, workers, max_memory: '2gb', metrics: 'on', out_dir, rb_pipelines: [],
  };
}

async function runWorkload(ctx: BenchContext, workload: ProfileWorkload, batch_size: number): Promise<void> {
  const { options } = ctx;
  if (workload === 'load') return runBulkLoad(ctx);
  await ensureDataset(ctx);
  const single = workload === 'unbatched' || workload === 'latency';
  const read_share = workload === 'put' ? 0 : workload === 'ycsb-b' ? YCSB_READ_SHARE.B! : 1;
  const batch_ops = single ? 1 : batch_size;
  const batches = makeBatches({ batch_ops, batch_count: Math.ceil(Math.min(options.keys, 262_144 * batch_ops) / batch_ops), read_share, choose: uniformChooser(options.keys, 3), seed: 3 });
  const shape: LoadShape = {
    batches, keys: mainKeys(ctx), value: recordValue(ctx, 1), seconds: options.seconds,
    connections: workload === 'unbatched' ? 50 : workload === 'latency' ? 1 : options.connections, depth: single ? 1 : options.depth,
  };
  const meta = { workload: `profile-${workload}`, label: workload, params: { batch_ops, op: read_share === 1 ? 'GET' : read_share === 0 ? 'PUT' : 'mix' } };
  if (workload === 'latency') await pikvClient(ctx, meta, shape, 'get');
  else await pikvRaw(ctx, meta, shape);
}

async function profileOnce(options: ProfileOptions, server_options: PikvStartOptions, label: string): Promise<void> {
  const pikv = await startPikv(server_options);
  console.log(`${label}: pikv ${pikv.url} (pid ${pikv.pid})`);
  const ctx: BenchContext = {
    options: benchOptions(options), pikv, redis: null, dataset_loaded: false, redis_benchmark: false, log: (line) => console.log(line),
    results: { system: { date: '', cpu_model: '', cores: 0, memory_gib: 0, kernel: '', node_version: '', redis_version: null, pikv_commit: '' }, options: {}, runs: [], comparisons: [], goals: [], notes: [] },
  };
  try {
    await runWorkload(ctx, options.workload, options.batch_ops);
  } finally {
    await pikv.stop();
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const cpu_dir = path.join(options.out_dir, 'cpuprofile');
  mkdirSync(cpu_dir, { recursive: true });
  await profileOnce(options, { workers: options.workers, max_memory: '2gb', node_args: ['--cpu-prof', `--cpu-prof-dir=${cpu_dir}`] }, 'cpu-prof');
  // Files are CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
  const files = readdirSync(cpu_dir).filter((file) => file.endsWith('.cpuprofile')).sort((a, b) => Number(a.split('.')[4]) - Number(b.split('.')[4]));
  console.log('');
  for (const file of files) {
    const thread = Number(file.split('.')[4]);
    console.log(formatSummary(summarizeProfile(path.join(cpu_dir, file), options.top), thread === 0 ? 'main thread' : `worker thread ${thread}`));
    console.log('');
  }
  console.log(`CPU profiles (open in Chrome DevTools > Performance, or speedscope): ${cpu_dir}`);
  if (options.clinic) {
    const clinic_dir = path.join(options.out_dir, 'clinic');
    mkdirSync(clinic_dir, { recursive: true });
    await profileOnce(options, { workers: options.workers, max_memory: '2gb', wrapper: ['npx', '--yes', 'clinic@13', 'flame', '--dest', clinic_dir, '--'] }, 'clinic flame');
    console.log(`clinic flame output (main thread): ${clinic_dir}`);
  }
}

main().catch((error: unknown) => {
  console.error(`profile: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

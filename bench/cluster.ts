/**
 * `npm run bench:cluster`: cluster throughput for 1..4 nodes, each node held to a Pi-like
 * budget (issue #4, item 7).
 *
 * Every node runs `pikv serve` in its own network namespace (10.204.0.<i>, veth into a
 * bridge, the link shaped with tc tbf both ways) and in its own cgroup v1 `cpu` group with a
 * CFS quota; the load generator (bench/lib/cluster-loadgen.ts) runs in a client namespace.
 * For each cluster size it measures GET / PUT / 95-5 mix (16 B keys, 100 B values, batches of
 * 1024) with ring-aware direct routing and through one entry node, repeated, and reports
 * medians, scaling ratios and each node's CPU; then GETs of 1 MiB values against the link's
 * wire time. Everything it creates (namespaces, veths, bridge, qdiscs, cgroups, processes)
 * is removed again, also on errors and Ctrl-C.
 *
 *   npm run bench:cluster                 # full, a few minutes
 *   npm run bench:cluster -- --quick      # ~1 minute
 *   npm run bench:cluster -- --help
 */
import { mkdirSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCompressValues } from './lib/compress-values-run.js';
import { parseArgs } from 'node:util';
import { Sandbox, SUBNET, CLIENT_HOST, loadAverage, readCgroupCpu, sandboxUnavailable, threadsOutside, type CgroupCpuStat, type CpuSpec, type LinkSpec } from './lib/cluster-net.js';
import type { Command, Mode, RunTotals, Workload } from './lib/cluster-loadgen.js';
import { writeClusterReport, type ClusterResults, type ClusterRun, type RunMode } from './lib/cluster-report.js';
import { cpuSeconds } from './lib/proc.js';
import { spawnTracked, stopProcess } from './lib/processes.js';
import { LOADGEN_PATH, LoadGenProcess } from './lib/loadgen-process.js';
import { PIKV_CLI_PATH } from './lib/servers.js';
import { keyOf, type KeySpec } from './lib/ycsb.js';
import { HashRing } from '../src/routing/ring.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';
import { systemInfo } from './lib/sysinfo.js';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const PORT = 7070;
const SECRET = 'bench-cluster-secret';

const USAGE = `usage: npm run bench:cluster -- [options]
  --quick               ~1 minute: 1, 2 and 4 nodes, 100k keys, 0.5 s runs, GET and PUT, 1 MiB at 1 and 4 nodes
  --nodes LIST          cluster sizes (default 1,2,3,4; quick 1,2,4)
  --workloads LIST      get,put,mix (default all; quick get,put)
  --wide LIST           workloads also run as direct-wide: client batches of --batch x nodes, so each
                        node still gets --batch ops per request (default get,put; quick get; "" = none)
  --keys N              records preloaded (default 500000; quick 100000)
  --seconds S           seconds per run (default 2; quick 0.5)
  --warmup S            unmeasured seconds x nodes per workload and mode on each new cluster (default 1; quick 0.5)
  --reps N              runs per point, medians reported (default 3)
  --cpus X              CPU quota per node in CPUs (default 0.25; 0 = none)
  --period-us N         CFS period (default 5000: short throttle stalls, closer to a uniformly slower CPU)
  --shares N            cpu.shares of the bench's parent cgroup (default 16384), so that a busy
                        neighbour cannot push the nodes below their quotas
  --link RATE           tc tbf rate per node link, both ways (default 1gbit; "none" = unshaped)
  --burst SIZE --latency T   tbf burst and latency (default 256kb, 5ms)
  --batch N             ops per client batch (default 1024)
  --lanes N --depth N   lanes x batches in flight (default 2 x 8; a direct lane = one socket per node)
  --workers N           partition workers per node (default 2)
  --big-keys N          1 MiB values preloaded for the large-value run (default 96; quick 48; 0 = skip)
  --big-nodes LIST      cluster sizes for the 1 MiB run (default = --nodes; quick 1,4)
  --big-depth N         4-value batches in flight per lane (2 lanes) in the 1 MiB run (default 4)
  --compression         instead of the cluster runs: client-side value compression on against off
                        over one node's shaped link (--link, default here 100mbit, a Pi 3B's port),
                        1 MiB values of three kinds, 5 alternating rounds (bench/compress-values.ts)
  --out DIR             results folder (default bench/results/cluster-<timestamp>)
  --report DIR          rewrite report.md and charts from DIR/results.json`;

interface Options {
  quick: boolean;
  nodes: number[];
  workloads: Workload[];
  wide: Workload[];
  keys: number;
  seconds: number;
  warmup: number;
  reps: number;
  cpu: CpuSpec;
  shares: number;
  link: LinkSpec;
  batch_ops: number;
  lanes: number;
  depth: number;
  workers: number;
  big_keys: number;
  big_nodes: number[];
  big_depth: number;
  out_dir: string;
}

function list(text: string, name: string): number[] {
  const values = text.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`--${name} takes whole numbers separated by commas`);
  return values;
}

function parseOptions(): Options | null {
  const { values: a } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, nodes: { type: 'string' }, workloads: { type: 'string' }, wide: { type: 'string' }, keys: { type: 'string' },
      seconds: { type: 'string' }, warmup: { type: 'string' }, reps: { type: 'string' }, cpus: { type: 'string' }, 'period-us': { type: 'string' }, shares: { type: 'string' }, link: { type: 'string' },
      burst: { type: 'string' }, latency: { type: 'string' }, batch: { type: 'string' }, lanes: { type: 'string' }, depth: { type: 'string' },
      workers: { type: 'string' }, 'big-keys': { type: 'string' }, 'big-nodes': { type: 'string' }, 'big-depth': { type: 'string' }, out: { type: 'string' }, report: { type: 'string' },
      help: { type: 'boolean', default: false }, compression: { type: 'boolean', default: false },
    },
  });
  if (a.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (a.compression === true) {
    const link = a.link ?? '100mbit';
    const rounds = a.reps ?? '5';
    console.log(`bench:cluster --compression: 1 MiB values over a ${link} link, compression on vs off, ${rounds} rounds`);
    compression_args = ['--link', link, '--sizes', '1048576', '--rounds', rounds, '--seconds', a.seconds ?? '2'];
    return null;
  }
  if (a.report !== undefined) {
    const results = JSON.parse(readFileSync(path.join(a.report, 'results.json'), 'utf8')) as ClusterResults;
    console.log(`rewrote ${writeClusterReport(results, a.report).join(', ')} in ${a.report}`);
    process.exit(0);
  }
  const quick = a.quick === true;
  const nodes = list(a.nodes ?? (quick ? '1,2,4' : '1,2,3,4'), 'nodes');
  if (Math.max(...nodes) > 8) throw new Error('--nodes: at most 8');
  const workloads = (a.workloads ?? (quick ? 'get,put' : 'get,put,mix')).split(',').map((w) => w.trim()) as Workload[];
  for (const w of workloads) if (!['get', 'put', 'mix'].includes(w)) throw new Error(`unknown workload ${w}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const link_rate = a.link ?? '1gbit';
  return {
    quick, nodes, workloads,
    wide: (a.wide ?? (quick ? 'get' : 'get,put')).split(',').map((w) => w.trim()).filter(Boolean) as Workload[],
    keys: Number(a.keys ?? (quick ? 100_000 : 500_000)),
    seconds: Number(a.seconds ?? (quick ? 0.5 : 2)),
    warmup: Number(a.warmup ?? (quick ? 0.5 : 1)),
    reps: Number(a.reps ?? 3),
    cpu: { cpus: Number(a.cpus ?? 0.25), period_us: Number(a['period-us'] ?? 5_000) },
    shares: Number(a.shares ?? 16384),
    link: { rate: link_rate === 'none' ? '' : link_rate, burst: a.burst ?? '256kb', latency: a.latency ?? '5ms' },
    batch_ops: Number(a.batch ?? 1024),
    lanes: Number(a.lanes ?? 2),
    depth: Number(a.depth ?? 8),
    workers: Number(a.workers ?? 2),
    big_keys: Number(a['big-keys'] ?? (quick ? 48 : 96)),
    big_depth: Number(a['big-depth'] ?? 4),
    big_nodes: a['big-nodes'] !== undefined ? list(a['big-nodes'], 'big-nodes') : quick ? nodes.filter((n) => n === 1 || n === Math.max(...nodes)) : nodes,
    out_dir: a.out ?? path.join(RESULTS_DIR, `cluster-${stamp}`),
  };
}

/** The load generator, in the client namespace and its cgroup. */
function startLoadGen(sandbox: Sandbox, cgroup: string): LoadGenProcess {
  const script = `echo $$ > '${cgroup}/cgroup.procs' && exec ip netns exec '${sandbox.client_ns}' "$@"`;
  const child = spawnTracked('/bin/sh', ['-c', script, 'sh', process.execPath, LOADGEN_PATH, '--loadgen'], { stdio: ['pipe', 'pipe', 'pipe'] });
  sandbox.pids.add(child.pid!);
  return new LoadGenProcess(child);
}

interface Node {
  id: string;
  index: number;
  url: string;
  pid: number;
  cgroup: string;
  child: ChildProcess;
  output: () => string;
}

function nodeUrl(index: number): string {
  return `ws://${SUBNET}.${index}:${PORT}`;
}

function startNode(sandbox: Sandbox, options: Options, index: number, cgroup: string, join: string | null): Promise<Node> {
  const url = nodeUrl(index);
  const args = [PIKV_CLI_PATH, 'serve', '--host', `${SUBNET}.${index}`, '--port', String(PORT), '--advertise', url, '--node-id', `n${index}`,
    '--workers', String(options.workers), '--max-memory', '512mb'];
  if (join !== null) args.push('--join', join);
  // The shell enters the cgroup first, then execs into the namespace and node: every thread
  // node ever starts is born inside the cgroup.
  const script = `echo $$ > '${cgroup}/cgroup.procs' && exec ip netns exec '${sandbox.nodeNs(index)}' "$@"`;
  // The secret goes in the environment: pikv refuses it on argv, where ps shows it.
  const child = spawnTracked('/bin/sh', ['-c', script, 'sh', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIKV_CLUSTER_SECRET: SECRET } });
  sandbox.pids.add(child.pid!);
  let text = '';
  const collect = (chunk: Buffer): void => {
    text += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node n${index} did not start within 20 s:\n${text}`)), 20_000);
    const check = (): void => {
      const match = /listening on \S+ .*pid (\d+)/.exec(text);
      if (match === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      const pid = Number(match[1]);
      sandbox.pids.add(pid);
      resolve({ id: `n${index}`, index, url, pid, cgroup, child, output: () => text });
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node n${index} exited with ${code}:\n${text}`));
    });
  });
}

async function startCluster(sandbox: Sandbox, options: Options, loadgen: LoadGenProcess, count: number, cgroups: string[]): Promise<Node[]> {
  const first = await startNode(sandbox, options, 1, cgroups[0]!, null);
  const rest = await Promise.all(Array.from({ length: count - 1 }, (_, i) => startNode(sandbox, options, i + 2, cgroups[i + 1]!, first.url)));
  const nodes = [first, ...rest];
  await loadgen.send({ cmd: 'wait', urls: nodes.map((n) => n.url), ids: nodes.map((n) => n.id), timeout_ms: 60_000 });
  for (const node of nodes) {
    const outside = threadsOutside(node.pid, node.cgroup);
    if (outside.length > 0) throw new Error(`node ${node.id}: threads ${outside.join(',')} are not in its cgroup`);
  }
  return nodes;
}

async function stopCluster(sandbox: Sandbox, nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map(async (node) => {
    await stopProcess(node.child, 5_000);
    sandbox.pids.delete(node.pid);
    sandbox.pids.delete(node.child.pid!);
  }));
}

interface Snapshot {
  at_ms: number;
  cpu_s: number[];
  cgroup: CgroupCpuStat[];
}

function snapshot(nodes: Node[]): Snapshot {
  return { at_ms: performance.now(), cpu_s: nodes.map((n) => cpuSeconds(n.pid)), cgroup: nodes.map((n) => readCgroupCpu(n.cgroup)) };
}

async function measure(loadgen: LoadGenProcess, nodes: Node[], command: Extract<Command, { cmd: 'run' }>, meta: Omit<ClusterRun, 'ops_per_s' | 'totals' | 'node_cpu' | 'client_cpu_cores' | 'load_average'>): Promise<ClusterRun> {
  let before: Snapshot | null = null;
  const answer = await loadgen.send<{ totals: RunTotals }>(command, () => (before = snapshot(nodes)));
  const after = snapshot(nodes);
  const start = before ?? after;
  const wall_s = (after.at_ms - start.at_ms) / 1000;
  const totals = answer.totals;
  return {
    ...meta,
    ops_per_s: totals.ops / totals.wall_s,
    totals,
    client_cpu_cores: totals.client_cpu_s / totals.wall_s,
    load_average: loadAverage(),
    node_cpu: nodes.map((node, i) => {
      const periods = after.cgroup[i]!.nr_periods - start.cgroup[i]!.nr_periods;
      return {
        id: node.id,
        cpu_cores: (after.cpu_s[i]! - start.cpu_s[i]!) / wall_s,
        throttled_share: periods > 0 ? (after.cgroup[i]!.nr_throttled - start.cgroup[i]!.nr_throttled) / periods : 0,
        throttled_s: after.cgroup[i]!.throttled_s - start.cgroup[i]!.throttled_s,
      };
    }),
  };
}

/** Share of the data set's keys each node owns (the ring every node and client builds). */
function keyShares(ids: string[], key_count: number, spec: KeySpec): Record<string, number> {
  const ring = new HashRing(ids.map((id) => ({ id, url: id, weight: 1 })));
  const counts = new Map<string, number>();
  for (let i = 0; i < key_count; i++) {
    const key = keyOf(i, spec);
    const owner = ring.ownerOf(murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED)).id;
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  return Object.fromEntries(ids.map((id) => [id, (counts.get(id) ?? 0) / key_count]));
}

function describe(run: ClusterRun): string {
  const cpu = run.node_cpu.map((n) => `${n.cpu_cores.toFixed(2)}${n.throttled_share > 0.05 ? `(t${Math.round(n.throttled_share * 100)}%)` : ''}`).join(' ');
  const bad = run.totals.misses + run.totals.errors > 0 ? `  MISSES ${run.totals.misses} ERRORS ${run.totals.errors} ${JSON.stringify(run.totals.error_codes)}` : '';
  return `  ${run.nodes}n ${run.workload.padEnd(7)} ${run.mode.padEnd(6)} #${run.rep}  ${Math.round(run.ops_per_s).toLocaleString('en').padStart(10)} ops/s  ` +
    `node CPU ${cpu}  client ${run.client_cpu_cores.toFixed(2)}  load ${run.load_average[0].toFixed(2)}${bad}`;
}

/** Set by parseOptions for --compression: the compress-values run that replaces the cluster runs. */
let compression_args: string[] | null = null;

async function main(): Promise<void> {
  const parsed = parseOptions();
  if (parsed === null) {
    await runCompressValues(compression_args!, (line) => console.log(line));
    return;
  }
  const options = parsed;
  const tag = `pkb${process.pid % 100000}`;
  const why = sandboxUnavailable(tag);
  if (why !== null) {
    console.log(`bench:cluster: skipped: ${why}`);
    return;
  }
  const max_nodes = Math.max(...options.nodes, ...options.big_nodes);
  const sandbox = new Sandbox(tag);
  const started_ms = performance.now();
  const results: ClusterResults = {
    system: systemInfo(null),
    options: { ...options, out_dir: undefined },
    load_average_start: loadAverage(),
    runs: [],
    key_shares: {},
    big_key_shares: {},
    notes: [],
  };
  let loadgen: LoadGenProcess | null = null;
  let nodes: Node[] = [];
  const stopSignals = (signal: NodeJS.Signals): void => {
    // processes.ts stops tracked children and exits; the sandbox's exit handler removes the rest.
    process.stderr.write(`bench:cluster: ${signal}: removing namespaces, qdiscs and cgroups\n`);
    setTimeout(() => process.exit(130), 500).unref();
  };
  process.once('SIGINT', stopSignals);
  process.once('SIGTERM', stopSignals);
  try {
    sandbox.createBridge();
    sandbox.addHost(sandbox.client_ns, CLIENT_HOST, { rate: '', burst: '', latency: '' });
    const cgroups: string[] = [];
    for (let i = 1; i <= max_nodes; i++) {
      sandbox.addHost(sandbox.nodeNs(i), i, options.link);
      cgroups.push(sandbox.addCgroup(`n${i}`, options.cpu, options.shares));
    }
    const client_cgroup = sandbox.addCgroup('client', { cpus: 0, period_us: options.cpu.period_us }, options.shares);
    console.log(`sandbox ${tag}: bridge + ${max_nodes} node namespaces (${SUBNET}.1-${max_nodes}) + client (${SUBNET}.${CLIENT_HOST}); ` +
      `link ${options.link.rate || 'unshaped'}; CPU quota ${options.cpu.cpus || 'none'} per node (period ${options.cpu.period_us} µs); load average ${loadAverage().join(' ')}`);
    loadgen = startLoadGen(sandbox, client_cgroup);
    const sizes = [...new Set([...options.nodes, ...options.big_nodes])].sort((x, y) => x - y);
    for (const count of sizes) {
      // Preload without a quota (not measured), then apply it.
      for (const dir of cgroups) sandbox.setQuota(dir, { ...options.cpu, cpus: 0 });
      nodes = await startCluster(sandbox, options, loadgen, count, cgroups);
      results.key_shares![count] = keyShares(nodes.map((n) => n.id), options.keys, { key_bytes: 16 });
      if (options.big_keys > 0) results.big_key_shares![count] = keyShares(nodes.map((n) => n.id), options.big_keys, { key_bytes: 16, prefix: 'big:' });
      const urls = nodes.map((n) => n.url);
      console.log(`\n== ${count} node(s): ${nodes.map((n) => `${n.id} pid ${n.pid}`).join(', ')}`);
      if (options.nodes.includes(count)) {
        const load = await loadgen.send<{ totals: RunTotals }>({ cmd: 'load', urls, keys: options.keys, key_bytes: 16, value_bytes: 100, batch_ops: 8192 });
        console.log(`  preloaded ${options.keys} keys in ${load.totals.wall_s.toFixed(2)} s (errors ${load.totals.errors})`);
      }
      if (options.big_keys > 0 && options.big_nodes.includes(count)) {
        await loadgen.send({ cmd: 'load', urls, keys: options.big_keys, key_bytes: 16, value_bytes: 1 << 20, prefix: 'big:', batch_ops: 4 });
        console.log(`  preloaded ${options.big_keys} values of 1 MiB`);
      }
      for (const dir of cgroups) sandbox.setQuota(dir, options.cpu);
      // direct-wide: a client batch of batch_ops x nodes, so each node still gets ~batch_ops per request.
      const small = (mode: RunMode, workload: Workload, seconds: number, rep: number): Extract<Command, { cmd: 'run' }> => ({
        cmd: 'run', mode: mode === 'entry' ? 'entry' : 'direct', urls: mode === 'entry' ? [urls[0]!] : urls, workload, keys: options.keys, key_bytes: 16, value_bytes: 100,
        batch_ops: batchOps(mode), batch_count: mode === 'direct-wide' ? Math.ceil(96 / count) : 96, lanes: options.lanes, depth: options.depth, seconds, seed: 1000 * rep + count,
      });
      const batchOps = (mode: RunMode): number => (mode === 'direct-wide' ? options.batch_ops * count : options.batch_ops);
      const modesFor = (workload: Workload): RunMode[] => (options.wide.includes(workload) && count > 1 ? ['direct', 'direct-wide', 'entry'] : ['direct', 'entry']);
      const big = (mode: Mode, seconds: number, rep: number): Extract<Command, { cmd: 'run' }> => ({
        cmd: 'run', mode, urls: mode === 'direct' ? urls : [urls[0]!], workload: 'get', keys: options.big_keys, key_bytes: 16, value_bytes: 1 << 20,
        prefix: 'big:', batch_ops: 4, batch_count: 32, lanes: 2, depth: options.big_depth, seconds, seed: 1000 * rep + count,
      });
      const do_small = options.nodes.includes(count);
      const do_big = options.big_keys > 0 && options.big_nodes.includes(count);
      // Warm-up: under a quarter of a CPU, V8 needs a second or two of load to compile the hot
      // paths (the first runs measured 2-5x less without it).
      // In direct mode each node gets 1/count of the load, so the warm-up grows with the cluster;
      // GET and PUT cover the code paths of the mix.
      const warm_workloads = options.workloads.filter((w) => w !== 'mix');
      for (const mode of ['direct', 'entry'] as Mode[]) {
        if (do_small) for (const workload of warm_workloads.length > 0 ? warm_workloads : options.workloads) await loadgen.send(small(mode, workload, options.warmup * count, 0));
        if (do_big) await loadgen.send(big(mode, options.warmup, 0));
      }
      for (let rep = 1; rep <= options.reps; rep++) {
        if (do_small) {
          for (const workload of options.workloads) {
            for (const mode of modesFor(workload)) {
              const run = await measure(loadgen, nodes, small(mode, workload, options.seconds, rep),
                { nodes: count, mode, workload, value_bytes: 100, batch_ops: batchOps(mode), rep });
              results.runs.push(run);
              console.log(describe(run));
            }
          }
        }
        if (do_big) {
          for (const mode of ['direct', 'entry'] as Mode[]) {
            const run = await measure(loadgen, nodes, big(mode, Math.max(options.seconds, 1), rep),
              { nodes: count, mode, workload: 'get-1mib', value_bytes: 1 << 20, batch_ops: 4, rep });
            results.runs.push(run);
            console.log(describe(run));
          }
        }
      }
      await stopCluster(sandbox, nodes);
      nodes = [];
    }
  } finally {
    await Promise.all(nodes.map((node) => stopProcess(node.child, 3_000).catch(() => undefined)));
    await loadgen?.stop().catch(() => undefined);
    sandbox.cleanup();
  }
  results.load_average_end = loadAverage();
  results.elapsed_s = (performance.now() - started_ms) / 1000;
  mkdirSync(options.out_dir, { recursive: true });
  const files = writeClusterReport(results, options.out_dir);
  console.log(`\n${readFileSync(path.join(options.out_dir, 'report.md'), 'utf8').split('\n## Method')[0]}`);
  console.log(`Results: ${options.out_dir}/ (${files.join(', ')}); ${results.elapsed_s.toFixed(0)} s`);
}

main().catch((error: unknown) => {
  console.error(`bench:cluster: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

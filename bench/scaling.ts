/**
 * `npm run bench:scaling`: the scaling curve of an etcd-mode cluster (docs/PERFORMANCE.md,
 * "Scaling in etcd mode"): 1, 2, 4, 8 and 16 nodes, at N = 1 and N = 2 copies per key, on this
 * machine's loopback, each node under a CPU quota so that many "boards" on 2 cores stay
 * comparable. For each step (N, nodes) it
 *   - starts a local etcd (Debian's etcd-server binary) on free ports, fresh for the step;
 *   - starts the nodes (`pikv serve --etcd … --replicas N`), each in its own CPU-quota group
 *     (bench/lib/cpu-quota.ts: cgroup v2 cpu.max, else cgroup v1, else systemd-run, else none
 *     and a warning), and waits until every node shows the same settled view;
 *   - preloads `--keys` records without quota, then sets each node's quota to
 *     min(--node-cpu, --cpu-budget / nodes) CPUs;
 *   - warms up, then measures batched GET and PUT from the ring-aware raw load generator
 *     (bench/lib/cluster-loadgen.ts, direct mode: each batch split by owner, one frame per node);
 *   - reads etcd's /metrics before and after each run (proposals committed, gRPC calls and
 *     messages per second, the busiest methods, db size) and etcd's CPU from /proc;
 * then stops the nodes and etcd by PID and removes the groups. It writes report.md (a markdown
 * table) and results.json to bench/results/scaling-<timestamp>/.
 *
 * Never run it beside other benchmarks or tests: the whole point is the CPU budget.
 *
 *   npm run bench:scaling                                   # 1,2,4,8,16 nodes, N = 1,2, 3 s runs
 *   npm run bench:scaling -- --nodes 1,2 --replicas 1 --seconds 1 --keys 10000 --warmup 0   # smoke
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { etcdProblem, freeLoopbackPort, startLocalEtcd, type LocalEtcd } from '../src/cluster/etcd/local-server.js';
import type { Command, RunTotals, Workload } from './lib/cluster-loadgen.js';
import { loadAverage } from './lib/cluster-net.js';
import { CpuQuota, type QuotaGroup, type QuotaMethod, type ThrottleStat } from './lib/cpu-quota.js';
import { etcdRates, readEtcdSnapshot, type EtcdRates } from './lib/etcd-metrics.js';
import { cpuSeconds } from './lib/proc.js';
import { spawnTracked, stopProcess } from './lib/processes.js';
import { LOADGEN_PATH, LoadGenProcess } from './lib/loadgen-process.js';
import { PIKV_CLI_PATH } from './lib/servers.js';
import { systemInfo, type SystemInfo } from './lib/sysinfo.js';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const SECRET = 'bench-scaling-secret';
const KEY_BYTES = 16;
const VALUE_BYTES = 100;

const USAGE = `usage: npm run bench:scaling -- [options]
  --nodes LIST          node counts (default 1,2,4,8,16)
  --replicas LIST       copies per key, N (default 1,2; a step with N > nodes is skipped)
  --seconds S           seconds per measured run (default 3)
  --warmup S            seconds of GET and of PUT before measuring, per step (default 2)
  --workloads LIST      get,put (default both)
  --keys N              records preloaded per step (default 200000)
  --batch N             ops per client batch (default 1024; split by owner, so each node gets ~N/nodes)
  --wide                client batches of batch × nodes instead (each node still gets ~batch ops per request)
  --lanes N --depth N   load generator: connections per node x batches in flight per lane (default 2 x 8)
  --cpu-budget C        CPUs shared by all nodes of a step (default 1.5)
  --node-cpu C          at most this many CPUs per node (default 0.5); quota = min(node-cpu, budget / nodes)
  --period-us N         CFS period (default 5000; short, so that throttling stalls stay short)
  --quota METHOD        auto, cgroup2, cgroup1, systemd-run or none (default auto)
  --shares N            cpu.shares of the bench's parent group (default 16384; v2: cpu.weight N/1024×100),
                        so that a busy neighbour cannot push the nodes below their quotas
  --workers N           partition workers per node (default: 2 up to 4 nodes, 1 above)
  --lease-ttl-ms N      node lease TTL (default 10000: under small quotas a 3 s lease can lapse)
  --out DIR             results folder (default bench/results/scaling-<timestamp>)`;

interface Options {
  nodes: number[];
  replicas: number[];
  seconds: number;
  warmup: number;
  workloads: Workload[];
  keys: number;
  batch: number;
  wide: boolean;
  lanes: number;
  depth: number;
  cpu_budget: number;
  node_cpu: number;
  period_us: number;
  quota: QuotaMethod | 'auto';
  shares: number;
  workers: number | null;
  lease_ttl_ms: number;
  out_dir: string;
}

function list(text: string, name: string): number[] {
  const values = text.split(',').map((item) => Number(item.trim()));
  if (values.length === 0 || values.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`--${name} takes positive numbers separated by commas, got ${text}`);
  return values;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string' }, replicas: { type: 'string' }, seconds: { type: 'string' }, warmup: { type: 'string' }, workloads: { type: 'string' },
      keys: { type: 'string' }, batch: { type: 'string' }, wide: { type: 'boolean' }, lanes: { type: 'string' }, depth: { type: 'string' },
      'cpu-budget': { type: 'string' }, 'node-cpu': { type: 'string' }, 'period-us': { type: 'string' }, quota: { type: 'string' }, shares: { type: 'string' }, workers: { type: 'string' },
      'lease-ttl-ms': { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const one = (text: string | undefined, fallback: number, name: string): number => (text === undefined ? fallback : list(text, name)[0]!);
  const workloads = (values.workloads ?? 'get,put').split(',').map((w) => w.trim());
  for (const w of workloads) if (w !== 'get' && w !== 'put') throw new Error(`--workloads: get or put, got ${w}`);
  const quota = values.quota ?? 'auto';
  if (!['auto', 'cgroup2', 'cgroup1', 'systemd-run', 'none'].includes(quota)) throw new Error(`--quota: auto, cgroup2, cgroup1, systemd-run or none, got ${quota}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const options: Options = {
    nodes: list(values.nodes ?? '1,2,4,8,16', 'nodes').map(Math.round),
    replicas: list(values.replicas ?? '1,2', 'replicas').map(Math.round),
    seconds: one(values.seconds, 3, 'seconds'),
    warmup: values.warmup === undefined ? 2 : Number(values.warmup),
    workloads: workloads as Workload[],
    keys: one(values.keys, 200_000, 'keys'),
    batch: one(values.batch, 1024, 'batch'),
    wide: values.wide === true,
    lanes: one(values.lanes, 2, 'lanes'),
    depth: one(values.depth, 8, 'depth'),
    cpu_budget: one(values['cpu-budget'], 1.5, 'cpu-budget'),
    node_cpu: one(values['node-cpu'], 0.5, 'node-cpu'),
    period_us: one(values['period-us'], 5000, 'period-us'),
    quota: quota as QuotaMethod | 'auto',
    shares: one(values.shares, 16384, 'shares'),
    workers: values.workers === undefined ? null : one(values.workers, 1, 'workers'),
    lease_ttl_ms: one(values['lease-ttl-ms'], 10_000, 'lease-ttl-ms'),
    out_dir: values.out ?? path.join(RESULTS_DIR, `scaling-${stamp}`),
  };
  if (!(options.warmup >= 0)) throw new Error('--warmup must be ≥ 0');
  return options;
}

/** The load generator as a child process, in the client group (as in bench/cluster.ts, without namespaces). */
function startLoadGen(quota: CpuQuota, group: QuotaGroup): LoadGenProcess {
  const { file, args } = quota.wrap(group, [process.execPath, LOADGEN_PATH, '--loadgen']);
  return new LoadGenProcess(spawnTracked(file, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
}

interface Node {
  id: string;
  url: string;
  pid: number;
  child: ChildProcess;
  group: QuotaGroup;
}

function startNode(quota: CpuQuota, group: QuotaGroup, index: number, etcd_url: string, replicas: number, workers: number, options: Options): Promise<Node> {
  const argv = [process.execPath, PIKV_CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', 'off', '--workers', String(workers),
    '--max-memory', '256mb', '--node-id', `n${index}`, '--etcd', etcd_url, '--replicas', String(replicas),
    '--lease-ttl-ms', String(options.lease_ttl_ms), '--down-grace-ms', '600000'];
  const { file, args } = quota.wrap(group, argv);
  // The secret goes in the environment: pikv refuses it on argv, where ps shows it.
  const child = spawnTracked(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIKV_CLUSTER_SECRET: SECRET } });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node n${index} did not start within 60 s:\n${text.slice(-2000)}`)), 60_000);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString();
      const match = /listening on (ws:\/\/\S+?)[\s/].*pid (\d+)/.exec(text);
      if (match === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve({ id: `n${index}`, url: match[1]!, pid: Number(match[2]), child, group });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node n${index} exited with ${code}:\n${text.slice(-2000)}`));
    });
  });
}

interface StepRun {
  replicas: number;
  nodes: number;
  workload: Workload;
  workers: number;
  quota_cpus_per_node: number;
  batch_ops: number;
  ops: number;
  wall_s: number;
  ops_per_s: number;
  ops_per_s_per_node: number;
  /** ops/s divided by the CPUs the quotas allow in total: flat when the cluster scales linearly. */
  ops_per_s_per_quota_cpu: number;
  node_cpu_cores: number[];
  throttled_share: (number | null)[];
  client_cpu_cores: number;
  misses: number;
  errors: number;
  error_codes: Record<string, number>;
  etcd: EtcdRates & { cpu_cores: number };
  load_average: [number, number, number];
}

function throttledShare(before: ThrottleStat | null, after: ThrottleStat | null): number | null {
  if (before === null || after === null) return null;
  const periods = after.nr_periods - before.nr_periods;
  return periods > 0 ? Math.round(((after.nr_throttled - before.nr_throttled) / periods) * 100) / 100 : 0;
}

async function measureRun(loadgen: LoadGenProcess, quota: CpuQuota, nodes: Node[], etcd: LocalEtcd, command: Extract<Command, { cmd: 'run' }>,
  meta: Pick<StepRun, 'replicas' | 'nodes' | 'workload' | 'workers' | 'quota_cpus_per_node' | 'batch_ops'>): Promise<StepRun> {
  let before: { at_ms: number; node_cpu: number[]; throttle: (ThrottleStat | null)[]; etcd_cpu: number; etcd: Awaited<ReturnType<typeof readEtcdSnapshot>> } | null = null;
  const etcd_start = await readEtcdSnapshot(etcd.client_url);
  const take = (): Omit<NonNullable<typeof before>, 'etcd'> => ({
    at_ms: performance.now(), node_cpu: nodes.map((n) => cpuSeconds(n.pid)), throttle: nodes.map((n) => quota.throttling(n.group)), etcd_cpu: cpuSeconds(etcd.pid),
  });
  const answer = await loadgen.send<{ totals: RunTotals }>(command, () => (before = { ...take(), etcd: etcd_start }));
  const after = take();
  const etcd_end = await readEtcdSnapshot(etcd.client_url);
  const start = before ?? { ...after, etcd: etcd_start };
  const seconds = Math.max((after.at_ms - start.at_ms) / 1000, 1e-6);
  const totals = answer.totals;
  const ops_per_s = totals.ops / totals.wall_s;
  const quota_cpus = meta.quota_cpus_per_node > 0 ? meta.quota_cpus_per_node * meta.nodes : 0;
  return {
    ...meta,
    ops: totals.ops,
    wall_s: Math.round(totals.wall_s * 1000) / 1000,
    ops_per_s: Math.round(ops_per_s),
    ops_per_s_per_node: Math.round(ops_per_s / meta.nodes),
    ops_per_s_per_quota_cpu: quota_cpus > 0 ? Math.round(ops_per_s / quota_cpus) : 0,
    node_cpu_cores: nodes.map((_, i) => Math.round(((after.node_cpu[i]! - start.node_cpu[i]!) / seconds) * 100) / 100),
    throttled_share: nodes.map((_, i) => throttledShare(start.throttle[i]!, after.throttle[i]!)),
    client_cpu_cores: Math.round((totals.client_cpu_s / totals.wall_s) * 100) / 100,
    misses: totals.misses,
    errors: totals.errors,
    error_codes: totals.error_codes,
    // The etcd window is a little wider than the run (the /metrics reads before and after).
    etcd: { ...etcdRates(start.etcd, etcd_end), cpu_cores: Math.round(((after.etcd_cpu - start.etcd_cpu) / seconds) * 1000) / 1000 },
    load_average: loadAverage(),
  };
}

function si(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n * 10) / 10);
}

function describe(run: StepRun): string {
  const cpu = run.node_cpu_cores.length <= 4 ? run.node_cpu_cores.join('/') : `${Math.min(...run.node_cpu_cores)}–${Math.max(...run.node_cpu_cores)}`;
  const fail = run.misses + run.errors > 0 ? ` misses ${run.misses} errors ${run.errors} ${JSON.stringify(run.error_codes)}` : '';
  return `  N=${run.replicas} ${String(run.nodes).padStart(2)} nodes ${run.workload.toUpperCase().padEnd(3)} ${si(run.ops_per_s).padStart(7)} ops/s  ${si(run.ops_per_s_per_node).padStart(6)}/node  ` +
    `quota ${run.quota_cpus_per_node} CPU/node, node CPU ${cpu}  etcd ${run.etcd.grpc_calls_per_s ?? '?'} calls/s ${run.etcd.grpc_msgs_per_s ?? '?'} msgs/s ` +
    `${run.etcd.proposals_per_s ?? '?'} proposals/s, ${run.etcd.cpu_cores} CPU${fail}`;
}

export interface ScalingResults {
  system: SystemInfo;
  options: Omit<Options, 'out_dir'>;
  quota_method: QuotaMethod;
  quota_description: string;
  runs: StepRun[];
  notes: string[];
}

function report(results: ScalingResults): string {
  const lines = [`# pikv scaling in etcd mode, ${results.system.date}`, '',
    `${results.system.cpu_model}, ${results.system.cores} cores, ${results.system.node_version}, commit ${results.system.pikv_commit}. ` +
    `CPU quota: ${results.quota_description}. Budget ${results.options.cpu_budget} CPUs for all nodes, at most ${results.options.node_cpu} per node; ` +
    `${results.options.seconds} s runs after ${results.options.warmup} s warm-up; ${results.options.keys} keys of ${KEY_BYTES} B with ${VALUE_BYTES} B values; ` +
    `client batches of ${results.options.batch}${results.options.wide ? ' × nodes' : ''} ops split by owner, ${results.options.lanes} lanes × ${results.options.depth} in flight.`, '',
    '"per quota CPU" divides ops/s by the CPUs the quotas allow all nodes together: flat means linear scaling per CPU. "× fewest" is ops/s against the fewest nodes measured at the same N (1 node at N = 1, 2 at N = 2); "vs N=1" is ops/s against N = 1 at the same node count. ' +
    'etcd figures are rates over the run from its /metrics (gRPC unary calls, all gRPC messages including lease keep-alive and watch streams, Raft proposals committed) and its CPU from /proc.', '',
    '| N | nodes | op | quota CPU/node | workers | ops/s | × fewest | vs N=1 | ops/s per node | per quota CPU | node CPU (cores, min–max) | throttled | etcd calls/s | etcd msgs/s | etcd proposals/s | etcd CPU | etcd db | busiest etcd methods (calls/s) | client CPU | errors |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|'];
  for (const run of results.runs) {
    const same_n = results.runs.filter((r) => r.replicas === run.replicas && r.workload === run.workload);
    const base = same_n.reduce<StepRun | undefined>((min, r) => (min === undefined || r.nodes < min.nodes ? r : min), undefined);
    const n1 = run.replicas === 1 ? undefined : results.runs.find((r) => r.replicas === 1 && r.workload === run.workload && r.nodes === run.nodes);
    const throttled = run.throttled_share.filter((t): t is number => t !== null);
    lines.push(`| ${run.replicas} | ${run.nodes} | ${run.workload.toUpperCase()} | ${run.quota_cpus_per_node} | ${run.workers} | ${si(run.ops_per_s)} | ` +
      `${base ? (run.ops_per_s / Math.max(base.ops_per_s, 1)).toFixed(2) : '–'} | ${n1 ? (run.ops_per_s / Math.max(n1.ops_per_s, 1)).toFixed(2) : '–'} | ${si(run.ops_per_s_per_node)} | ${run.ops_per_s_per_quota_cpu > 0 ? si(run.ops_per_s_per_quota_cpu) : '–'} | ` +
      `${Math.min(...run.node_cpu_cores)}–${Math.max(...run.node_cpu_cores)} | ${throttled.length > 0 ? `${Math.round(Math.min(...throttled) * 100)}–${Math.round(Math.max(...throttled) * 100)}%` : '–'} | ` +
      `${run.etcd.grpc_calls_per_s ?? '–'} | ${run.etcd.grpc_msgs_per_s ?? '–'} | ${run.etcd.proposals_per_s ?? '–'} | ${run.etcd.cpu_cores} | ` +
      `${run.etcd.db_bytes === null ? '–' : `${Math.round(run.etcd.db_bytes / 1024)} KiB`} | ${Object.entries(run.etcd.top_methods).map(([m, r]) => `${m} ${r}`).join(', ') || '–'} | ${run.client_cpu_cores} | ${run.misses + run.errors} |`);
  }
  if (results.notes.length > 0) lines.push('', '## Notes', '', ...results.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

async function runStep(loadgen: LoadGenProcess, quota: CpuQuota, options: Options, replicas: number, count: number, results: ScalingResults): Promise<void> {
  const workers = options.workers ?? (count <= 4 ? 2 : 1);
  const cpus = Math.round(Math.min(options.node_cpu, options.cpu_budget / count) * 1000) / 1000;
  const dir = mkdtempSync(join(tmpdir(), 'pikv-bench-scaling-'));
  const nodes: Node[] = [];
  const groups: QuotaGroup[] = [];
  let etcd: LocalEtcd | null = null;
  const kill_etcd = (): void => {
    if (etcd !== null) try { process.kill(etcd.pid, 'SIGKILL'); } catch { /* gone */ }
  };
  process.on('exit', kill_etcd);
  try {
    etcd = await startLocalEtcd({
      binary: 'etcd', data_dir: join(dir, 'etcd'), client_port: await freeLoopbackPort(), peer_port: await freeLoopbackPort(),
      heartbeat_interval_ms: 100, election_timeout_ms: 1000, start_timeout_ms: 20_000,
    });
    // Without quota while starting and loading (systemd-run cannot change it later: there it is set now).
    for (let i = 1; i <= count; i++) groups.push(quota.create(`r${replicas}-n${i}`, quota.method === 'systemd-run' ? cpus : 0));
    // n1 creates the cluster in etcd before the others start, so that the first view is n1 alone
    // (as pikv dev-cluster does); the others then ask to join together.
    nodes.push(await startNode(quota, groups[0]!, 1, etcd.client_url, replicas, workers, options));
    await loadgen.send({ cmd: 'wait', urls: [nodes[0]!.url], ids: ['n1'], timeout_ms: 60_000 });
    const started = await Promise.allSettled(groups.slice(1).map((group, i) => startNode(quota, group, i + 2, etcd!.client_url, replicas, workers, options)));
    for (const outcome of started) if (outcome.status === 'fulfilled') nodes.push(outcome.value);
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const urls = nodes.map((n) => n.url);
    await loadgen.send({ cmd: 'wait', urls, ids: nodes.map((n) => n.id), timeout_ms: 120_000 });
    await loadgen.send({ cmd: 'load', urls, keys: options.keys, key_bytes: KEY_BYTES, value_bytes: VALUE_BYTES, batch_ops: 8192 });
    for (const group of groups) quota.setQuota(group, cpus);
    const batch_ops = options.wide ? options.batch * count : options.batch;
    const command = (workload: Workload, seconds: number, seed: number): Extract<Command, { cmd: 'run' }> => ({
      cmd: 'run', mode: 'direct', urls, workload, keys: options.keys, key_bytes: KEY_BYTES, value_bytes: VALUE_BYTES,
      batch_ops, batch_count: Math.max(8, Math.ceil(96 / (options.wide ? count : 1))), lanes: options.lanes, depth: options.depth, seconds, seed,
    });
    // Under small quotas V8 needs seconds of load to compile the hot paths (bench/cluster.ts saw 2-5× without it).
    if (options.warmup > 0) for (const workload of options.workloads) await loadgen.send(command(workload, options.warmup, 7));
    for (const workload of options.workloads) {
      const run = await measureRun(loadgen, quota, nodes, etcd, command(workload, options.seconds, 100 * count + replicas),
        { replicas, nodes: count, workload, workers, quota_cpus_per_node: quota.method === 'none' ? 0 : cpus, batch_ops });
      results.runs.push(run);
      console.log(describe(run));
    }
  } finally {
    await Promise.all(nodes.map((node) => stopProcess(node.child, 10_000)));
    for (const group of groups) quota.remove(group);
    await etcd?.stop();
    process.off('exit', kill_etcd);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const problem = etcdProblem('etcd');
  if (problem !== null) {
    console.log(`bench:scaling: skipped: ${problem}`);
    return;
  }
  const quota = new CpuQuota(`pikv-scaling-${process.pid}`, options.period_us, options.quota, options.shares);
  console.log(`bench:scaling: CPU quota: ${quota.description}`);
  const { out_dir, ...shown } = options;
  const results: ScalingResults = { system: systemInfo(null), options: shown, quota_method: quota.method, quota_description: quota.description, runs: [], notes: [] };
  if (quota.method === 'none') results.notes.push(quota.description);
  results.notes.push(`The load generator (one Node process, no quota, in the bench's parent group) and etcd (no quota, outside it) share the machine's ${results.system.cores} cores with the nodes; see client and etcd CPU in results.json.`);
  mkdirSync(out_dir, { recursive: true });
  // The load generator gets a group without a quota under the same parent, so it shares the parent's weight.
  const client_group = quota.create('client', 0);
  const loadgen = startLoadGen(quota, client_group);
  try {
    for (const replicas of options.replicas) {
      for (const count of options.nodes) {
        if (replicas > count) continue;
        console.log(`N=${replicas}, ${count} node(s):`);
        try {
          await runStep(loadgen, quota, options, replicas, count, results);
        } catch (error) {
          const message = `step N=${replicas}, ${count} nodes failed: ${(error as Error).message.split('\n').slice(0, 6).join(' | ')}`;
          results.notes.push(message);
          console.log(`  ${message}`);
        }
      }
    }
  } finally {
    await loadgen.stop();
    quota.remove(client_group);
    quota.cleanup();
    writeFileSync(path.join(out_dir, 'results.json'), JSON.stringify(results, null, 1));
    writeFileSync(path.join(out_dir, 'report.md'), report(results));
    console.log(`\n${report(results)}\nResults: ${out_dir}/ (results.json, report.md)`);
  }
}

main().catch((error: unknown) => {
  console.error(`bench:scaling: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

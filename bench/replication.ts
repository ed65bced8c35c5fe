/**
 * `npm run bench:replication`: what N copies per key cost and how fast failover is
 * (docs/REPLICATION.md, issue #10 item 7), on this machine's loopback.
 *
 * For each repetition it starts a local etcd and `--nodes` nodes (`pikv serve --etcd
 * --replicas N`), alternating N = 1 and N = 2 so that the machine's drift hits both alike,
 * preloads `--keys` records (16 B keys, 100 B values), and measures with a ring-aware client:
 *   - put:      batched PUT, `--batch` ops per request, `--depth` requests in flight;
 *   - get:      batched GET, same shape (linearizable: the primary serves);
 *   - get-any:  batched GET of a hot set of 1,000 keys with read: 'any' (every copy serves);
 *               with --hot-range the hot keys are all of one node's slots (a hot range: at
 *               N = 1 that node serves every one of them, at N = 2 its backups share them).
 * With --cpus C every node runs in a CPU-quota group of C CPUs (bench/lib/cpu-quota.ts, as
 * bench:scaling), set once the keys are preloaded, so that nodes compete like separate boards
 * rather than for this machine's 2 cores; the client has no quota.
 * It reports the median of each, and the N = 2 / N = 1 ratios. Then, at N = 2, it kills a
 * node with SIGKILL `--failovers` times (a fresh cluster each time) and reports the median time
 * from the kill to the first acknowledged write of a key the dead node was primary of.
 *
 * All processes are stopped by PID at the end (also on error). Never run it beside another
 * benchmark or test run: the machine has 2 cores.
 *
 *   npm run bench:replication -- --quick
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { connect, connectCluster, Op, type PikvClusterClient } from '../src/index.js';
import { WireCodec } from '../src/protocol/codec.js';
import { freeLoopbackPort, startLocalEtcd, type LocalEtcd } from '../src/cluster/etcd/local-server.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';
import { Placement } from '../src/routing/placement.js';
import { HashRing } from '../src/routing/ring.js';
import { checkView, type ClusterView } from '../src/routing/view.js';
import { spawnTracked, stopProcess } from './lib/processes.js';
import { CpuQuota, type QuotaGroup } from './lib/cpu-quota.js';
import { PIKV_CLI_PATH } from './lib/servers.js';

const SECRET = 'bench-replication-secret';
const VALUE_BYTES = 100;
const HOT_KEYS = 1_000;
/** As bench:scaling: a short CFS period (short throttle stalls), and a parent group weighed above the machine's other processes. */
const QUOTA_PERIOD_US = 5_000;
const QUOTA_PARENT_SHARES = 16_384;
const codec = new WireCodec();

interface Options { workloads: string[]; nodes: number; keys: number; seconds: number; warmup: number; reps: number; failovers: number; batch: number; depth: number; lease_ttl_ms: number; cpus: number; hot_range: boolean }

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' }, nodes: { type: 'string' }, keys: { type: 'string' }, seconds: { type: 'string' }, reps: { type: 'string' },
      failovers: { type: 'string' }, batch: { type: 'string' }, depth: { type: 'string' }, 'lease-ttl-ms': { type: 'string' }, help: { type: 'boolean' },
      cpus: { type: 'string' }, 'hot-range': { type: 'boolean' }, warmup: { type: 'string' }, workloads: { type: 'string' },
    },
  });
  if (values.help === true) {
    console.log('usage: npm run bench:replication -- [--quick] [--nodes 3] [--keys 200000] [--seconds 3] [--reps 3] [--failovers 5] [--batch 1024] [--depth 8] [--lease-ttl-ms 3000] [--cpus C] [--hot-range] [--warmup 1] [--workloads put,get,get-any]');
    process.exit(0);
  }
  const quick = values.quick === true;
  const number = (value: string | undefined, fallback: number): number => (value === undefined ? fallback : Number(value));
  return {
    nodes: number(values.nodes, 3), keys: number(values.keys, quick ? 50_000 : 200_000), seconds: number(values.seconds, quick ? 1 : 3),
    reps: number(values.reps, quick ? 1 : 3), failovers: number(values.failovers, quick ? 2 : 5), batch: number(values.batch, 1024),
    depth: number(values.depth, 8), lease_ttl_ms: number(values['lease-ttl-ms'], 3_000),
    workloads: (values.workloads ?? 'put,get,get-any').split(','), cpus: number(values.cpus, 0), hot_range: values['hot-range'] === true, warmup: number(values.warmup, quick ? 0.5 : 1),
  };
}

interface Node { id: string; url: string; child: ChildProcess; group: QuotaGroup | null }

class Cluster {
  readonly nodes: Node[] = [];
  private etcd: LocalEtcd | null = null;
  /** With --cpus: one quota group per node, no quota until setQuotas. */
  private readonly quota: CpuQuota | null;

  constructor(cpus: number) {
    this.quota = cpus > 0 ? new CpuQuota(`pikv-bench-rep-${process.pid}-${Date.now() % 1e6}`, QUOTA_PERIOD_US, 'auto', QUOTA_PARENT_SHARES) : null;
    if (this.quota?.method === 'none') throw new Error(`--cpus: ${this.quota.description}`);
  }

  /** Puts every node under `cpus` CPUs from now on. */
  setQuotas(cpus: number): void {
    for (const node of this.nodes) if (node.group !== null) this.quota!.setQuota(node.group, cpus);
  }
  private readonly dir = mkdtempSync(join(tmpdir(), 'pikv-bench-rep-'));

  async start(count: number, replicas: number, lease_ttl_ms: number): Promise<void> {
    this.etcd = await startLocalEtcd({
      binary: 'etcd', data_dir: join(this.dir, 'etcd'), client_port: await freeLoopbackPort(), peer_port: await freeLoopbackPort(),
      heartbeat_interval_ms: 50, election_timeout_ms: 500, start_timeout_ms: 20_000,
    });
    for (let i = 1; i <= count; i++) {
      // PIKV_BENCH_NODE_ARGS: node flags for every node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" (a profile per thread, written at the graceful stop).
      const node_args = (process.env['PIKV_BENCH_NODE_ARGS'] ?? '').split(' ').filter((arg) => arg !== '');
      const args = [...node_args, PIKV_CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', '--workers', '2', '--max-memory', '512mb', '--node-id', `n${i}`,
        '--etcd', this.etcd.client_url, '--replicas', String(replicas), '--lease-ttl-ms', String(lease_ttl_ms), '--down-grace-ms', '600000'];
      const group = this.quota?.create(`n${i}`, 0) ?? null;
      const command = group === null ? { file: process.execPath, args } : this.quota!.wrap(group, [process.execPath, ...args]);
      const child = spawnTracked(command.file, command.args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIKV_CLUSTER_SECRET: SECRET } });
      const url = await new Promise<string>((resolve, reject) => {
        let seen = '';
        const onData = (chunk: Buffer): void => {
          seen += chunk.toString();
          const match = /listening on (ws:\/\/\S+?)[\s/]/.exec(seen);
          if (match !== null) resolve(match[1]!);
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', onData);
        child.once('exit', () => reject(new Error(`node n${i} exited: ${seen.slice(-500)}`)));
      });
      child.stdout!.resume();
      child.stderr!.resume();
      this.nodes.push({ id: `n${i}`, url, child, group });
      await this.waitSettled(i);
    }
  }

  /** Waits until the view has `count` nodes, no change in progress and nobody down. */
  async waitSettled(count: number, timeout_ms = 60_000): Promise<ClusterView> {
    const deadline = Date.now() + timeout_ms;
    for (;;) {
      const view = await readView(this.nodes[0]!.url).catch(() => null);
      if (view !== null && view.nodes.length === count && view.next === undefined && (view.down?.length ?? 0) === 0) return view;
      if (Date.now() > deadline) throw new Error(`cluster did not settle at ${count} nodes: ${JSON.stringify(view)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await stopProcess(node.child, 5_000);
    await this.etcd?.stop();
    this.quota?.cleanup();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function readView(url: string): Promise<ClusterView> {
  const client = await connect(url, { request_timeout_ms: 2_000 });
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(Op.RING), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    return checkView(codec.decodeValue(reply.values));
  } finally {
    await client.close();
  }
}

function keyOf(i: number): string {
  return `k${String(i).padStart(15, '0')}`;
}

/**
 * Indices (for keyOf) of the hot set: the first HOT_KEYS keys, or with `hot_range` the first
 * HOT_KEYS keys whose primary is `node` (its slots are the hot range).
 */
function hotKeys(view: ClusterView, hot_range: boolean, node: string): number[] {
  const placement = new Placement(new HashRing(view.nodes), view.replicas ?? 1, new Set());
  const hot: number[] = [];
  for (let i = 0; hot.length < HOT_KEYS; i++) {
    const key = Buffer.from(keyOf(i));
    if (!hot_range || placement.primaryOf(murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED))?.id === node) hot.push(i);
  }
  return hot;
}

/** Runs batched ops for `seconds` with `depth` batches in flight; returns ops/s. */
async function run(client: PikvClusterClient, kind: 'put' | 'get', key_count: number, options: Options, key_indices: number[] | null = null): Promise<number> {
  const value = 'v'.repeat(VALUE_BYTES);
  let done = 0;
  let errors = 0;
  const stop_at = performance.now() + options.seconds * 1000;
  const lane = async (seed: number): Promise<void> => {
    let i = seed * 7919;
    while (performance.now() < stop_at) {
      const ops = Array.from({ length: options.batch }, () => {
        i = (i + 104_729) % key_count;
        const key = keyOf(key_indices === null ? i : key_indices[i]!);
        return kind === 'put' ? { op: 'put' as const, key, value } : { op: 'get' as const, key };
      });
      const results = await client.batch(ops);
      for (const r of results) if (r.code !== 'OK') errors++;
      done += ops.length;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: options.depth }, (_, lane_index) => lane(lane_index + 1)));
  const seconds = (performance.now() - started) / 1000;
  if (errors > 0) console.log(`    (${errors} ops failed)`);
  return done / seconds;
}

async function preload(client: PikvClusterClient, keys: number): Promise<void> {
  const value = 'v'.repeat(VALUE_BYTES);
  for (let start = 0; start < keys; start += 8192) {
    const ops = [];
    for (let i = start; i < Math.min(keys, start + 8192); i++) ops.push({ op: 'put' as const, key: keyOf(i), value });
    await client.batch(ops);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function throughput(options: Options): Promise<void> {
  const results: Record<string, number[]> = {};
  const record = (name: string, value: number): void => {
    (results[name] ??= []).push(value);
    console.log(`  ${name.padEnd(14)} ${Math.round(value).toLocaleString('en-US').padStart(12)} ops/s`);
  };
  for (let rep = 1; rep <= options.reps; rep++) {
    for (const replicas of [1, 2]) {
      console.log(`rep ${rep}, N=${replicas}: ${options.nodes} nodes, ${options.keys} keys`);
      const cluster = new Cluster(options.cpus);
      try {
        await cluster.start(options.nodes, replicas, options.lease_ttl_ms);
        const client = await connectCluster(cluster.nodes.map((n) => n.url), { request_timeout_ms: 30_000 });
        const any = await connectCluster(cluster.nodes.map((n) => n.url), { request_timeout_ms: 30_000, read: 'any' });
        try {
          await preload(client, options.keys);
          const hot = hotKeys(await cluster.waitSettled(options.nodes), options.hot_range, 'n1');
          cluster.setQuotas(options.cpus);
          // Unmeasured: the first seconds after the quota is set run slow (JIT of the GET path
          // under a quota: the first GET run of a session read 45k ops/s, the same run after a
          // PUT run 115k), so every workload runs once before it is measured.
          if (options.warmup > 0) {
            const warm = { ...options, seconds: options.warmup };
            if (options.workloads.includes('put')) await run(client, 'put', options.keys, warm);
            if (options.workloads.includes('get')) await run(client, 'get', options.keys, warm);
            if (options.workloads.includes('get-any')) await run(any, 'get', hot.length, warm, hot);
          }
          if (options.workloads.includes('put')) record(`N=${replicas} put`, await run(client, 'put', options.keys, options));
          if (options.workloads.includes('get')) record(`N=${replicas} get`, await run(client, 'get', options.keys, options));
          if (options.workloads.includes('get-any')) record(`N=${replicas} get-any`, await run(any, 'get', hot.length, options, hot));
        } finally {
          await client.close();
          await any.close();
        }
      } finally {
        await cluster.stop();
      }
    }
  }
  console.log(`\nmedians over ${options.reps} alternating runs (ops/s), ${options.nodes} nodes on this machine's loopback` +
    `${options.cpus > 0 ? `, ${options.cpus} CPU per node` : ''}; get-any: ${HOT_KEYS} hot keys${options.hot_range ? ', all primaries on n1' : ''}:`);
  for (const kind of options.workloads) {
    const one = median(results[`N=1 ${kind}`]!);
    const two = median(results[`N=2 ${kind}`]!);
    console.log(`  ${kind.padEnd(8)} N=1 ${Math.round(one).toLocaleString('en-US').padStart(12)}   N=2 ${Math.round(two).toLocaleString('en-US').padStart(12)}   N=2/N=1 ${(two / one).toFixed(2)}x   (N=2 runs: ${results[`N=2 ${kind}`]!.map((v) => Math.round(v)).join(', ')})`);
  }
}

async function failovers(options: Options): Promise<void> {
  const times: number[] = [];
  for (let i = 1; i <= options.failovers; i++) {
    const cluster = new Cluster(0);
    try {
      await cluster.start(options.nodes, 2, options.lease_ttl_ms);
      const view = await cluster.waitSettled(options.nodes);
      const victim = cluster.nodes[1 + (i % (options.nodes - 1))]!;
      const placement = new Placement(new HashRing(view.nodes), view.replicas ?? 1, new Set());
      const probes: string[] = [];
      for (let k = 0; probes.length < 20; k++) {
        const key = `probe${k}`;
        if (placement.primaryOf(murmur3_x86_32(Buffer.from(key), 0, key.length, KEY_HASH_SEED))?.id === victim.id) probes.push(key);
      }
      const client = await connectCluster([cluster.nodes[0]!.url], { request_timeout_ms: 1_000 });
      try {
        const killed_at = performance.now();
        victim.child.kill('SIGKILL');
        for (;;) {
          const results = await client.batch(probes.map((key) => ({ op: 'put' as const, key, value: 'x' }))).catch(() => null);
          if (results !== null && results.every((r) => r.code === 'OK')) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const ms = performance.now() - killed_at;
        times.push(ms);
        console.log(`  failover ${i}: ${Math.round(ms)} ms (kill -9 of ${victim.id} to the first acknowledged write of a key it was primary of)`);
      } finally {
        await client.close();
      }
    } finally {
      await cluster.stop();
    }
  }
  console.log(`failover at N=2, lease ${options.lease_ttl_ms} ms: median ${Math.round(median(times))} ms over ${times.length} runs (${times.map((t) => Math.round(t)).join(', ')})`);
}

async function main(): Promise<void> {
  const options = parseOptions();
  console.log(`bench:replication ${JSON.stringify(options)}`);
  await throughput(options);
  if (options.failovers > 0) await failovers(options);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

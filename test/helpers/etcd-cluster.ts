/**
 * A real etcd and real `pikv serve --etcd` nodes on loopback, for the fault tests of the
 * membership (cluster-etcd-faults.test.ts) and of replication (replication.test.ts): nodes
 * killed with SIGKILL, frozen with SIGSTOP, restarted on the same --data-dir and port, while a
 * ring-aware writer and a plain writer run, and the lost-write checker reads every key at the
 * end. Every process is stopped by PID in Cluster.stop(). PIKV_TEST_LOGS=<prefix> writes every
 * node's output (every incarnation) to <prefix>-<scenario>-<id>.log when a scenario fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, connectCluster, Op, type BatchOp, type PikvClient } from '../../src/index.js';
import { freeLoopbackPort } from '../../src/cluster/etcd/local-server.js';
import type { ClusterView } from '../../src/routing/view.js';
import { startEtcd, type EtcdProcess } from './etcd.js';
import { VersionWriter } from './lost-write-checker.js';
import { startServer, type ServerProcess } from './server-process.js';
import { delay } from './raw-socket.js';
import { askNode, viewOf, waitForView } from './cluster-view.js';

/** Polls `probe` every `every_ms` until it returns non-null; throws after `timeout_ms`. */
export async function waitFor<T>(probe: () => Promise<T | null>, timeout_ms: number, every_ms = 50): Promise<T> {
  const deadline_ms = Date.now() + timeout_ms;
  for (;;) {
    const result = await probe();
    if (result !== null) return result;
    if (Date.now() > deadline_ms) throw new Error(`condition not reached within ${timeout_ms} ms`);
    await delay(every_ms);
  }
}

export const SECRET = 'etcd-faults-secret';
export const ENV = { PIKV_CLUSTER_SECRET: SECRET };
/** 2 s: the fault tests stay fast, and a loaded 2-core CI box does not miss keep-alives (1 s leases did, and every miss is a failover). */
export const LEASE_TTL_MS = 2000;
const LOGS = process.env['PIKV_TEST_LOGS'];

export interface NodeStatus {
  node_id: string;
  migration: { state: string; streams: { to: string; keys_sent: number; keys_acked: number }[] } | null;
  etcd: { serving: boolean; controller: boolean; fence_ms_left: number } | null;
}
export const statusOf = (url: string): Promise<NodeStatus> => askNode(url, Op.CLUSTER_STATUS) as Promise<NodeStatus>;

export interface Member {
  id: string;
  port: number;
  dir: string | null;
  process: ServerProcess;
  url: string;
}

/** One etcd and its nodes; every process stopped by PID in stop(). Keeps the output of every incarnation of every node. */
export class Cluster {
  readonly members = new Map<string, Member>();
  /** Run first in stop(): stops writers and closes clients a failed scenario left running. */
  readonly closers: (() => Promise<void>)[] = [];
  private readonly logs: { id: string; process: ServerProcess }[] = [];
  private etcd!: EtcdProcess;

  /** `args`: extra `pikv serve` flags for every node (e.g. --replicas 2). */
  constructor(readonly name: string, readonly args: string[] = []) {}

  async start(): Promise<void> {
    this.etcd = await startEtcd();
  }

  get etcd_url(): string {
    return this.etcd.client_url;
  }

  private spawn(id: string, port: number, dir: string | null): Promise<ServerProcess> {
    const args = ['--workers', '2', '--max-memory', '128mb', '--port', String(port), '--node-id', id, '--etcd', this.etcd.client_url,
      '--lease-ttl-ms', String(LEASE_TTL_MS), '--heartbeat-interval-ms', '200', '--forward-timeout-ms', '2000', '--controller-tick-ms', '50'];
    args.push(...this.args);
    if (dir !== null) args.push('--data-dir', dir, '--fsync', 'always');
    return startServer(args, ENV).then((process) => {
      this.logs.push({ id, process });
      return process;
    });
  }

  /** Starts node `id` (it joins by starting), on a fixed port so that a restart keeps its URL. */
  async add(id: string, durable: boolean): Promise<Member> {
    const port = await freeLoopbackPort();
    const dir = durable ? mkdtempSync(join(tmpdir(), `pikv-faults-${id}-`)) : null;
    const process = await this.spawn(id, port, dir);
    const member = { id, port, dir, process, url: process.url };
    this.members.set(id, member);
    return member;
  }

  async kill(id: string): Promise<void> {
    const member = this.members.get(id)!;
    process.kill(member.process.pid, 'SIGKILL');
    await member.process.exited;
  }

  /** Starts `id` again on the same port and data dir. */
  async restart(id: string): Promise<void> {
    const member = this.members.get(id)!;
    member.process = await this.spawn(id, member.port, member.dir);
    assert.equal(member.process.url, member.url);
  }

  get(id: string): Member {
    return this.members.get(id)!;
  }

  urls(): string[] {
    return [...this.members.values()].map((m) => m.url);
  }

  async controller(): Promise<string> {
    return waitFor(async () => {
      for (const member of this.members.values()) {
        const status = await statusOf(member.url).catch(() => null);
        if (status?.etcd?.controller === true) return member.id;
      }
      return null;
    }, 10_000);
  }

  dumpLogs(): void {
    if (LOGS === undefined) return;
    const by_id = new Map<string, string>();
    for (const { id, process } of this.logs) by_id.set(id, `${by_id.get(id) ?? ''}==== incarnation pid ${process.pid}\n${process.output()}\n`);
    for (const [id, text] of by_id) writeFileSync(`${LOGS}-${this.name}-${id}.log`, text);
  }

  async stop(): Promise<void> {
    for (const close of this.closers.splice(0)) await close().catch(() => undefined);
    for (const { process: node } of this.logs) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        try {
          process.kill(node.pid, 'SIGCONT');
          process.kill(node.pid, 'SIGKILL');
        } catch { /* already gone */ }
        await node.exited;
      }
    }
    await this.etcd?.stop();
    for (const member of this.members.values()) if (member.dir !== null) rmSync(member.dir, { recursive: true, force: true });
  }
}

/** Writes `count` filler keys (not checked) so that a move has something to stream for a while. */
const RETRYABLE_FILL_CODES = new Set(['NODE_DOWN', 'CLUSTER_UNAVAILABLE', 'CLUSTER_BUSY', 'STALE_RING', 'TIMEOUT']);

export async function fill(url: string, count: number, value_bytes = 256): Promise<void> {
  const client = await connect(url, { request_timeout_ms: 30_000 });
  const value = 'f'.repeat(value_bytes);
  try {
    for (let start = 0; start < count; start += 2_000) {
      let ops: BatchOp[] = [];
      for (let i = start; i < Math.min(count, start + 2_000); i++) ops.push({ op: 'put', key: `fill${i}`, value });
      // Retryable refusals (a peer link still coming up, a view change) are sent again, as any
      // client would; the filler must end up written in full (checkFilled reads it all back).
      for (let attempt = 0; ops.length > 0; attempt++) {
        const results = await client.batch(ops);
        const bad = ops.filter((_, i) => results[i]!.code !== 'OK');
        const codes = new Set(results.filter((r) => r.code !== 'OK').map((r) => r.code));
        if (bad.length > 0 && (attempt >= 20 || [...codes].some((code) => !RETRYABLE_FILL_CODES.has(code)))) {
          assert.fail(`filler: ${bad.length} writes failed: ${JSON.stringify([...codes])}`);
        }
        ops = bad;
        if (ops.length > 0) await delay(100);
      }
    }
  } finally {
    await client.close();
  }
}

/** A ring-aware writer and a plain one (through `plain_url`, a node that stays up), running until stop(). */
export class Writers {
  readonly writers: VersionWriter[];
  private running = true;
  private runs: Promise<void>[] = [];

  private constructor(readonly aware: Awaited<ReturnType<typeof connectCluster>>, readonly plain: PikvClient) {
    this.writers = [new VersionWriter('r', aware), new VersionWriter('p', plain)];
    this.runs = this.writers.map((writer) => writer.run(() => this.running));
  }

  static async start(cluster: Cluster, plain_url: string): Promise<Writers> {
    const aware = await connectCluster(cluster.urls(), { request_timeout_ms: 5_000 });
    const plain = await connect(plain_url, { request_timeout_ms: 5_000 });
    const writers = new Writers(aware, plain);
    cluster.closers.push(async () => {
      await writers.stop();
      await aware.close().catch(() => undefined);
      await plain.close().catch(() => undefined);
    });
    return writers;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.runs);
  }

  /** Reads every acknowledged key through a fresh ring-aware reader (retrying while the cluster answers retryably) and asserts no anomaly. */
  async check(cluster: Cluster, reader_url: string, exclude?: (key: string) => boolean): Promise<void> {
    const reader = await connectCluster([reader_url], { request_timeout_ms: 5_000 });
    try {
      for (const writer of this.writers) {
        const anomalies = await waitFor(async () => writer.check(reader, exclude).catch(() => null), 15_000);
        if (anomalies.length > 0) cluster.dumpLogs();
        assert.equal(anomalies.length, 0, `${writer.summary()}: ${anomalies.length} anomalies, e.g. ${JSON.stringify(anomalies.slice(0, 5))}`);
        assert.ok(writer.ops_acked > 200, writer.summary());
      }
    } finally {
      await reader.close();
      await this.aware.close();
      await this.plain.close();
    }
  }

  summary(): string {
    return this.writers.map((w) => w.summary()).join('; ');
  }
}

/** Polls `url` for a view with a change in progress (`next`), as fast as it answers. */
export async function waitForNext(url: string, timeout_ms = 15_000): Promise<ClusterView> {
  return waitFor(async () => {
    const view = await viewOf(url).catch(() => null);
    return view?.next !== undefined ? view : null;
  }, timeout_ms, 5);
}

/** Runs `body` against a fresh cluster; dumps logs if it throws, and always stops everything. */
export async function withCluster(name: string, body: (cluster: Cluster) => Promise<void>, args: string[] = []): Promise<void> {
  const cluster = new Cluster(name, args);
  clusters.add(cluster);
  try {
    await cluster.start();
    await body(cluster);
  } catch (error) {
    cluster.dumpLogs();
    throw error;
  } finally {
    await cluster.stop();
    clusters.delete(cluster);
  }
}

/** Clusters still running: a test file's `after` stops them if a scenario was cut short. */
export const clusters = new Set<Cluster>();

export async function startThree(cluster: Cluster, durable: boolean): Promise<void> {
  for (const id of ['a', 'b', 'c']) {
    await cluster.add(id, durable);
    await waitForView(cluster.get('a').url, [...cluster.members.keys()]);
  }
}

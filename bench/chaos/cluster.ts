/**
 * The chaos run's pikv nodes: started, killed (-9), frozen (SIGSTOP/SIGCONT), restarted with
 * or without their --data-dir, each incarnation's output kept for the report.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, Op, Status, WireCodec } from '../../src/index.js';
import type { ClusterView } from '../../src/routing/view.js';
import type { EtcdHandle, NodeAddress, Proc, Topology } from './topology.js';

export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const SECRET = 'chaos-secret';
export const LEASE_TTL_MS = 2000;
const codec = new WireCodec();

export interface NodeSettings {
  replicas: number;
  down_grace_ms: number;
}

interface Member {
  id: string;
  address: NodeAddress;
  dir: string;
  proc: Proc | null;
  frozen: boolean;
  /** Set when this harness killed the current process: any other exit is the node's own doing. */
  killed: boolean;
}

export async function askNode(url: string, op: number, timeout_ms = 1_500): Promise<unknown> {
  const client = await connect(url, { connect_timeout_ms: timeout_ms, request_timeout_ms: timeout_ms });
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(op), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    if (reply.status[0] !== Status.OK) throw new Error(`op ${op}: status ${reply.status[0]}`);
    return codec.decodeValue(reply.values);
  } finally {
    await client.close().catch(() => undefined);
  }
}

export interface NodeStatusLite {
  node_id: string;
  epoch?: number;
  etcd: { serving: boolean; controller: boolean } | null;
}

export class ChaosCluster {
  readonly members = new Map<string, Member>();
  private readonly incarnations: { id: string; proc: Proc; started_ms: number }[] = [];
  etcd!: EtcdHandle;

  constructor(readonly topology: Topology, readonly settings: NodeSettings, private readonly started_ms: number) {}

  async start(): Promise<void> {
    this.etcd = await this.topology.startEtcd();
  }

  private async spawn(member: Member): Promise<void> {
    const { address } = member;
    const args = [CLI_PATH, 'serve', '--host', address.host, '--port', String(address.port), '--advertise', address.url, '--resp-port', String(address.resp_port),
      '--node-id', member.id, '--etcd', this.etcd.url, '--workers', '1', '--max-memory', '64mb',
      '--lease-ttl-ms', String(LEASE_TTL_MS), '--heartbeat-interval-ms', '200', '--forward-timeout-ms', '2000', '--controller-tick-ms', '50',
      '--replicas', String(this.settings.replicas), '--down-grace-ms', String(this.settings.down_grace_ms),
      '--data-dir', member.dir, '--fsync', 'always'];
    const proc = this.topology.spawnNode(member.id, args, { ...process.env, PIKV_CLUSTER_SECRET: SECRET });
    this.incarnations.push({ id: member.id, proc, started_ms: Date.now() - this.started_ms });
    member.proc = proc;
    member.frozen = false;
    member.killed = false;
    const give_up = Date.now() + 20_000;
    while (!/listening on wss?:\/\//.test(proc.output())) {
      if (!proc.alive() || Date.now() > give_up) throw new Error(`node ${member.id} did not start:\n${proc.output().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async add(id: string): Promise<void> {
    const member: Member = { id, address: await this.topology.address(id), dir: mkdtempSync(join(tmpdir(), `pikv-chaos-${id}-`)), proc: null, frozen: false, killed: false };
    this.members.set(id, member);
    await this.spawn(member);
  }

  get(id: string): Member {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no node ${id}`);
    return member;
  }

  url(id: string): string {
    return this.get(id).address.url;
  }

  urls(): string[] {
    return [...this.members.values()].map((m) => m.address.url);
  }

  /** Members whose process exited although this harness did not kill it (a leave, a crash, a self-stop). */
  exitedOnTheirOwn(): { id: string; code: number | null; last: string }[] {
    return [...this.members.values()].filter((m) => m.proc !== null && !m.proc.alive() && !m.killed)
      .map((m) => ({ id: m.id, code: m.proc!.child.exitCode, last: m.proc!.output().trim().split('\n').slice(-3).join(' | ') }));
  }

  running(): string[] {
    return [...this.members.values()].filter((m) => m.proc?.alive() === true && !m.frozen).map((m) => m.id);
  }

  async kill(id: string): Promise<void> {
    const member = this.get(id);
    if (member.proc === null || !member.proc.alive()) return;
    member.killed = true;
    process.kill(member.proc.pid, 'SIGKILL');
    if (member.frozen) process.kill(member.proc.pid, 'SIGCONT');
    await member.proc.exited;
    member.frozen = false;
  }

  /** Starts `id` again on its address; `wipe` empties its --data-dir first (a new board). */
  async restart(id: string, wipe: boolean): Promise<void> {
    const member = this.get(id);
    if (member.proc?.alive() === true) throw new Error(`restart of running ${id}`);
    if (wipe) {
      rmSync(member.dir, { recursive: true, force: true });
      member.dir = mkdtempSync(join(tmpdir(), `pikv-chaos-${id}-`));
    }
    await this.spawn(member);
  }

  freeze(id: string): void {
    const member = this.get(id);
    process.kill(member.proc!.pid, 'SIGSTOP');
    member.frozen = true;
  }

  thaw(id: string): void {
    const member = this.get(id);
    if (!member.frozen) return;
    process.kill(member.proc!.pid, 'SIGCONT');
    member.frozen = false;
  }

  /** The view, from the first running node that answers. */
  async view(): Promise<ClusterView | null> {
    for (const id of this.running()) {
      const view = await (askNode(this.url(id), Op.RING) as Promise<ClusterView>).catch(() => null);
      if (view !== null) return view;
    }
    return null;
  }

  async controller(): Promise<string | null> {
    for (const id of this.running()) {
      const status = await (askNode(this.url(id), Op.CLUSTER_STATUS) as Promise<NodeStatusLite>).catch(() => null);
      if (status?.etcd?.controller === true) return id;
    }
    return null;
  }

  /** Resident set size of each running node, in MiB (from /proc). */
  async rss(): Promise<Record<string, number>> {
    const { readFile } = await import('node:fs/promises');
    const out: Record<string, number> = {};
    for (const member of this.members.values()) {
      if (member.proc === null || !member.proc.alive()) continue;
      const status = await readFile(`/proc/${member.proc.pid}/status`, 'utf8').catch(() => '');
      const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
      if (kb !== undefined) out[member.id] = Math.round(Number(kb) / 1024);
    }
    return out;
  }

  writeLogs(dir: string): void {
    const by_id = new Map<string, string>();
    for (const { id, proc, started_ms } of this.incarnations) {
      by_id.set(id, `${by_id.get(id) ?? ''}==== incarnation pid ${proc.pid}, started at +${started_ms} ms\n${proc.output()}\n`);
    }
    for (const [id, text] of by_id) writeFileSync(join(dir, `node-${id}.log`), text);
    writeFileSync(join(dir, 'etcd.log'), this.etcd?.proc().output() ?? '');
  }

  cleanup(): void {
    for (const member of this.members.values()) rmSync(member.dir, { recursive: true, force: true });
  }
}

/**
 * Where the chaos run's processes live and how one node is cut off.
 *
 *   loopback: etcd and every node on 127.0.0.1, ephemeral ports. No partition fault.
 *   netns:    (root, `ip netns`, iptables) one network namespace per node, one for etcd and one
 *             for the clients (this process runs there: bench/chaos.ts re-executes itself with
 *             `ip netns exec`), veth pairs into a bridge in its own namespace, addresses
 *             10.205.<x>.0/24 that exist only inside them; nothing is added to the host's
 *             namespace. A partition is iptables in the namespaces, as test/replication-netns.test.ts:
 *             the victim hears only itself and the clients, etcd and its peers drop everything
 *             from it, both ways.
 *
 * Every process is spawned here and recorded by PID (also in `pid_file`, so the outer process
 * of the netns mode can kill any that outlived this one); `killAll()` stops them by PID.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdEnvironment, etcdHealthy, freeLoopbackPort, localEtcdArgs } from '../../src/cluster/etcd/local-server.js';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<number | null>;
  alive(): boolean;
}

const OUTPUT_KEPT_CHARS = 400_000;
const T0 = performance.now();
/** Seconds since this process started its run: the clock of the timeline and of the node log stamps. */
export function elapsed_s(): number {
  return (performance.now() - T0) / 1000;
}
const all_procs = new Set<Proc>();
let pid_file: string | null = null;

export function setPidFile(path: string): void {
  pid_file = path;
}

export function spawnProc(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  let at_line_start = true;
  // Each line stamped with ms since this run started, to line node logs up with the timeline.
  const keep = (chunk: Buffer): void => {
    const stamp = `[${((performance.now() - T0) / 1000).toFixed(2)}] `;
    let out = '';
    for (const part of chunk.toString().split(/(?<=\n)/)) {
      out += at_line_start ? stamp + part : part;
      at_line_start = part.endsWith('\n');
    }
    text = (text + out).slice(-OUTPUT_KEPT_CHARS);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (error) => keep(Buffer.from(`spawn error: ${error.message}\n`)));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const proc: Proc = {
    name, child, pid: child.pid ?? -1, output: () => text, exited,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  all_procs.add(proc);
  void exited.then(() => all_procs.delete(proc));
  if (pid_file !== null && child.pid !== undefined) appendFileSync(pid_file, `${child.pid}\n`);
  return proc;
}

export async function killAll(): Promise<void> {
  for (const proc of [...all_procs]) {
    if (!proc.alive()) continue;
    try {
      process.kill(proc.pid, 'SIGCONT');
      process.kill(proc.pid, 'SIGKILL');
    } catch { /* gone */ }
    await proc.exited;
  }
}
process.on('exit', () => {
  for (const proc of all_procs) if (proc.alive()) proc.child.kill('SIGKILL');
});

export interface EtcdHandle {
  url: string;
  proc(): Proc;
  /** SIGKILL, down for `down_ms`, started again on the same data dir and ports. */
  restart(down_ms: number): Promise<void>;
}

export interface NodeAddress {
  host: string;
  port: number;
  resp_port: number;
  url: string;
}

export interface Topology {
  readonly kind: 'loopback' | 'netns';
  readonly can_partition: boolean;
  startEtcd(): Promise<EtcdHandle>;
  /** A fixed address for node `id` (kept across restarts). */
  address(id: string): Promise<NodeAddress>;
  /** Runs `node <args>` where node `id` lives. */
  spawnNode(id: string, args: string[], env: NodeJS.ProcessEnv): Proc;
  /** Cuts `id` off from etcd and, unless `etcd_only`, from `peers`, both ways; clients still reach it. */
  partition(id: string, peers: string[], etcd_only?: boolean): Promise<void>;
  heal(): Promise<void>;
  cleanup(): void;
}

async function waitEtcd(url: string, proc: Proc): Promise<void> {
  const give_up = Date.now() + 15_000;
  while (!(await etcdHealthy(url))) {
    if (!proc.alive() || Date.now() > give_up) throw new Error(`etcd did not start:\n${proc.output().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * etcd started by `spawnEtcd` (on the same data dir and ports each time), once healthy at `url`;
 * restart() kills it by PID and starts it again after `down_ms`.
 */
async function restartableEtcd(url: string, spawnEtcd: () => Proc): Promise<EtcdHandle> {
  const launch = async (): Promise<Proc> => {
    const proc = spawnEtcd();
    await waitEtcd(url, proc);
    return proc;
  };
  let current = await launch();
  return {
    url,
    proc: () => current,
    restart: async (down_ms) => {
      process.kill(current.pid, 'SIGKILL');
      await current.exited;
      await new Promise((resolve) => setTimeout(resolve, down_ms));
      current = await launch();
    },
  };
}

const ETCD_BINARY = process.env['PIKV_ETCD_BINARY'] ?? 'etcd';
/** 50 ms heartbeats, 250 ms elections: etcd grants 2 s leases as asked (test/helpers/etcd.ts). */
function etcdArgs(data_dir: string, client_port: number, peer_port: number): string[] {
  return localEtcdArgs({ binary: ETCD_BINARY, data_dir, client_port, peer_port, heartbeat_interval_ms: 50, election_timeout_ms: 250, auto_compaction_retention_revisions: 1000, log_level: 'warn', start_timeout_ms: 15_000 });
}

export class LoopbackTopology implements Topology {
  readonly kind = 'loopback';
  readonly can_partition = false;
  private readonly addresses = new Map<string, NodeAddress>();
  private readonly dirs: string[] = [];

  async startEtcd(): Promise<EtcdHandle> {
    const data_dir = mkdtempSync(join(tmpdir(), 'pikv-chaos-etcd-'));
    this.dirs.push(data_dir);
    const client_port = await freeLoopbackPort();
    const peer_port = await freeLoopbackPort();
    const url = `http://127.0.0.1:${client_port}`;
    return restartableEtcd(url, () => spawnProc('etcd', ETCD_BINARY, etcdArgs(data_dir, client_port, peer_port), etcdEnvironment()));
  }

  async address(id: string): Promise<NodeAddress> {
    let address = this.addresses.get(id);
    if (address === undefined) {
      const port = await freeLoopbackPort();
      const resp_port = await freeLoopbackPort();
      address = { host: '127.0.0.1', port, resp_port, url: `ws://127.0.0.1:${port}` };
      this.addresses.set(id, address);
    }
    return address;
  }

  spawnNode(id: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    return spawnProc(id, process.execPath, args, env);
  }

  partition(): Promise<void> {
    return Promise.reject(new Error('partition needs --netns'));
  }

  heal(): Promise<void> {
    return Promise.resolve();
  }

  cleanup(): void {
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

// ---- netns ----

export interface NetnsNames {
  tag: string;
  subnet: string;
}

export const NETNS_CLIENT_HOST = 100;
const NETNS_ETCD_HOST = 200;
const NETNS_PORT = 7070;
const NETNS_RESP_PORT = 6380;
/** Node ids the netns mode can host (one namespace each, made up front). */
export const NETNS_NODE_IDS = ['a', 'b', 'c', 'd', 'e', 'f'];

export function netnsNames(): NetnsNames {
  return { tag: `ch${process.pid % 100000}`, subnet: `10.205.${process.pid % 250}` };
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** Null if this machine can run the netns mode, else why not. */
export function netnsUnavailable(): string | null {
  const probe = `chprobe${process.pid % 100000}`;
  try {
    ip('netns', 'add', probe);
  } catch (error) {
    return `ip netns is unavailable (${(error as Error).message.split('\n')[0]}); needs root and iproute2`;
  }
  try {
    execFileSync('ip', ['netns', 'exec', probe, 'iptables', '-w', '-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT'], { stdio: 'pipe' });
  } catch (error) {
    return `iptables does not work in a network namespace (${(error as Error).message.split('\n')[0]})`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch { /* gone */ }
  }
  return null;
}

const nsName = (names: NetnsNames, what: string): string => `${names.tag}-${what}`;
const hostOfNode = (id: string): number => NETNS_NODE_IDS.indexOf(id) + 1;

/** Made by the outer process (root namespace); returns the namespaces to delete afterwards. */
export function createNetns(names: NetnsNames): string[] {
  const made: string[] = [];
  const bridge = nsName(names, 'br');
  ip('netns', 'add', bridge);
  made.push(bridge);
  ip('-n', bridge, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', bridge, 'link', 'set', 'br0', 'up');
  const add = (what: string, host: number): void => {
    const name = nsName(names, what);
    ip('netns', 'add', name);
    made.push(name);
    const outside = `${names.tag}v${host}`;
    ip('-n', bridge, 'link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
    ip('-n', bridge, 'link', 'set', outside, 'master', 'br0', 'up');
    ip('-n', name, 'addr', 'add', `${names.subnet}.${host}/24`, 'dev', 'eth0');
    ip('-n', name, 'link', 'set', 'eth0', 'up');
    ip('-n', name, 'link', 'set', 'lo', 'up');
  };
  add('cl', NETNS_CLIENT_HOST);
  add('etcd', NETNS_ETCD_HOST);
  for (const id of NETNS_NODE_IDS) add(id, hostOfNode(id));
  return made;
}

export function deleteNetns(made: string[]): void {
  for (const name of made.reverse()) {
    try {
      ip('netns', 'del', name);
    } catch { /* gone */ }
  }
}

export function clientNamespace(names: NetnsNames): string {
  return nsName(names, 'cl');
}

export class NetnsTopology implements Topology {
  readonly kind = 'netns';
  readonly can_partition = true;
  private readonly dirs: string[] = [];
  private partitioned: string[] = [];

  constructor(private readonly names: NetnsNames) {}

  private inNs(ns: string, name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    // `ip netns exec` execs the command: the PID is the command's own.
    return spawnProc(name, 'ip', ['netns', 'exec', ns, command, ...args], env);
  }

  async startEtcd(): Promise<EtcdHandle> {
    const data_dir = mkdtempSync(join(tmpdir(), 'pikv-chaos-etcd-'));
    this.dirs.push(data_dir);
    const url = `http://${this.names.subnet}.${NETNS_ETCD_HOST}:2379`;
    const args = etcdArgs(data_dir, 2379, 2380);
    for (const flag of ['--listen-client-urls', '--advertise-client-urls']) args[args.indexOf(flag) + 1] = url;
    return restartableEtcd(url, () => this.inNs(nsName(this.names, 'etcd'), 'etcd', ETCD_BINARY, args, etcdEnvironment()));
  }

  address(id: string): Promise<NodeAddress> {
    if (!NETNS_NODE_IDS.includes(id)) throw new Error(`netns mode hosts nodes ${NETNS_NODE_IDS.join(',')} only`);
    const host = `${this.names.subnet}.${hostOfNode(id)}`;
    return Promise.resolve({ host, port: NETNS_PORT, resp_port: NETNS_RESP_PORT, url: `ws://${host}:${NETNS_PORT}` });
  }

  spawnNode(id: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    return this.inNs(nsName(this.names, id), id, process.execPath, args, env);
  }

  private iptables(ns: string, rules: string[]): void {
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-restore', '-w'], { input: `${['*filter', ...rules, 'COMMIT'].join('\n')}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  partition(id: string, peers: string[], etcd_only = false): Promise<void> {
    const victim = `${this.names.subnet}.${hostOfNode(id)}`;
    const client = `${this.names.subnet}.${NETNS_CLIENT_HOST}`;
    const etcd = `${this.names.subnet}.${NETNS_ETCD_HOST}`;
    this.iptables(nsName(this.names, id), etcd_only ? [`-A INPUT -s ${etcd} -j DROP`] : ['-A INPUT -i lo -j ACCEPT', `-A INPUT -s ${client} -j ACCEPT`, '-A INPUT -j DROP']);
    const others = [nsName(this.names, 'etcd'), ...(etcd_only ? [] : peers.filter((p) => p !== id).map((p) => nsName(this.names, p)))];
    for (const ns of others) this.iptables(ns, [`-A INPUT -s ${victim} -j DROP`]);
    this.partitioned = [nsName(this.names, id), ...others];
    return Promise.resolve();
  }

  heal(): Promise<void> {
    for (const ns of this.partitioned) this.iptables(ns, []);
    this.partitioned = [];
    return Promise.resolve();
  }

  cleanup(): void {
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

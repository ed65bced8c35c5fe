/**
 * The cluster bench's sandbox: network namespaces, veth pairs, a bridge, tc shaping and cgroup
 * v1 CPU quotas, all created here and all removed here (normal end, error, Ctrl-C).
 *
 * Layout (as test/cluster-netns.test.ts): a bridge namespace `<tag>-br` with bridge `br0`;
 * each node in its own namespace `<tag>-n<i>` with `eth0` = 10.204.0.<i>/24; the load
 * generator in `<tag>-cl` with 10.204.0.100. Each namespace's eth0 is one end of a veth pair
 * whose other end (`<tag>v<host>`) is a port of br0. Nothing is addressed outside these
 * namespaces; the root namespace only briefly holds the outer veth end while it is created.
 *
 * A node's link is shaped in both directions with tbf: on its own eth0 (node → bridge, i.e.
 * its replies and forwards) and on the bridge port (bridge → node, its requests). The load
 * generator's link is not shaped: it stands for many clients.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { readOrEmpty, removeCgroupDir } from './cgroup-dir.js';

export const SUBNET = '10.204.0';
export const CLIENT_HOST = 100;
const CGROUP_CPU_ROOT = '/sys/fs/cgroup/cpu';

export function run(command: string, args: string[]): string {
  return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

/** Why this bench cannot run here, or null. */
export function sandboxUnavailable(tag: string): string | null {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, tc and cgroups)';
  try {
    run('ip', ['netns', 'add', `${tag}-probe`]);
    run('ip', ['netns', 'del', `${tag}-probe`]);
  } catch (error) {
    return `ip netns is unavailable here (${(error as Error).message.split('\n')[0]}); needs root and iproute2`;
  }
  try {
    run('tc', ['-V']);
  } catch {
    return 'tc (iproute2) is not installed';
  }
  if (!existsSync(`${CGROUP_CPU_ROOT}/cpu.cfs_quota_us`)) return `the cgroup v1 cpu controller is not mounted at ${CGROUP_CPU_ROOT}`;
  return null;
}

export interface LinkSpec {
  /** tc rate, e.g. "1gbit"; "" = unshaped. */
  rate: string;
  burst: string;
  latency: string;
}

export interface CpuSpec {
  /** CPUs per node, e.g. 0.25; 0 = no quota. */
  cpus: number;
  period_us: number;
}

export interface CgroupCpuStat {
  nr_periods: number;
  nr_throttled: number;
  throttled_s: number;
  /** cpuacct-style usage of the group, if the controller exposes it (seconds). */
  usage_s: number | null;
}

export class Sandbox {
  readonly tag: string;
  readonly bridge_ns: string;
  readonly client_ns: string;
  private readonly namespaces: string[] = [];
  private readonly qdiscs: { ns: string; dev: string }[] = [];
  private readonly cgroups: string[] = [];
  private cgroup_parent: string | null = null;
  /** Pids to SIGKILL before removing anything, when cleanup runs on an error or signal. */
  readonly pids = new Set<number>();
  private cleaned = false;

  constructor(tag: string) {
    this.tag = tag;
    this.bridge_ns = `${tag}-br`;
    this.client_ns = `${tag}-cl`;
    process.on('exit', () => this.cleanup());
  }

  nodeNs(index: number): string {
    return `${this.tag}-n${index}`;
  }

  createBridge(): void {
    this.addNs(this.bridge_ns);
    run('ip', ['-n', this.bridge_ns, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', this.bridge_ns, 'link', 'set', 'br0', 'up']);
  }

  private addNs(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
  }

  /** A namespace with eth0 = SUBNET.host on the bridge; shaped both ways when `link.rate`. */
  addHost(name: string, host: number, link: LinkSpec): void {
    this.addNs(name);
    const outside = `${this.tag}v${host}`;
    run('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    run('ip', ['link', 'set', outside, 'netns', this.bridge_ns]);
    run('ip', ['-n', this.bridge_ns, 'link', 'set', outside, 'master', 'br0', 'up']);
    run('ip', ['-n', name, 'addr', 'add', `${SUBNET}.${host}/24`, 'dev', 'eth0']);
    run('ip', ['-n', name, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    if (link.rate !== '') {
      for (const [ns, dev] of [[name, 'eth0'], [this.bridge_ns, outside]] as const) {
        run('tc', ['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', link.rate, 'burst', link.burst, 'latency', link.latency]);
        this.qdiscs.push({ ns, dev });
      }
    }
  }

  /**
   * A cgroup with a CFS quota, under one parent group of this bench; returns its directory
   * (write a pid to cgroup.procs). The parent gets cpu.shares = `parent_shares`: as one
   * scheduling entity it would otherwise weigh as much as a single busy process of a
   * neighbour (e.g. a build), and the nodes together could get less than their quotas.
   */
  addCgroup(name: string, cpu: CpuSpec, parent_shares = 1024): string {
    if (this.cgroup_parent === null) {
      this.cgroup_parent = `${CGROUP_CPU_ROOT}/${this.tag}`;
      mkdirSync(this.cgroup_parent);
      writeFileSync(`${this.cgroup_parent}/cpu.shares`, String(parent_shares));
    }
    const dir = `${this.cgroup_parent}/${name}`;
    mkdirSync(dir);
    this.cgroups.push(dir);
    writeFileSync(`${dir}/cpu.cfs_period_us`, String(cpu.period_us));
    writeFileSync(`${dir}/cpu.cfs_quota_us`, cpu.cpus > 0 ? String(Math.round(cpu.cpus * cpu.period_us)) : '-1');
    return dir;
  }

  setQuota(dir: string, cpu: CpuSpec): void {
    writeFileSync(`${dir}/cpu.cfs_quota_us`, cpu.cpus > 0 ? String(Math.round(cpu.cpus * cpu.period_us)) : '-1');
  }

  /** Removes every cgroup made by addCgroup (they must be empty: stop their processes first). */
  removeCgroups(): void {
    for (const dir of this.cgroups.splice(0).reverse()) removeCgroupDir(dir);
  }

  /** Idempotent; synchronous so it can run from an 'exit' handler. */
  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const { ns, dev } of this.qdiscs.splice(0)) {
      try {
        run('tc', ['-n', ns, 'qdisc', 'del', 'dev', dev, 'root']);
      } catch {
        // The device went with its namespace.
      }
    }
    for (const name of this.namespaces.splice(0).reverse()) {
      try {
        run('ip', ['netns', 'del', name]);
      } catch {
        // Already gone.
      }
    }
    for (const dir of this.cgroups.splice(0).reverse()) removeCgroupDir(dir);
    if (this.cgroup_parent !== null) removeCgroupDir(this.cgroup_parent);
    this.cgroup_parent = null;
  }
}

export function readCgroupCpu(dir: string): CgroupCpuStat {
  const stat = readOrEmpty(`${dir}/cpu.stat`);
  const field = (name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(stat)?.[1] ?? 0);
  const usage = readOrEmpty(`${dir}/cpuacct.usage`).trim();
  return { nr_periods: field('nr_periods'), nr_throttled: field('nr_throttled'), throttled_s: field('throttled_time') / 1e9, usage_s: usage === '' ? null : Number(usage) / 1e9 };
}

/** Thread ids of `pid` that are not in cgroup `dir` (should be none). */
export function threadsOutside(pid: number, dir: string): number[] {
  const inside = new Set(readOrEmpty(`${dir}/tasks`).split('\n').filter(Boolean).map(Number));
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.map(Number).filter((tid) => !inside.has(tid));
}

export function loadAverage(): [number, number, number] {
  const parts = readOrEmpty('/proc/loadavg').split(' ');
  return [Number(parts[0]), Number(parts[1]), Number(parts[2])];
}

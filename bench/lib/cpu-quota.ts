/**
 * A CPU quota per process, for benches that run many "boards" on a few cores. Three ways, the
 * first that works on this machine:
 *   - cgroup v2: a group under a cgroup2 mount whose cgroup.controllers lists `cpu` (pure v2 at
 *     /sys/fs/cgroup, or a hybrid's /sys/fs/cgroup/unified), quota in `cpu.max`;
 *   - cgroup v1: the `cpu` controller at /sys/fs/cgroup/cpu, quota in `cpu.cfs_quota_us`;
 *   - `systemd-run --scope -p CPUQuota=P%` (needs systemd as PID 1; the quota is fixed at start);
 * else none, said in one line. Groups are created under one parent named after this process,
 * a process joins its group before it execs (`sh -c 'echo $$ > …/cgroup.procs; exec …'`), so
 * every thread it starts is born inside; cleanup() removes the groups (stop the processes first).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { readOrEmpty, removeCgroupDir } from './cgroup-dir.js';

export type QuotaMethod = 'cgroup2' | 'cgroup1' | 'systemd-run' | 'none';

export interface QuotaGroup {
  name: string;
  /** The cgroup directory (cgroup methods only). */
  dir: string | null;
  cpus: number;
}

export interface ThrottleStat {
  nr_periods: number;
  nr_throttled: number;
  throttled_s: number;
}

const V2_CANDIDATES = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
const V1_CPU_ROOT = '/sys/fs/cgroup/cpu';

/** cpu.max for `cpus` CPUs over `period_us`: "max <period>" when cpus ≤ 0 (no quota). */
export function cpuMaxLine(cpus: number, period_us: number): string {
  if (!Number.isInteger(period_us) || period_us < 1000 || period_us > 1_000_000) throw new RangeError(`period must be 1000..1000000 µs, got ${period_us}`);
  if (!(cpus > 0)) return `max ${period_us}`;
  // The kernel refuses quotas under 1 ms.
  return `${Math.max(1000, Math.round(cpus * period_us))} ${period_us}`;
}

/** Reads cpu.stat (v1: throttled_time in ns; v2: throttled_usec). */
export function parseCpuStat(text: string): ThrottleStat {
  const field = (name: string): number | null => {
    const match = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
    return match === null ? null : Number(match[1]);
  };
  const throttled_s = field('throttled_usec') !== null ? field('throttled_usec')! / 1e6 : (field('throttled_time') ?? 0) / 1e9;
  return { nr_periods: field('nr_periods') ?? 0, nr_throttled: field('nr_throttled') ?? 0, throttled_s };
}

export class CpuQuota {
  readonly method: QuotaMethod;
  /** One line for the log and report: how quotas are applied, or why not. */
  readonly description: string;
  private readonly root: string | null;
  private parent: string | null = null;
  private readonly groups: QuotaGroup[] = [];
  private readonly period_us: number;

  /**
   * `parent_shares` (cgroup v1 cpu.shares; v2 cpu.weight = shares / 1024 × 100, at most 10000)
   * weighs the bench's parent group against the machine's other processes: as one scheduling
   * entity it would otherwise count as much as a single busy process of a neighbour, and the
   * nodes together could get less than their quotas.
   */
  constructor(tag: string, period_us: number, prefer: QuotaMethod | 'auto' = 'auto', parent_shares = 1024) {
    this.period_us = period_us;
    const found = CpuQuota.detect(prefer);
    this.method = found.method;
    this.root = found.root;
    this.description = found.description;
    if (this.root !== null) {
      this.parent = `${this.root}/${tag}`;
      mkdirSync(this.parent);
      if (this.method === 'cgroup2') {
        writeFileSync(`${this.parent}/cgroup.subtree_control`, '+cpu');
        writeFileSync(`${this.parent}/cpu.weight`, String(Math.max(1, Math.min(10_000, Math.round((parent_shares / 1024) * 100)))));
      } else writeFileSync(`${this.parent}/cpu.shares`, String(parent_shares));
      process.on('exit', () => this.cleanup());
    }
  }

  private static detect(prefer: QuotaMethod | 'auto'): { method: QuotaMethod; root: string | null; description: string } {
    const reasons: string[] = [];
    if (prefer === 'auto' || prefer === 'cgroup2') {
      for (const root of V2_CANDIDATES) {
        if (!readOrEmpty(`${root}/cgroup.controllers`).split(/\s+/).includes('cpu')) continue;
        try {
          // The cpu controller must be enabled for the children of `root`.
          if (!readOrEmpty(`${root}/cgroup.subtree_control`).split(/\s+/).includes('cpu')) writeFileSync(`${root}/cgroup.subtree_control`, '+cpu');
          const probe = `${root}/pikv-probe-${process.pid}`;
          mkdirSync(probe);
          rmdirSync(probe);
          return { method: 'cgroup2', root, description: `cgroup v2 cpu.max under ${root}` };
        } catch (error) {
          reasons.push(`cgroup v2 at ${root}: ${(error as Error).message}`);
        }
      }
      if (reasons.length === 0) reasons.push('no cgroup2 mount with the cpu controller');
    }
    if (prefer === 'auto' || prefer === 'cgroup1') {
      if (existsSync(`${V1_CPU_ROOT}/cpu.cfs_quota_us`)) {
        try {
          const probe = `${V1_CPU_ROOT}/pikv-probe-${process.pid}`;
          mkdirSync(probe);
          rmdirSync(probe);
          return { method: 'cgroup1', root: V1_CPU_ROOT, description: `cgroup v1 cpu.cfs_quota_us under ${V1_CPU_ROOT}` };
        } catch (error) {
          reasons.push(`cgroup v1 at ${V1_CPU_ROOT}: ${(error as Error).message}`);
        }
      } else reasons.push(`no cgroup v1 cpu controller at ${V1_CPU_ROOT}`);
    }
    if (prefer === 'auto' || prefer === 'systemd-run') {
      const probe = spawnSync('systemd-run', ['--scope', '--quiet', '-p', 'CPUQuota=50%', 'true'], { encoding: 'utf8', timeout: 10_000 });
      if (probe.error === undefined && probe.status === 0) return { method: 'systemd-run', root: null, description: 'systemd-run --scope -p CPUQuota=' };
      reasons.push(`systemd-run: ${(probe.stderr ?? probe.error?.message ?? '').trim().split('\n')[0] || 'failed'}`);
    }
    return { method: 'none', root: null, description: `NO CPU QUOTA (${reasons.join('; ')}): every node may use any core, so node counts are not comparable` };
  }

  /** A group with `cpus` CPUs (0: no quota yet; set it later with setQuota, except under systemd-run). */
  create(name: string, cpus: number): QuotaGroup {
    let dir: string | null = null;
    if (this.parent !== null) {
      dir = `${this.parent}/${name}`;
      mkdirSync(dir);
    }
    const group: QuotaGroup = { name, dir, cpus: 0 };
    this.groups.push(group);
    this.setQuota(group, cpus);
    return group;
  }

  setQuota(group: QuotaGroup, cpus: number): void {
    group.cpus = cpus;
    if (group.dir === null) return;
    if (this.method === 'cgroup2') writeFileSync(`${group.dir}/cpu.max`, cpuMaxLine(cpus, this.period_us));
    else {
      writeFileSync(`${group.dir}/cpu.cfs_period_us`, String(this.period_us));
      writeFileSync(`${group.dir}/cpu.cfs_quota_us`, cpus > 0 ? cpuMaxLine(cpus, this.period_us).split(' ')[0]! : '-1');
    }
  }

  /** The command that starts `argv` inside the group. */
  wrap(group: QuotaGroup, argv: string[]): { file: string; args: string[] } {
    if (group.dir !== null) return { file: '/bin/sh', args: ['-c', `echo $$ > '${group.dir}/cgroup.procs' && exec "$@"`, 'sh', ...argv] };
    if (this.method === 'systemd-run' && group.cpus > 0) {
      return { file: 'systemd-run', args: ['--scope', '--quiet', '-p', `CPUQuota=${Math.max(1, Math.round(group.cpus * 100))}%`, '--', ...argv] };
    }
    return { file: argv[0]!, args: argv.slice(1) };
  }

  throttling(group: QuotaGroup): ThrottleStat | null {
    return group.dir === null ? null : parseCpuStat(readOrEmpty(`${group.dir}/cpu.stat`));
  }

  /** Removes a group (its processes must have exited); waits up to 5 s for them to be reaped. */
  remove(group: QuotaGroup): void {
    const at = this.groups.indexOf(group);
    if (at >= 0) this.groups.splice(at, 1);
    if (group.dir !== null) removeCgroupDir(group.dir);
  }

  /** Idempotent and synchronous, so that it can run from an 'exit' handler. */
  cleanup(): void {
    for (const group of this.groups.splice(0)) if (group.dir !== null) removeCgroupDir(group.dir);
    if (this.parent !== null) removeCgroupDir(this.parent);
    this.parent = null;
  }
}

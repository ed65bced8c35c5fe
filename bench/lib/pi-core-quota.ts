/**
 * "One Pi core" on this machine: a CPU quota of 1 / slowdown CPUs, where slowdown is this
 * machine's single-core sysbench score over the board's (energy.ts, core-score.ts). A
 * single-threaded job run under that quota gets, per wall second, about the CPU work a board's
 * core would do, so its MB/s or ops/s read as the board's (±2×: docs/PERFORMANCE.md, "Energy").
 *
 * The job is a child process (this same script, re-run with an environment marker) started
 * inside a CpuQuota group, so that every thread it starts is born inside the group; its stdout
 * is passed through. The group is removed afterwards.
 */
import { spawnSync } from 'node:child_process';
import { hostCoreScore } from './core-score.js';
import { CpuQuota } from './cpu-quota.js';
import { coreSlowdown, PI_CORE_SCORES } from './energy.js';

/** Set in the child that runs under the quota: its value is the quota's description. */
export const UNDER_QUOTA_ENV = 'PIKV_BENCH_UNDER_QUOTA';
/** CFS period: short, so that a measurement of a second spans many periods. */
const PERIOD_US = 10_000;

export const BOARDS: Readonly<Record<string, string>> = { pi4: 'Raspberry Pi 4B', pi5: 'Raspberry Pi 5' };

export interface CoreQuota {
  cpus: number;
  /** One line for the report: the quota and where it comes from. */
  description: string;
}

/** The quota for `--board pi4|pi5` (from a sysbench run here) or `--cpus C` as given. */
export function piCoreQuota(board: string | undefined, cpus: string | undefined, host_core_score?: number): CoreQuota | null {
  if (cpus !== undefined) {
    const value = Number(cpus);
    if (!(value > 0 && value <= 64)) throw new Error(`--cpus must be a number of CPUs in (0, 64], got ${cpus}`);
    return { cpus: value, description: `${value} CPU (--cpus)` };
  }
  if (board === undefined) return null;
  const name = BOARDS[board];
  if (name === undefined) throw new Error(`--board must be one of ${Object.keys(BOARDS).join(', ')}, got ${board}`);
  const host = hostCoreScore(host_core_score);
  if (host.events_per_s === null) throw new Error(`--board needs this machine's core score: ${host.source}`);
  const slowdown = coreSlowdown(host.events_per_s, PI_CORE_SCORES[name]!.sysbench_events_per_s);
  const value = Math.min(1, 1 / slowdown);
  return {
    cpus: value,
    description: `${value.toFixed(3)} CPU = one ${name} core (${PI_CORE_SCORES[name]!.core}: this machine ${host.events_per_s} sysbench events/s, ` +
      `the board ${PI_CORE_SCORES[name]!.sysbench_events_per_s}; slowdown ${slowdown.toFixed(2)}×; ${host.source})`,
  };
}

/**
 * Runs `argv` (a node script and its arguments) in a quota group of `quota.cpus` CPUs, with
 * UNDER_QUOTA_ENV set, and returns its exit status. Throws when no quota method works here:
 * a "Pi core" measured without a quota would be this machine's core.
 */
export function runUnderQuota(quota: CoreQuota, argv: string[]): number {
  const groups = new CpuQuota(`pikv-pi-core-${process.pid}`, PERIOD_US);
  try {
    if (groups.method === 'none') throw new Error(`no CPU quota possible here: ${groups.description}`);
    const group = groups.create('job', quota.cpus);
    const wrapped = groups.wrap(group, [process.execPath, ...argv]);
    const run = spawnSync(wrapped.file, wrapped.args, { stdio: 'inherit', env: { ...process.env, [UNDER_QUOTA_ENV]: quota.description } });
    const throttled = groups.throttling(group);
    if (throttled !== null) console.log(`quota: ${groups.description}; throttled in ${throttled.nr_throttled} of ${throttled.nr_periods} periods (${throttled.throttled_s.toFixed(1)} s)`);
    return run.status ?? 1;
  } finally {
    groups.cleanup();
  }
}

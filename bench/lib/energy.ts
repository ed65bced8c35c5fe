/**
 * Ops per joule, ESTIMATED: there is no power meter here, so energy comes from a run's
 * measured server CPU seconds and a table of typical board and server power figures
 * (docs/PERFORMANCE.md has the sources and caveats):
 *
 *   J = P_idle · t_wall + (P_load − P_idle) · cpu_s / cores
 *
 * i.e. the box is charged its idle power for the whole run, plus the extra power of its
 * cores for the share of them the server kept busy. CPU seconds are this machine's, so
 * `opsPerJoule` is an UPPER BOUND for the boards: a Pi core is slower, and the same ops take
 * more CPU seconds there. `piEstimate` scales the CPU seconds by a per-core slowdown factor
 * (this machine's single-core score over the board's, from one published benchmark, see
 * PI_CORE_SCORES) and, when the board cannot absorb the scaled CPU time within the run (all
 * 4 cores full, or the busiest single thread above one core: Redis's event loop, pikv's main
 * thread), stretches the wall time too (the board would serve fewer ops per second). FAWN-KV
 * (SOSP 2009) reported about 350 queries per joule.
 */

// The model itself (profiles, joules, ops per joule) is the node's too: /metrics and the
// dashboard use the same code (src/node/metrics/energy.ts). The Pi scaling below is the bench's.
import { joules, POWER_TABLE, type PowerProfile } from '../../src/node/metrics/energy.js';
export { FAWN_KV_QUERIES_PER_JOULE, joules, opsPerJoule, POWER_TABLE, type PowerProfile } from '../../src/node/metrics/energy.js';

/**
 * Single-core scores of one deterministic CPU benchmark on each board, quoted (not measured
 * here): sysbench 1.0.20 `sysbench cpu --threads=1 --time=60 run` (primes up to the default
 * --cpu-max-prime=10000), events per second, from https://leoncode.co.uk/articles/raspberry-pi-benchmarks.
 * The board clocks are the stock ones (A72 1.5–1.8 GHz depending on the board revision, A76
 * 2.4 GHz). Other published runs of the same test differ by up to 2× (32- vs 64-bit OS, board
 * revision), which is the main uncertainty of the scaled estimate.
 */
export const PI_CORE_SCORES: Readonly<Record<string, { core: string; sysbench_events_per_s: number }>> = {
  'Raspberry Pi 4B': { core: 'Cortex-A72', sysbench_events_per_s: 1477.83 },
  'Raspberry Pi 5': { core: 'Cortex-A76', sysbench_events_per_s: 2737.49 },
};

export const PI_CORE_SCORES_SOURCE =
  'sysbench 1.0.20 cpu, 1 thread, --cpu-max-prime=10000: Pi 4 1477.83, Pi 5 2737.49 events/s (leoncode.co.uk/articles/raspberry-pi-benchmarks)';

/** How many times more CPU seconds a board's core needs for the same work (≥ 1 when this machine is faster). */
export function coreSlowdown(host_events_per_s: number, board_events_per_s: number): number {
  if (!(host_events_per_s > 0) || !(board_events_per_s > 0)) throw new Error(`core scores must be positive, got host ${host_events_per_s}, board ${board_events_per_s}`);
  return host_events_per_s / board_events_per_s;
}

export interface PiEstimate {
  /** CPU seconds the board would need: this machine's times the slowdown. */
  cpu_s: number;
  /** The run's wall time, or longer when the board's cores would be saturated. */
  wall_s: number;
  ops_per_s: number;
  ops_per_joule: number;
}

/**
 * The same ops on a board whose cores are `slowdown` times slower than this machine's.
 * `busiest_thread_cpu_s` is the CPU time of the server's busiest thread (0 when unknown): one
 * thread cannot use more than one core, whatever the board's core count.
 */
export function piEstimate(profile: PowerProfile, ops: number, wall_s: number, cpu_s: number, slowdown: number, busiest_thread_cpu_s = 0): PiEstimate {
  if (!(slowdown > 0) || !(wall_s > 0) || cpu_s < 0) throw new Error(`piEstimate needs slowdown > 0, wall_s > 0 and cpu_s ≥ 0 (got ${slowdown}, ${wall_s}, ${cpu_s})`);
  if (!(busiest_thread_cpu_s >= 0) || busiest_thread_cpu_s > cpu_s + 1e-9) throw new Error(`busiest_thread_cpu_s must be within [0, cpu_s], got ${busiest_thread_cpu_s} of ${cpu_s}`);
  const board_cpu_s = cpu_s * slowdown;
  // The board runs at most `cores` CPU-seconds per second, and one thread at most one; beyond that the run takes longer.
  const board_wall_s = Math.max(wall_s, board_cpu_s / profile.cores, busiest_thread_cpu_s * slowdown);
  return { cpu_s: board_cpu_s, wall_s: board_wall_s, ops_per_s: ops / board_wall_s, ops_per_joule: ops / joules(profile, board_wall_s, board_cpu_s) };
}

/** Scaled ops per joule (and ops/s) for every board with a core score, given this machine's single-core score. */
export function piScaledOpsPerJoule(ops: number, wall_s: number, cpu_s: number, host_events_per_s: number, busiest_thread_cpu_s = 0): Record<string, { ops_per_joule: number; ops_per_s: number; slowdown: number }> {
  const result: Record<string, { ops_per_joule: number; ops_per_s: number; slowdown: number }> = {};
  for (const profile of POWER_TABLE) {
    const score = PI_CORE_SCORES[profile.name];
    if (score === undefined) continue;
    const slowdown = coreSlowdown(host_events_per_s, score.sysbench_events_per_s);
    const estimate = piEstimate(profile, ops, wall_s, cpu_s, slowdown, busiest_thread_cpu_s);
    result[profile.name] = { ops_per_joule: Math.round(estimate.ops_per_joule), ops_per_s: Math.round(estimate.ops_per_s), slowdown: Math.round(slowdown * 100) / 100 };
  }
  return result;
}

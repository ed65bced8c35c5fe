/**
 * This machine's single-core score on the benchmark the board scores in energy.ts were
 * published with (sysbench 1.0.20 `cpu`, 1 thread, primes up to 10000), so that the two are
 * the same program. Taken from, in order: an explicit value (`--host-core-score`), a 2-second
 * `sysbench` run when sysbench is installed, else none (the scaled energy estimate is then
 * left out, and the report says why). On a busy machine the run reads low, which makes the Pi
 * look closer to this machine than it is: the scaled figures are then optimistic.
 */
import { spawnSync } from 'node:child_process';

export interface CoreScore {
  events_per_s: number;
  /** Where the figure came from, for the report. */
  source: string;
}

/** Reads "events per second: N" from `sysbench cpu run` output. */
export function parseSysbenchCpu(stdout: string): number {
  const match = /events per second:\s*([0-9]+(?:\.[0-9]+)?)/.exec(stdout);
  if (match === null) throw new Error(`no "events per second" in sysbench output:\n${stdout.slice(0, 500)}`);
  const value = Number(match[1]);
  if (!(value > 0)) throw new Error(`sysbench reported ${value} events per second`);
  return value;
}

export const SYSBENCH_ARGS = ['cpu', '--threads=1', '--cpu-max-prime=10000', '--time=2', 'run'] as const;

export function hostCoreScore(explicit_events_per_s?: number): CoreScore | { events_per_s: null; source: string } {
  if (explicit_events_per_s !== undefined) return { events_per_s: explicit_events_per_s, source: `given (--host-core-score ${explicit_events_per_s})` };
  const run = spawnSync('sysbench', [...SYSBENCH_ARGS], { encoding: 'utf8', timeout: 20_000 });
  if (run.error !== undefined || run.status !== 0) {
    return { events_per_s: null, source: 'sysbench not installed (apt-get install -y sysbench), and no --host-core-score: Pi-scaled energy left out' };
  }
  return { events_per_s: parseSysbenchCpu(run.stdout), source: `measured now: sysbench ${SYSBENCH_ARGS.join(' ')}` };
}

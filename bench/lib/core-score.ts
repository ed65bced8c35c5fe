/**
 * This machine's single-core score on the benchmark the board scores in energy.ts were
 * published with (sysbench 1.0.20 `cpu`, 1 thread, primes up to 10000), so that the two are
 * the same program. Taken from, in order: an explicit value (`--host-core-score`), a
 * `sysbench` run when sysbench is installed, else none (the scaled energy estimate is then
 * left out, and the report says why).
 *
 * The run counts events per CPU-SECOND of sysbench (a fixed number of events, divided by the
 * user+system time the shell reaps from it), not per wall second: on a shared machine the wall
 * rate reads low (2–8× here under a load average of 16), CPU time much less so. The boards'
 * published figures are wall rates on an idle board, where the two agree.
 */
import { spawnSync } from 'node:child_process';
import { childrenCpuSeconds } from './proc.js';

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

/** Reads "total number of events: N" from `sysbench cpu run` output. */
export function parseSysbenchEvents(stdout: string): number {
  const match = /total number of events:\s*([0-9]+)/.exec(stdout);
  if (match === null) throw new Error(`no "total number of events" in sysbench output:\n${stdout.slice(0, 500)}`);
  return Number(match[1]);
}

export const SYSBENCH_EVENTS = 4000;
export const SYSBENCH_ARGS = ['cpu', '--threads=1', '--cpu-max-prime=10000', `--events=${SYSBENCH_EVENTS}`, '--time=0', 'run'] as const;
const CPU_MARKER = '@@pikv-cpu ';

export function hostCoreScore(explicit_events_per_s?: number): CoreScore | { events_per_s: null; source: string } {
  if (explicit_events_per_s !== undefined) return { events_per_s: explicit_events_per_s, source: `given (--host-core-score ${explicit_events_per_s})` };
  // The shell waits for sysbench, then prints its own stat line: cutime+cstime is sysbench's CPU.
  const script = `sysbench "$@"; rc=$?; echo "${CPU_MARKER}$(cat /proc/$$/stat)"; exit $rc`;
  const run = spawnSync('/bin/sh', ['-c', script, 'sh', ...SYSBENCH_ARGS], { encoding: 'utf8', timeout: 60_000 });
  if (run.error !== undefined || run.status !== 0) {
    return { events_per_s: null, source: 'sysbench not installed (apt-get install -y sysbench), and no --host-core-score: Pi-scaled energy left out' };
  }
  const at = run.stdout.lastIndexOf(CPU_MARKER);
  const cpu_s = at < 0 ? 0 : childrenCpuSeconds(run.stdout.slice(at + CPU_MARKER.length).split('\n')[0]!);
  const events = parseSysbenchEvents(run.stdout);
  if (!(cpu_s > 0.2)) return { events_per_s: parseSysbenchCpu(run.stdout), source: `measured now, per wall second (CPU time unreadable): sysbench ${SYSBENCH_ARGS.join(' ')}` };
  return { events_per_s: Math.round((events / cpu_s) * 10) / 10, source: `measured now: sysbench ${SYSBENCH_ARGS.join(' ')}, ${events} events in ${cpu_s.toFixed(2)} CPU-seconds` };
}

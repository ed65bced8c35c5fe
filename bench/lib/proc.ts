/**
 * CPU time and memory of processes and threads from /proc, so a benchmark can show which side
 * (client or server, main thread or partition worker) was saturated. Linux only; every reader
 * returns 0 (or an empty list) elsewhere instead of throwing.
 */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;
/** Linux x86_64 syscall numbers of the epoll waits an idle event loop (libuv) blocks in. */
const EPOLL_SYSCALLS = new Set([232, 281, 441]);

/** utime + stime of a /proc stat line, in seconds (fields 14 and 15 after the command name). */
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** System (kernel) CPU seconds of a /proc stat line: syscalls such as socket writes land here. */
function statSystemSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[12]) / CLOCK_TICKS_PER_SECOND;
}

/** Kernel-mode CPU seconds of `pid` (all threads), or of one thread with `tid`. */
export function systemCpuSeconds(pid: number, tid?: number): number {
  try {
    return statSystemSeconds(readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/** User + system CPU seconds consumed so far by `pid` (all its threads). */
export function cpuSeconds(pid: number): number {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/** CPU seconds that `pid` collected from children it has waited for (cutime + cstime). */
export function childrenCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_SECOND;
}

export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds per thread id of `pid`. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const result = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return result;
  }
  for (const tid of tids) {
    try {
      result.set(Number(tid), statCpuSeconds(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
    } catch {
      // The thread exited between readdir and read.
    }
  }
  return result;
}

/**
 * The partition worker threads of an idle pikv node. Node names every thread "node", so they
 * are found by behaviour: a thread blocked in epoll runs an event loop. Those are the main
 * thread, Node's platform task scheduler (created first) and the worker threads (created last).
 */
export function findWorkerThreads(pid: number, worker_count: number): number[] {
  const loops: number[] = [];
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  for (const tid of tids) {
    try {
      const syscall = Number(readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ')[0]);
      if (EPOLL_SYSCALLS.has(syscall) && Number(tid) !== pid) loops.push(Number(tid));
    } catch {
      // Not readable (another user, or the thread is gone): skip.
    }
  }
  loops.sort((a, b) => a - b);
  return loops.slice(Math.max(0, loops.length - worker_count));
}

/** CPU seconds per role between two threadCpuSeconds() snapshots. */
export interface ThreadSplit {
  main_s: number;
  /** Kernel-mode part of main_s (set by the caller; 0 from splitThreadCpu). */
  main_system_s?: number;
  workers_s: number;
  other_s: number;
}

export function splitThreadCpu(pid: number, worker_tids: readonly number[], before: Map<number, number>, after: Map<number, number>): ThreadSplit {
  const split: ThreadSplit = { main_s: 0, workers_s: 0, other_s: 0 };
  const workers = new Set(worker_tids);
  for (const [tid, seconds] of after) {
    const used_s = seconds - (before.get(tid) ?? 0);
    if (tid === pid) split.main_s += used_s;
    else if (workers.has(tid)) split.workers_s += used_s;
    else split.other_s += used_s;
  }
  return split;
}

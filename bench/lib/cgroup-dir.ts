/**
 * File helpers for cgroup directories, shared by the CPU-quota groups (cpu-quota.ts) and the
 * cluster bench's sandbox (cluster-net.ts).
 */
import { readFileSync, rmdirSync } from 'node:fs';

/** A file's text, or '' where it cannot be read (gone, no such controller file). */
export function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * rmdir a cgroup, waiting up to 5 s for killed processes in it to be reaped; says on stderr
 * what is still inside if it cannot. Synchronous, so that it can run from an 'exit' handler.
 */
export function removeCgroupDir(dir: string): void {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      sleepSync(100);
    }
  }
  process.stderr.write(`bench: could not remove cgroup ${dir} (still has: ${readOrEmpty(`${dir}/cgroup.procs`).trim().replace(/\n/g, ',')})\n`);
}

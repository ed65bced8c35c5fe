/** The report header: what machine, which versions, when. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface SystemInfo {
  date: string;
  cpu_model: string;
  cores: number;
  memory_gib: number;
  kernel: string;
  node_version: string;
  redis_version: string | null;
  pikv_commit: string;
}

function cpuModel(): string {
  try {
    const match = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) return match[1]!.trim();
  } catch {
    // Not Linux.
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty.length > 0 ? `${commit} (+ uncommitted changes)` : commit;
  } catch {
    return 'unknown';
  }
}

export function systemInfo(redis_version: string | null): SystemInfo {
  return {
    date: new Date().toISOString(),
    cpu_model: cpuModel(),
    cores: os.cpus().length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node_version: process.version,
    redis_version,
    pikv_commit: gitCommit(),
  };
}

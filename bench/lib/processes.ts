/**
 * Every process the benchmark starts is registered here and stopped by its PID (or its own
 * process group, for shell wrappers), on normal exit, on an error, and on Ctrl-C. Nothing is
 * ever killed by name.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { childrenCpuSeconds } from './proc.js';

interface Tracked {
  child: ChildProcess;
  /** Kill the whole process group (the child was started detached, as a group leader). */
  group: boolean;
}

const tracked = new Map<number, Tracked>();
let handlers_installed = false;

function killTracked(signal: NodeJS.Signals): void {
  for (const [pid, entry] of tracked) {
    try {
      process.kill(entry.group ? -pid : pid, signal);
    } catch {
      // Already gone.
    }
  }
}

function installHandlers(): void {
  if (handlers_installed) return;
  handlers_installed = true;
  process.on('exit', () => killTracked('SIGKILL'));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping ${tracked.size} started process(es)\n`);
      killTracked('SIGTERM');
      setTimeout(() => process.exit(130), 300).unref();
    });
  }
}

/** spawn() plus registration; the entry is removed when the child exits. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  installHandlers();
  const child = spawn(command, args, options);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  tracked.set(pid, { child, group: options.detached === true });
  child.once('exit', () => tracked.delete(pid));
  child.once('error', () => tracked.delete(pid));
  return child;
}

/** SIGTERM, then SIGKILL after `grace_ms`; resolves when the child has exited. */
export async function stopProcess(child: ChildProcess, grace_ms = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), grace_ms);
  await exited;
  clearTimeout(timer);
}

export interface MeasuredRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wall_s: number;
  /** User + system CPU of the command and everything it waited for. */
  cpu_s: number;
}

const CPU_MARKER = '__bench_cpu_stat__ ';

/**
 * Runs a command to completion and measures its wall time and CPU seconds. It runs under a
 * `sh` wrapper that, once the command exits, prints its own /proc stat: the shell's cutime
 * and cstime then hold exactly the CPU of the command it waited for.
 */
export function runMeasured(command: string, args: readonly string[], options: { stdin_path?: string; timeout_ms?: number } = {}): Promise<MeasuredRun> {
  const redirect = options.stdin_path === undefined ? '' : ' < "$BENCH_STDIN"';
  const script = `"$@"${redirect}; rc=$?; printf '${CPU_MARKER}%s\\n' "$(cat /proc/$$/stat)" >&2; exit $rc`;
  const env = { ...process.env, BENCH_STDIN: options.stdin_path ?? '' };
  const started_ms = performance.now();
  const child = spawnTracked('/bin/sh', ['-c', script, 'sh', command, ...args], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timeout_ms = options.timeout_ms ?? 600_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      reject(new Error(`${command} did not finish within ${timeout_ms} ms`));
    }, timeout_ms);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const wall_s = (performance.now() - started_ms) / 1000;
      const at = stderr.lastIndexOf(CPU_MARKER);
      const cpu_s = at < 0 ? 0 : childrenCpuSeconds(stderr.slice(at + CPU_MARKER.length).split('\n')[0]!);
      if (at >= 0) stderr = stderr.slice(0, at);
      resolve({ code, stdout, stderr, wall_s, cpu_s });
    });
  });
}

/**
 * The parent's side of the load generator (bench/lib/cluster-loadgen.ts run as a child with
 * `--loadgen`): one JSON command per stdin line, one JSON answer per stdout line, `event` lines
 * before an answer (e.g. right before a timed run's clock starts). How the child is started
 * (in a network namespace, under a CPU quota) is the caller's: bench/cluster.ts, bench/scaling.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Command } from './cluster-loadgen.js';
import { stopProcess } from './processes.js';

/** The script to start with `node LOADGEN_PATH --loadgen`. */
export const LOADGEN_PATH = fileURLToPath(new URL('./cluster-loadgen.js', import.meta.url));

export class LoadGenProcess {
  private readonly waiters: ((line: Record<string, unknown>) => void)[] = [];
  private stderr = '';

  /** `child`: the load generator, started with stdin, stdout and stderr piped. */
  constructor(private readonly child: ChildProcess) {
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        console.log(`  loadgen: ${line}`);
        return;
      }
      this.waiters.shift()?.(parsed);
    });
    this.child.once('exit', (code) => {
      for (const wake of this.waiters.splice(0)) wake({ ok: false, error: `load generator exited (${code}): ${this.stderr}` });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends a command and resolves with its answer; `onEvent` gets intermediate event lines (e.g. start). */
  async send<T>(command: Command, onEvent?: (event: Record<string, unknown>) => void): Promise<T> {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
    for (;;) {
      const line = await new Promise<Record<string, unknown>>((resolve) => this.waiters.push(resolve));
      if ('event' in line) {
        onEvent?.(line);
        continue;
      }
      if (line['ok'] !== true) throw new Error(`load generator: ${String(line['error'])}`);
      return line as T;
    }
  }

  async stop(): Promise<void> {
    this.child.stdin!.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    await stopProcess(this.child, 3_000);
  }
}

/**
 * A piscina pool of value-codec threads (value-codec-task.ts), as the client's compress pool
 * and the node's codec pool both use it: no thread until the first job, threads stopped after
 * `idle_timeout_ms` without work, and closed for good by close(), after which get() answers
 * null and the caller stores raw or decodes inline.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';

const TASK_FILE = fileURLToPath(new URL('./value-codec-task.js', import.meta.url));

export interface CodecThreadsOptions {
  threads: number;
  idle_timeout_ms: number;
  /** Jobs piscina queues at most (default: its own). */
  queue_jobs_max?: number;
}

export class CodecThreads {
  private pool: Piscina | null = null;
  private closed = false;
  private readonly options: CodecThreadsOptions;

  constructor(options: CodecThreadsOptions) {
    this.options = options;
  }

  /** The pool, started if need be; null once closed. */
  get(): Piscina | null {
    if (this.closed) return null;
    const { threads, idle_timeout_ms, queue_jobs_max } = this.options;
    this.pool ??= new Piscina({ filename: TASK_FILE, minThreads: 0, maxThreads: threads, idleTimeout: idle_timeout_ms, ...(queue_jobs_max === undefined ? {} : { maxQueue: queue_jobs_max }) });
    return this.pool;
  }

  /** Threads running now (0 before first use and after close). */
  get threads_running(): number {
    return this.pool?.threads.length ?? 0;
  }

  /** Stops the threads, waiting for the jobs they run. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    if (pool !== null) await pool.destroy();
  }
}

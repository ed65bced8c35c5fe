/**
 * Read, then watch from the next revision, forever: on any watch error (a compaction that
 * removed the history it needed included) the watcher is cancelled and the state read again
 * after `retry_ms`; a read that fails (etcd unreachable) is retried the same way, so a watch
 * never dies with etcd. The caller never misses the latest state, but states between a
 * failure and the re-read may be skipped: treat what arrives as states, not as a change log.
 * The view, the member list and the controller key are all watched this way.
 */
import type { Watcher } from 'etcd3';

export interface ResyncWatch {
  /** How many times the watch was re-established after an error or a failed read. */
  readonly resyncs: number;
  close(): Promise<void>;
}

export interface ResyncWatchOptions {
  /** Reads the current state; `deliver` hands it to the caller (not called once closed). */
  read(): Promise<{ revision: number; deliver: () => void }>;
  /** A watcher starting at `start_revision`, with its put/delete handlers attached. */
  watch(start_revision: number): Watcher;
  retry_ms: number;
  /** Told about each watch error before the re-read. */
  onError?: (error: Error) => void;
  /** Watch from here without a first read (a position the caller remembered). */
  start_revision?: number;
}

export function resyncWatch(options: ResyncWatchOptions): ResyncWatch {
  let closed = false;
  let watcher: Watcher | null = null;
  let timer: NodeJS.Timeout | null = null;
  let resyncs = 0;

  const schedule = (): void => {
    if (closed || timer !== null) return;
    resyncs += 1;
    timer = setTimeout(() => void resync(), options.retry_ms);
  };
  const watchFrom = (start_revision: number): void => {
    const current = options.watch(start_revision);
    watcher = current;
    current.on('error', (error: Error) => {
      if (watcher !== current) return;
      watcher = null;
      void current.cancel().catch(() => {});
      options.onError?.(error);
      schedule();
    });
  };
  const resync = async (): Promise<void> => {
    timer = null;
    if (closed) return;
    let read: { revision: number; deliver: () => void };
    try {
      read = await options.read();
    } catch {
      schedule();
      return;
    }
    if (closed) return;
    read.deliver();
    watchFrom(read.revision + 1);
  };

  if (options.start_revision !== undefined) watchFrom(options.start_revision);
  else void resync();
  return {
    get resyncs() {
      return resyncs;
    },
    async close(): Promise<void> {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      const current = watcher;
      watcher = null;
      if (current !== null) await current.cancel().catch(() => {});
    },
  };
}

/**
 * The discrete-event clock of the seeded simulations (test/move-stream-sim.test.ts,
 * test/replication-sim.test.ts), and the bits of their harness that do not depend on what is
 * simulated: the PIKV_SIM_* environment and the hand-over to real promise callbacks.
 */
import type { Schedule } from '../../src/cluster/move-stream.js';

export interface SimEvent { at: number; seq: number; label: string; run: () => void; cancelled: boolean }

/** A discrete-event clock: a binary min-heap on (time, insertion order), so ties run in the order they were scheduled. */
export class Clock {
  now = 0;
  private seq = 0;
  private readonly heap: SimEvent[] = [];

  after(delay_ms: number, label: string, run: () => void): SimEvent {
    const event: SimEvent = { at: this.now + Math.max(0, delay_ms), seq: this.seq++, label, run, cancelled: false };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
    return event;
  }

  /** The next event not cancelled, with the clock advanced to it; null when none is left. */
  next(): SimEvent | null {
    const heap = this.heap;
    while (heap.length > 0) {
      const top = heap[0]!;
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
          if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m]!, heap[i]!];
          i = m;
        }
      }
      if (top.cancelled) continue;
      this.now = top.at;
      return top;
    }
    return null;
  }

  /** MoveStream's resend delay (and any other Schedule) as an event of this clock. */
  schedule(label: string): Schedule {
    return (callback, delay_ms) => {
      const event = this.after(delay_ms, label, callback);
      return () => { event.cancelled = true; };
    };
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Lets the promise callbacks of the code under test run (MoveStream's answers to its sends) for
 * the answers settled in the current event: setImmediate comes after every queued microtask. The
 * simulated clock does not move meanwhile, so they run at the event's time.
 */
export const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function envInt(name: string): number | null {
  const text = process.env[name];
  if (text === undefined || text === '') return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name}=${text} is not an integer`);
  return n;
}

/** The seeds a simulation runs: PIKV_SIM_SEED (replay one), else PIKV_SIM_SEEDS from PIKV_SIM_FIRST. */
export function simSeeds(default_count: number): { first: number; count: number; trace: boolean } {
  const replay = envInt('PIKV_SIM_SEED');
  return {
    count: replay !== null ? 1 : envInt('PIKV_SIM_SEEDS') ?? default_count,
    first: replay ?? envInt('PIKV_SIM_FIRST') ?? 1,
    trace: process.env['PIKV_SIM_TRACE'] === '1',
  };
}

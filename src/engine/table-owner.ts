/**
 * Who may touch a partition's table right now: its worker, the main thread, or nobody.
 *
 * The table has one writer at a time (it has no locks). Normally that is the partition's
 * worker, while it executes a packet. When the worker is idle, the main thread may read and
 * write the table itself for a small request (docs/ARCHITECTURE.md, "Main-thread fast path"),
 * which saves waking a sleeping worker (~60-90 us, most of an unbatched op's cost).
 *
 * The ownership word lives in shared memory and changes only by compare-and-swap, so the two
 * threads can never both hold it; each side asserts it holds it before it touches the table.
 * Atomics are sequentially consistent: every plain write to the table made before `release()`
 * is visible to the thread whose `acquire()` follows it, in either direction.
 *
 * A worker that dies while holding it cannot release it; the main thread resets it
 * (`releaseDead`) before it starts the replacement, which takes it again for its recover().
 */

export const TABLE_OWNER_BYTES = Int32Array.BYTES_PER_ELEMENT;

export const Owner = {
  NOBODY: 0,
  WORKER: 1,
  MAIN: 2,
} as const;
export type OwnerValue = (typeof Owner)[keyof typeof Owner];

export class TableOwner {
  private readonly word: Int32Array;

  constructor(memory: SharedArrayBuffer) {
    if (memory.byteLength < TABLE_OWNER_BYTES) throw new RangeError('table owner memory is too small');
    this.word = new Int32Array(memory, 0, 1);
  }

  /** Takes the table for `who` if nobody holds it; false if the other side does. */
  acquire(who: typeof Owner.WORKER | typeof Owner.MAIN): boolean {
    return Atomics.compareExchange(this.word, 0, Owner.NOBODY, who) === Owner.NOBODY;
  }

  /** Gives the table back; `who` must hold it. */
  release(who: typeof Owner.WORKER | typeof Owner.MAIN): void {
    const was = Atomics.compareExchange(this.word, 0, who, Owner.NOBODY);
    if (was !== who) throw new Error(`table owner invariant: ${name(who)} released a table held by ${name(was)}`);
  }

  /** The main thread, after the worker thread exited: whatever it held is free again. */
  releaseDead(): void {
    Atomics.compareExchange(this.word, 0, Owner.WORKER, Owner.NOBODY);
  }

  get holder(): number {
    return Atomics.load(this.word, 0);
  }
}

function name(value: number): string {
  return value === Owner.WORKER ? 'the worker' : value === Owner.MAIN ? 'the main thread' : value === Owner.NOBODY ? 'nobody' : `unknown owner ${value}`;
}

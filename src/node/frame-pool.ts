/**
 * Buffers for large response frames, kept between responses.
 *
 * Why: a fresh large Buffer costs far more than filling it. Measured on this machine (Node 20,
 * session 5): a new 1 MiB Buffer plus one copy into it took 7.7-8 ms, against 0.07-0.09 ms for a
 * kept one: the fresh memory page-faults on first touch, and the external-memory GCs that free
 * such buffers run often. A 1 MiB GET paid that for its response frame every time.
 *
 * A frame taken here is lent to the socket: it goes back (give) only from ws.send's callback,
 * once the socket no longer holds it. Small frames never come here: Buffer.allocUnsafe serves
 * them from Node's own pool.
 */

/** Frames below this are allocated as usual. */
export const POOLED_FRAME_BYTES_MIN = 64 * 1024;

export class FramePool {
  private readonly free: Buffer[] = [];
  private kept_bytes = 0;
  private readonly kept_bytes_max: number;

  constructor(kept_bytes_max: number) {
    this.kept_bytes_max = kept_bytes_max;
  }

  /** A buffer of exactly `bytes` (a view of a kept one when one is big enough). */
  take(bytes: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const length = this.free[i]!.length;
      if (length >= bytes && (best < 0 || length < this.free[best]!.length)) best = i;
    }
    if (best < 0) return Buffer.allocUnsafeSlow(roundUp(bytes)).subarray(0, bytes);
    const whole = this.free[best]!;
    this.free[best] = this.free[this.free.length - 1]!;
    this.free.pop();
    this.kept_bytes -= whole.length;
    return whole.subarray(0, bytes);
  }

  /** Takes back a frame from take() that nothing holds any more; kept while the pool has room. */
  give(frame: Buffer): void {
    if (frame.byteOffset !== 0) return; // not from take()
    const whole = Buffer.from(frame.buffer, 0, frame.buffer.byteLength);
    if (this.kept_bytes + whole.length > this.kept_bytes_max) return;
    this.free.push(whole);
    this.kept_bytes += whole.length;
  }

  get kept(): number {
    return this.kept_bytes;
  }
}

/**
 * Sizes are rounded up to a multiple of 64 KiB, so one kept buffer serves frames of nearby sizes.
 * Not to a power of two: frames wait on slow sockets counted at their own length (the send
 * budget), and a 2 MiB block for a 1 MiB frame doubled a slow reader's memory (hardening test).
 */
function roundUp(bytes: number): number {
  return Math.ceil(bytes / POOLED_FRAME_BYTES_MIN) * POOLED_FRAME_BYTES_MIN;
}

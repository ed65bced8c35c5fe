/** The large response frame pool (src/node/frame-pool.ts): reuse, exact lengths, and its bound. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FramePool, POOLED_FRAME_BYTES_MIN } from '../src/node/frame-pool.js';

describe('frame pool', () => {
  it('lends buffers of exactly the asked length and reuses one given back', () => {
    const pool = new FramePool(8 * 1024 * 1024);
    const first = pool.take(1_000_000);
    assert.equal(first.length, 1_000_000);
    const second = pool.take(1_000_000);
    assert.notEqual(first.buffer, second.buffer, 'two frames out at once never share memory');
    pool.give(first);
    assert.equal(pool.kept, first.buffer.byteLength);
    const third = pool.take(700_000);
    assert.equal(third.buffer, first.buffer, 'a kept buffer big enough is reused');
    assert.equal(third.length, 700_000);
    assert.equal(pool.kept, 0);
  });

  it('keeps at most kept_bytes_max and ignores buffers it did not lend whole', () => {
    const pool = new FramePool(3 * POOLED_FRAME_BYTES_MIN);
    const frames = [pool.take(POOLED_FRAME_BYTES_MIN), pool.take(POOLED_FRAME_BYTES_MIN), pool.take(POOLED_FRAME_BYTES_MIN), pool.take(POOLED_FRAME_BYTES_MIN)];
    for (const frame of frames) pool.give(frame);
    assert.equal(pool.kept, 3 * POOLED_FRAME_BYTES_MIN);
    const pool2 = new FramePool(1 << 24);
    pool2.give(Buffer.alloc(200_000).subarray(10));
    assert.equal(pool2.kept, 0);
  });
});

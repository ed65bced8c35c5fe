// Size classes and the allocator's block accounting.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { expectedBlockBytes } from '../fixtures/model.js';
import { Prng } from '../fixtures/prng.js';
import { blockBytesFor, sizeClassBytes, sizeClassOf } from '../allocator.js';
import { BLOCK_BYTES_MAX, SIZE_CLASS_COUNT } from '../layout.js';

describe('size classes', () => {
  it('use 4-byte granularity up to 256 bytes', () => {
    for (let bytes = 1; bytes <= 256; bytes++) {
      assert.equal(blockBytesFor(bytes), Math.ceil(bytes / 4) * 4, `bytes ${bytes}`);
    }
  });

  it('waste at most 12.5% above 256 bytes and match the README rule', () => {
    const prng = new Prng(7);
    const samples = [257, 288, 289, 511, 512, 513, 4096, 4097, 64 * 1024 * 1024 + 8 + 65535, BLOCK_BYTES_MAX];
    for (let i = 0; i < 20_000; i++) samples.push(257 + prng.below(BLOCK_BYTES_MAX - 257));
    for (const bytes of samples) {
      const block_bytes = blockBytesFor(bytes);
      assert.ok(block_bytes >= bytes, `bytes ${bytes}`);
      assert.ok(block_bytes - bytes <= bytes / 8, `bytes ${bytes} -> ${block_bytes}`);
      assert.equal(block_bytes, expectedBlockBytes(bytes), `bytes ${bytes}`);
    }
  });

  it('are numbered densely and round-trip', () => {
    assert.equal(sizeClassOf(BLOCK_BYTES_MAX), SIZE_CLASS_COUNT - 1);
    let previous = 0;
    for (let size_class = 0; size_class < SIZE_CLASS_COUNT; size_class++) {
      const bytes = sizeClassBytes(size_class);
      assert.ok(bytes > previous && bytes % 4 === 0, `class ${size_class}`);
      assert.equal(sizeClassOf(bytes), size_class);
      assert.equal(sizeClassOf(previous + 1), size_class);
      previous = bytes;
    }
  });

  it('fit a 16-byte key with a 100-byte value in 124 bytes', () => {
    assert.equal(blockBytesFor(8 + 16 + 100), 124);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import murmur from 'murmurhash3js-revisited';
import { KEY_HASH_SEED, murmur3_x86_32, partitionOf } from '../src/routing/murmur3.js';

function seededBytes(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

describe('murmur3_x86_32', () => {
  it('matches murmurhash3js-revisited on 20,000 keys of every length from 0 to 99 bytes', () => {
    for (let n = 0; n < 20_000; n++) {
      const key = seededBytes(n + 1, n % 100);
      const seed = n % 3 === 0 ? KEY_HASH_SEED : n * 2654435761;
      assert.equal(murmur3_x86_32(key, 0, key.length, seed), murmur.x86.hash32(key, seed >>> 0), `key #${n}`);
    }
  });

  it('hashes a byte range inside a larger buffer the same as the range on its own', () => {
    const big = seededBytes(7, 4096);
    for (let offset = 0; offset < 200; offset += 7) {
      const length = offset % 37;
      const alone = big.slice(offset, offset + length);
      assert.equal(murmur3_x86_32(big, offset, length, KEY_HASH_SEED), murmur.x86.hash32(alone, KEY_HASH_SEED));
    }
  });

  it('spreads keys evenly over 4 partitions', () => {
    const counts = [0, 0, 0, 0];
    const encoder = new TextEncoder();
    for (let n = 0; n < 100_000; n++) {
      const key = encoder.encode(`user:${n}`);
      counts[partitionOf(murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED), 4)]!++;
    }
    for (const count of counts) assert.ok(count > 24_000 && count < 26_000, `partition counts ${counts.join(',')}`);
  });
});

/**
 * MurmurHash3 x86_32 over a byte range, without allocating.
 *
 * pikv routes every key by this hash: partition = murmur3_x86_32(key, KEY_HASH_SEED) mod
 * workers, and the cluster ring uses the same function. Its output is identical to
 * `murmurhash3js-revisited`'s `x86.hash32(bytes, seed)` (test/murmur3.test.ts checks this on
 * many keys). We inline it because the library wants one Uint8Array per key and runs ~5x
 * slower on 16-byte keys (shared/MEASUREMENTS.md: 16.7 M/s against 82 M/s).
 */

/** Fixed seed for key hashing: the ASCII bytes "PIKV". Changing it re-routes every key. */
export const KEY_HASH_SEED = 0x50494b56;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

export function murmur3_x86_32(bytes: Uint8Array, offset: number, length: number, seed: number): number {
  let h1 = seed >>> 0;
  const blocks_end = offset + (length & ~3);
  let i = offset;
  for (; i < blocks_end; i += 4) {
    let k1 = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, C2);
    h1 ^= k1;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail !== 0) {
    let k1 = 0;
    if (tail === 3) k1 ^= bytes[i + 2]! << 16;
    if (tail >= 2) k1 ^= bytes[i + 1]! << 8;
    k1 ^= bytes[i]!;
    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, C2);
    h1 ^= k1;
  }
  return fmix32(h1 ^ length);
}

/** murmur3's 32-bit finalizer: a bijection that mixes every input bit into every output bit. */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The partition (worker index) that owns a key with this hash. */
export function partitionOf(hash: number, partitions: number): number {
  return hash % partitions;
}

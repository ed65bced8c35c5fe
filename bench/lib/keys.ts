/**
 * Key and value generation for benchmarks: fixed-width keys ("key:" + zero-padded number,
 * padded to the requested width) so every key has the same length, and deterministic values.
 */

export function makeKey(index: number, key_bytes: number): Buffer {
  const text = `key:${String(index).padStart(Math.max(key_bytes - 4, 1), '0')}`;
  return Buffer.from(text.length > key_bytes ? text.slice(text.length - key_bytes) : text);
}

export function makeValue(value_bytes: number, seed: number): Buffer {
  const value = Buffer.allocUnsafe(value_bytes);
  for (let i = 0; i < value_bytes; i++) value[i] = (seed + i * 31) & 0xff;
  return value;
}

/** A small fast PRNG (mulberry32) so runs are reproducible. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Printable ASCII (no tab, no newline), so the same values fit a TSV file; varies with `seed`. */
export function makeTextValue(value_bytes: number, seed: number): Buffer {
  const value = Buffer.allocUnsafe(value_bytes);
  for (let i = 0; i < value_bytes; i++) value[i] = 33 + ((seed * 7 + i * 13) % 94);
  return value;
}

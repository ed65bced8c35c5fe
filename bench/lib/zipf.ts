/**
 * Seeded key choosers: uniform, and YCSB-style scrambled Zipfian.
 *
 * The Zipfian draw is Gray et al., "Quickly Generating Billion-Record Synthetic Databases"
 * (SIGMOD 1994), as in YCSB's ZipfianGenerator: with zeta(n, θ) = Σ_{i=1..n} 1/i^θ,
 * rank 0 has probability 1/zeta(n, θ), and ranks fall off as 1/(rank+1)^θ. YCSB then
 * scrambles ranks with a hash so the popular keys are spread over the key space instead of
 * being the lowest-numbered ones; we do the same with a 32-bit integer hash (YCSB uses
 * FNV-64 over 10^10 items), so a few keys collide exactly as YCSB's do.
 */
import { fmix32 } from '../../src/routing/murmur3.js';
import { prng } from './keys.js';

export const ZIPF_THETA_DEFAULT = 0.99;

export type KeyChooser = () => number;

export function uniformChooser(key_count: number, seed: number): KeyChooser {
  const random = prng(seed);
  return () => Math.floor(random() * key_count);
}

export function zeta(item_count: number, theta: number): number {
  let sum = 0;
  for (let i = 1; i <= item_count; i++) sum += 1 / Math.pow(i, theta);
  return sum;
}

/** Unscrambled Zipfian ranks in [0, item_count): rank 0 is the most popular. */
export function zipfianRanks(item_count: number, theta: number, seed: number): KeyChooser {
  if (item_count < 2 || theta <= 0 || theta >= 1) throw new RangeError('zipfian needs item_count >= 2 and 0 < theta < 1');
  const random = prng(seed);
  const zeta_n = zeta(item_count, theta);
  const zeta_2 = zeta(2, theta);
  const alpha = 1 / (1 - theta);
  const eta = (1 - Math.pow(2 / item_count, 1 - theta)) / (1 - zeta_2 / zeta_n);
  const half_pow_theta = 1 + Math.pow(0.5, theta);
  return () => {
    const u = random();
    const uz = u * zeta_n;
    if (uz < 1) return 0;
    if (uz < half_pow_theta) return 1;
    return Math.min(item_count - 1, Math.floor(item_count * Math.pow(eta * u - eta + 1, alpha)));
  };
}

/** A 32-bit avalanche hash (murmur3's fmix32). */
function mix32(value: number): number {
  return fmix32(value >>> 0);
}

export function scrambledZipfianChooser(key_count: number, seed: number, theta = ZIPF_THETA_DEFAULT): KeyChooser {
  const ranks = zipfianRanks(key_count, theta, seed);
  return () => mix32(ranks() + 0x9e3779b9) % key_count;
}

export interface SkewCheck {
  samples: number;
  top1_share_expected: number;
  top1_share_measured: number;
  top10_share_expected: number;
  top10_share_measured: number;
  ok: boolean;
}

/**
 * Sanity check of the generator: the shares of rank 0 and of ranks 0..9 in a sample must be
 * within 10% (relative) of the theory. Cheap enough to run at every start-up.
 */
export function checkZipfSkew(key_count: number, theta = ZIPF_THETA_DEFAULT, samples = 200_000): SkewCheck {
  const ranks = zipfianRanks(key_count, theta, 12345);
  const zeta_n = zeta(key_count, theta);
  let top1 = 0;
  let top10 = 0;
  for (let i = 0; i < samples; i++) {
    const rank = ranks();
    if (rank === 0) top1++;
    if (rank < 10) top10++;
  }
  const top1_share_expected = 1 / zeta_n;
  const top10_share_expected = zeta(10, theta) / zeta_n;
  const top1_share_measured = top1 / samples;
  const top10_share_measured = top10 / samples;
  const close = (measured: number, expected: number): boolean => Math.abs(measured - expected) <= 0.1 * expected;
  return {
    samples, top1_share_expected, top1_share_measured, top10_share_expected, top10_share_measured,
    ok: close(top1_share_measured, top1_share_expected) && close(top10_share_measured, top10_share_expected),
  };
}

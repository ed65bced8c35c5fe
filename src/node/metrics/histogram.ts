/**
 * A fixed-bucket histogram: one typed array of counts, updated with a short linear scan per
 * observation (no allocation), as Prometheus's own clients do. Buckets are upper bounds in
 * seconds; the last slot counts what is above every bound (+Inf).
 *
 * Quantiles are estimated as Prometheus's histogram_quantile() does: linear interpolation
 * inside the bucket the rank falls in. So p99 is only as fine as the buckets around it.
 */

/** Request latency bounds, 50 us to 5 s: a batched request on a Pi takes ~0.1-10 ms. */
export const LATENCY_BOUNDS_S: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

export class FixedHistogram {
  readonly bounds_s: readonly number[];
  /** counts[i]: observations <= bounds_s[i] and > bounds_s[i-1]; counts[bounds.length]: above all. */
  readonly counts: Float64Array;
  sum_s = 0;
  count = 0;

  constructor(bounds_s: readonly number[]) {
    for (let i = 1; i < bounds_s.length; i++) if (!(bounds_s[i]! > bounds_s[i - 1]!)) throw new Error('histogram bounds must increase');
    this.bounds_s = bounds_s;
    this.counts = new Float64Array(bounds_s.length + 1);
  }

  observe(value_s: number): void {
    const bounds = this.bounds_s;
    let index = 0;
    while (index < bounds.length && value_s > bounds[index]!) index++;
    this.counts[index]! += 1;
    this.sum_s += value_s;
    this.count += 1;
  }

  /** A copy of the counts, to take differences between two moments (NodeSampler). */
  snapshot(): Float64Array {
    return this.counts.slice();
  }
}

/**
 * The q-quantile (0..1) of the observations in `counts` (a FixedHistogram's counts, or a
 * difference of two snapshots), in seconds; 0 when there are none. Above the last bound it
 * answers the last bound, as histogram_quantile does.
 */
export function quantileOf(bounds_s: readonly number[], counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const in_bucket = counts[i]!;
    if (seen + in_bucket >= rank && in_bucket > 0) {
      if (i >= bounds_s.length) return bounds_s[bounds_s.length - 1]!;
      const lower = i === 0 ? 0 : bounds_s[i - 1]!;
      const upper = bounds_s[i]!;
      return lower + (upper - lower) * ((rank - seen) / in_bucket);
    }
    seen += in_bucket;
  }
  return bounds_s[bounds_s.length - 1]!;
}

/**
 * Latency recording with an HDR histogram (hdr-histogram-js), in microseconds with 3
 * significant digits, and the summaries the report needs: percentiles and CDF points.
 */
import * as hdr from 'hdr-histogram-js';

/** Longest latency tracked: 60 s in µs. */
const LATENCY_US_MAX = 60_000_000;
/** Percentiles sampled for a CDF chart, denser towards the tail. */
const CDF_PERCENTILES = [0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 99.5, 99.7, 99.8, 99.9, 99.95, 99.99, 100];

export interface LatencySummary {
  count: number;
  mean_us: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  /** [latency µs, percentile] pairs for a CDF chart. */
  cdf: [number, number][];
}

export class LatencyRecorder {
  private readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: LATENCY_US_MAX, numberOfSignificantValueDigits: 3 });

  record(elapsed_ms: number): void {
    this.histogram.recordValue(Math.min(LATENCY_US_MAX, Math.max(1, Math.round(elapsed_ms * 1000))));
  }

  summary(): LatencySummary {
    const h = this.histogram;
    return {
      count: h.totalCount,
      mean_us: Number(h.mean.toFixed(1)),
      p50_us: h.getValueAtPercentile(50),
      p99_us: h.getValueAtPercentile(99),
      p999_us: h.getValueAtPercentile(99.9),
      max_us: h.maxValue,
      cdf: CDF_PERCENTILES.map((percentile) => [h.getValueAtPercentile(percentile), percentile]),
    };
  }
}

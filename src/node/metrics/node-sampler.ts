/**
 * Once a second, off the data path: what this node did in the last second (ops/s, latency
 * p50/p99 from the difference of two histogram snapshots, CPU, event-loop lag, memory, keys)
 * kept in a ring of the last HISTORY_SAMPLES seconds, for the dashboard's charts and for
 * `pikv top`. The energy estimate (energy.ts) is taken over the last ENERGY_WINDOW_SAMPLES
 * seconds: one second of CPU time is too noisy a measure on its own.
 *
 * With `--metrics off` there is no RequestMetrics: ops/s then comes from the partitions' own
 * counters (which include ops peers sent) and latency is unknown (null).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { DEFAULT_POWER_PROFILE, joules, opsPerJoule, powerProfile } from './energy.js';
import { quantileOf } from './histogram.js';
import type { RequestMetrics } from './request-metrics.js';

export const SAMPLE_INTERVAL_MS = 1_000;
/** Ten minutes of one-second samples: the dashboard's chart span. */
export const HISTORY_SAMPLES = 600;
const ENERGY_WINDOW_SAMPLES = 10;

/** One second of one node, as the dashboard and `pikv top` show it. */
export interface Sample {
  t_ms: number;
  ops_s: number;
  /** null without request metrics (--metrics off) or with no request that second. */
  p50_ms: number | null;
  p99_ms: number | null;
  rss_bytes: number;
  keys: number;
  bytes_used: number;
  cpu_percent: number;
  lag_ms: number;
  /** ESTIMATED ops per joule over the last 10 s on DEFAULT_POWER_PROFILE (energy.ts); null at first. */
  ops_per_joule: number | null;
}

/** What the sampler reads from the node. */
export interface SampleSource {
  /** Ops answered to clients since start (RequestMetrics), or every op the partitions ran. */
  opsTotal(): number;
  keys(): number;
  bytesUsed(): number;
}

export class NodeSampler {
  private readonly metrics: RequestMetrics | null;
  private readonly source: SampleSource;
  private readonly lag: IntervalHistogram;
  private readonly history: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private last_ms: number;
  private last_ops: number;
  private last_cpu_us: number;
  private last_latency: Float64Array | null;
  /** (t_ms, ops, cpu_s) of the last ENERGY_WINDOW_SAMPLES + 1 samples. */
  private readonly energy_window: { t_ms: number; ops: number; cpu_s: number }[] = [];
  private readonly listeners = new Set<(sample: Sample) => void>();
  /** Event-loop lag of the last interval, in seconds (Prometheus gauges). */
  lag_p50_s = 0;
  lag_p99_s = 0;
  lag_max_s = 0;

  constructor(metrics: RequestMetrics | null, source: SampleSource) {
    this.metrics = metrics;
    this.source = source;
    this.lag = monitorEventLoopDelay({ resolution: 10 });
    this.last_ms = Date.now();
    this.last_ops = source.opsTotal();
    this.last_cpu_us = cpuMicros();
    this.last_latency = metrics?.latency.snapshot() ?? null;
    this.energy_window.push({ t_ms: this.last_ms, ops: this.last_ops, cpu_s: this.last_cpu_us / 1e6 });
  }

  start(): void {
    this.lag.enable();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.lag.disable();
    this.listeners.clear();
  }

  /** Called after every sample (the SSE stream); returns the function that removes it. */
  onSample(listener: (sample: Sample) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get latest(): Sample | null {
    return this.history[this.history.length - 1] ?? null;
  }

  /** Up to the last `count` samples, oldest first. */
  recent(count: number = HISTORY_SAMPLES): Sample[] {
    return this.history.slice(Math.max(0, this.history.length - count));
  }

  /** Estimated ops per joule over the last few seconds, per power profile; {} before two samples. */
  opsPerJoule(): Record<string, number> {
    const window = this.energy_window;
    if (window.length < 2) return {};
    const first = window[0]!;
    const last = window[window.length - 1]!;
    const wall_s = (last.t_ms - first.t_ms) / 1000;
    if (wall_s <= 0) return {};
    return opsPerJoule(last.ops - first.ops, wall_s, last.cpu_s - first.cpu_s);
  }

  /** Estimated power over the same window on `profile`, in watts; null before two samples. */
  watts(profile = DEFAULT_POWER_PROFILE): number | null {
    const window = this.energy_window;
    if (window.length < 2) return null;
    const first = window[0]!;
    const last = window[window.length - 1]!;
    const wall_s = (last.t_ms - first.t_ms) / 1000;
    if (wall_s <= 0) return null;
    return joules(powerProfile(profile), wall_s, last.cpu_s - first.cpu_s) / wall_s;
  }

  /** Estimated joules since start on `profile` (default: DEFAULT_POWER_PROFILE), from process CPU time. */
  joulesSinceStart(uptime_s: number, profile = DEFAULT_POWER_PROFILE): number {
    return joules(powerProfile(profile), uptime_s, cpuMicros() / 1e6);
  }

  private sample(): void {
    const now_ms = Date.now();
    const elapsed_s = Math.max(0.001, (now_ms - this.last_ms) / 1000);
    const ops = this.source.opsTotal();
    const cpu_us = cpuMicros();
    let p50_ms: number | null = null;
    let p99_ms: number | null = null;
    if (this.metrics !== null && this.last_latency !== null) {
      const now = this.metrics.latency.snapshot();
      const delta = now.map((count, i) => count - this.last_latency![i]!);
      if (delta.some((count) => count > 0)) {
        p50_ms = round3(quantileOf(this.metrics.latency.bounds_s, delta, 0.5) * 1000);
        p99_ms = round3(quantileOf(this.metrics.latency.bounds_s, delta, 0.99) * 1000);
      }
      this.last_latency = now;
    }
    this.lag_p50_s = this.lag.percentile(50) / 1e9;
    this.lag_p99_s = this.lag.percentile(99) / 1e9;
    this.lag_max_s = this.lag.max / 1e9;
    this.lag.reset();
    const sample: Sample = {
      t_ms: now_ms,
      ops_s: Math.round((ops - this.last_ops) / elapsed_s),
      p50_ms,
      p99_ms,
      rss_bytes: process.memoryUsage.rss(),
      keys: this.source.keys(),
      bytes_used: this.source.bytesUsed(),
      cpu_percent: Math.round(((cpu_us - this.last_cpu_us) / 1e6 / elapsed_s) * 1000) / 10,
      lag_ms: round3(this.lag_p99_s * 1000),
      ops_per_joule: null,
    };
    this.last_ms = now_ms;
    this.last_ops = ops;
    this.last_cpu_us = cpu_us;
    this.energy_window.push({ t_ms: now_ms, ops, cpu_s: cpu_us / 1e6 });
    if (this.energy_window.length > ENERGY_WINDOW_SAMPLES + 1) this.energy_window.shift();
    sample.ops_per_joule = this.opsPerJoule()[DEFAULT_POWER_PROFILE] ?? null;
    this.history.push(sample);
    if (this.history.length > HISTORY_SAMPLES) this.history.shift();
    for (const listener of this.listeners) listener(sample);
  }
}

/** This process's CPU time (every thread: main and partition workers), in microseconds. */
export function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

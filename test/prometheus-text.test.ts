/**
 * The hand-written Prometheus text writer (src/node/metrics/prometheus-text.ts) read back by a
 * real parser, and the fixed-bucket histogram's quantile estimate (histogram.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FixedHistogram, quantileOf } from '../src/node/metrics/histogram.js';
import { PrometheusText } from '../src/node/metrics/prometheus-text.js';
import { parseMetrics, valueOf } from './helpers/prometheus.js';

describe('PrometheusText', () => {
  it('escapes label values so that a parser reads back the same text', () => {
    const awkward = 'a "quoted" \\ back\nslash';
    const text = new PrometheusText().family('x_total', 'counter', 'help with \\ and\nnewline').sample('x_total', { peer: awkward }, 3).text();
    const families = parseMetrics(text);
    assert.equal(families.get('x_total')!.metrics[0]!.labels!['peer'], awkward);
    assert.equal(valueOf(families, 'x_total', { peer: awkward }), 3);
  });

  it('writes histograms as cumulative buckets with +Inf, _sum and _count', () => {
    const histogram = new FixedHistogram([0.1, 1]);
    for (const value of [0.05, 0.5, 0.5, 7]) histogram.observe(value);
    const text = new PrometheusText().family('h_seconds', 'histogram', 'h')
      .histogram('h_seconds', {}, histogram.bounds_s, histogram.counts, histogram.sum_s).text();
    const sample = parseMetrics(text).get('h_seconds')!.metrics[0]!;
    assert.deepEqual(sample.buckets, { '0.1': '1', '1': '3', '+Inf': '4' });
    assert.equal(Number(sample.count), 4);
    assert.equal(Number(sample.sum), 8.05);
  });

  it('refuses a family written twice and a malformed name', () => {
    const out = new PrometheusText().family('a', 'gauge', 'a');
    assert.throws(() => out.family('a', 'gauge', 'a'), /twice/);
    assert.throws(() => out.family('bad-name', 'gauge', 'b'), /bad metric name/);
  });
});

describe('quantileOf', () => {
  const bounds = [1, 2, 4];

  it('interpolates inside the bucket the rank falls in, as histogram_quantile does', () => {
    assert.equal(quantileOf(bounds, [0, 10, 0, 0], 0.5), 1.5);
    assert.equal(quantileOf(bounds, [10, 0, 10, 0], 0.5), 1);
    assert.equal(quantileOf(bounds, [10, 0, 10, 0], 0.75), 3);
  });

  it('answers 0 with no observations and the last bound above it', () => {
    assert.equal(quantileOf(bounds, [0, 0, 0, 0], 0.99), 0);
    assert.equal(quantileOf(bounds, [0, 0, 0, 5], 0.99), 4);
  });

  it('refuses bounds that do not increase', () => {
    assert.throws(() => new FixedHistogram([1, 1]), /increase/);
  });
});

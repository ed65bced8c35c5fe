/**
 * The benchmark's pure helpers (no processes, no timing): the redis-benchmark CSV parser, the
 * Pi-scaled energy model, the sysbench parser, the cgroup quota lines and the etcd /metrics
 * parser. The benchmarks themselves are run by hand (docs/PERFORMANCE.md), never by `npm test`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSysbenchCpu, parseSysbenchEvents } from '../bench/lib/core-score.js';
import { cpuMaxLine, parseCpuStat } from '../bench/lib/cpu-quota.js';
import { coreSlowdown, joules, opsPerJoule, piEstimate, piScaledOpsPerJoule, PI_CORE_SCORES, POWER_TABLE } from '../bench/lib/energy.js';
import { etcdRates, etcdSnapshot, metricSum, parsePrometheus } from '../bench/lib/etcd-metrics.js';
import { parseRedisBenchmarkCsv } from '../bench/lib/redis-benchmark.js';

const pi4 = POWER_TABLE.find((p) => p.name === 'Raspberry Pi 4B')!;

describe('parseRedisBenchmarkCsv', () => {
  // Captured from redis-benchmark 7.0.15 (-t get,set --csv), with the warning it prints when CONFIG GET fails (as against pikv).
  const output = 'WARNING: Could not fetch server CONFIG\n' +
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n' +
    '"SET","6944.44","3.881","0.096","2.215","10.575","17.423","37.151"\n' +
    '"GET","6825.94","4.563","0.256","1.863","10.503","64.191","64.543"\n';

  it('returns one record per test, keyed by the header, skipping unquoted lines', () => {
    const rows = parseRedisBenchmarkCsv(output);
    assert.equal(rows.length, 2);
    assert.equal(rows[0]!.test, 'SET');
    assert.equal(Number(rows[0]!.rps), 6944.44);
    assert.equal(rows[1]!.test, 'GET');
    assert.equal(Number(rows[1]!.p50_latency_ms), 1.863);
  });

  it('rejects output without rows, a foreign header, and rows of the wrong width', () => {
    assert.throws(() => parseRedisBenchmarkCsv('Could not connect to Redis at 127.0.0.1:1: Connection refused\n'), /unexpected redis-benchmark output/);
    assert.throws(() => parseRedisBenchmarkCsv('"a","b"\n"1","2"\n'), /header/);
    assert.throws(() => parseRedisBenchmarkCsv('"test","rps","avg_latency_ms"\n"GET","1"\n'), /cells/);
  });
});

describe('Pi-scaled energy', () => {
  it('coreSlowdown is the ratio of the scores and refuses non-positive scores', () => {
    assert.equal(coreSlowdown(3000, 1500), 2);
    assert.throws(() => coreSlowdown(0, 1500), /positive/);
    assert.throws(() => coreSlowdown(3000, Number.NaN), /positive/);
  });

  it('with a slowdown of 1 it equals the unscaled bound', () => {
    const estimate = piEstimate(pi4, 1_000_000, 2, 1.5, 1);
    assert.equal(Math.round(estimate.ops_per_joule), opsPerJoule(1_000_000, 2, 1.5)['Raspberry Pi 4B']);
    assert.equal(estimate.wall_s, 2);
  });

  it('scales CPU seconds, and stretches the run once the 4 cores are saturated', () => {
    // 1 CPU-second in 2 s, 3× slower cores: 3 CPU-seconds, still fits 4 cores × 2 s.
    const fits = piEstimate(pi4, 1_000_000, 2, 1, 3);
    assert.equal(fits.cpu_s, 3);
    assert.equal(fits.wall_s, 2);
    assert.equal(fits.ops_per_joule, 1_000_000 / joules(pi4, 2, 3));
    // 1.5 CPU-seconds × 8 = 12 CPU-seconds: needs 3 s on 4 cores, so 1/3 fewer ops per second.
    const saturated = piEstimate(pi4, 1_000_000, 2, 1.5, 8);
    assert.equal(saturated.wall_s, 3);
    assert.equal(Math.round(saturated.ops_per_s), Math.round(1_000_000 / 3));
    assert.equal(saturated.ops_per_joule, 1_000_000 / (pi4.load_w * 3));
  });

  it('is never above the bound when the board is slower, and covers exactly the boards with a score', () => {
    const bound = opsPerJoule(500_000, 1, 0.8);
    const scaled = piScaledOpsPerJoule(500_000, 1, 0.8, 5000);
    assert.deepEqual(Object.keys(scaled).sort(), Object.keys(PI_CORE_SCORES).sort());
    for (const [board, estimate] of Object.entries(scaled)) {
      assert.ok(estimate.slowdown > 1);
      assert.ok(estimate.ops_per_joule < bound[board]!, `${board}: ${estimate.ops_per_joule} < ${bound[board]}`);
    }
    assert.ok(scaled['Raspberry Pi 5']!.ops_per_joule > scaled['Raspberry Pi 4B']!.ops_per_joule, 'the faster A76 core gives more ops/J than the A72');
  });

  it('stretches the run when the busiest thread would need more than one board core', () => {
    // A single-threaded server at 0.9 core here, 2.5× slower cores: 2.25 s of one thread per 1 s of run.
    const estimate = piEstimate(pi4, 100_000, 1, 0.9, 2.5, 0.9);
    assert.equal(estimate.wall_s, 2.25);
    assert.equal(Math.round(estimate.ops_per_s), Math.round(100_000 / 2.25));
    // Without the thread figure the 4 cores absorb it and the run keeps its length.
    assert.equal(piEstimate(pi4, 100_000, 1, 0.9, 2.5).wall_s, 1);
    assert.throws(() => piEstimate(pi4, 1, 1, 0.5, 2, 0.6), /busiest_thread_cpu_s/);
  });

  it('refuses a non-positive slowdown or wall time', () => {
    assert.throws(() => piEstimate(pi4, 1, 1, 1, 0), /slowdown/);
    assert.throws(() => piEstimate(pi4, 1, 0, 1, 1), /wall_s/);
  });
});

describe('parseSysbenchCpu', () => {
  it('reads events per second', () => {
    const text = 'CPU speed:\n    events per second:  1477.83\n\nGeneral statistics:\n    total time: 60.0004s\n';
    assert.equal(parseSysbenchCpu(text), 1477.83);
  });

  it('reads the event count, for the per-CPU-second score', () => {
    assert.equal(parseSysbenchEvents('    total time:                          3.4440s\n    total number of events:              4000\n'), 4000);
  });

  it('fails on output without them', () => {
    assert.throws(() => parseSysbenchCpu('sysbench: unknown test'), /events per second/);
    assert.throws(() => parseSysbenchEvents('sysbench: unknown test'), /total number of events/);
  });
});

describe('cpu quota lines', () => {
  it('cpu.max is quota and period, "max" without a quota, and at least 1 ms', () => {
    assert.equal(cpuMaxLine(0.25, 5000), '1250 5000');
    assert.equal(cpuMaxLine(0, 5000), 'max 5000');
    assert.equal(cpuMaxLine(0.05, 5000), '1000 5000');
    assert.throws(() => cpuMaxLine(1, 10), /period/);
  });

  it('reads throttling from v1 and v2 cpu.stat', () => {
    assert.deepEqual(parseCpuStat('nr_periods 100\nnr_throttled 40\nthrottled_time 2000000000\n'), { nr_periods: 100, nr_throttled: 40, throttled_s: 2 });
    assert.deepEqual(parseCpuStat('usage_usec 5\nnr_periods 10\nnr_throttled 5\nthrottled_usec 1500000\n'), { nr_periods: 10, nr_throttled: 5, throttled_s: 1.5 });
  });
});

describe('etcd /metrics', () => {
  const text = (proposals: number, range: number, txn: number): string => [
    '# HELP etcd_server_proposals_committed_total The total number of consensus proposals committed.',
    '# TYPE etcd_server_proposals_committed_total gauge',
    `etcd_server_proposals_committed_total ${proposals}`,
    `grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} ${range}`,
    `grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} ${txn}`,
    'grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1',
    'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 7',
    'etcd_mvcc_db_total_size_in_bytes 20480',
    'etcd_debugging_mvcc_db_total_size_in_bytes 99',
    'not a sample line {',
  ].join('\n');

  it('parses samples with labels and sums a metric, optionally filtered', () => {
    const samples = parsePrometheus(text(5, 10, 3));
    assert.equal(metricSum(samples, 'grpc_server_handled_total'), 14);
    assert.equal(metricSum(samples, 'grpc_server_handled_total', { grpc_method: 'Txn' }), 4);
    assert.equal(metricSum(samples, 'absent_metric'), null);
  });

  it('turns two snapshots into rates, prefers the non-debugging db size', () => {
    const before = etcdSnapshot(text(5, 10, 3), 1000);
    const after = etcdSnapshot(text(25, 50, 13), 3000);
    const rates = etcdRates(before, after);
    assert.equal(rates.proposals_per_s, 10);
    assert.equal(rates.grpc_calls_per_s, 25);
    assert.equal(rates.grpc_msgs_per_s, 0);
    assert.deepEqual(rates.top_methods, { Range: 20, Txn: 5 });
    assert.equal(rates.db_bytes, 20480);
  });
});

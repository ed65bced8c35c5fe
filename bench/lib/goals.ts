/**
 * The issue's goals, judged from one run's figures. A goal whose figures were not measured
 * in this run (workload not selected, Redis absent) is reported with met = null.
 */
import type { BenchResults, Goal, RunRecord } from './results.js';

function findRun(results: BenchResults, predicate: (run: RunRecord) => boolean): RunRecord | undefined {
  return results.runs.find(predicate);
}

function ratioGoal(name: string, target: string, minimum: number, numerator: number | undefined, denominator: number | undefined, describe: (a: number, b: number) => string, at_most = false): Goal {
  if (numerator === undefined || denominator === undefined || denominator === 0) return { name, target, measured: 'not measured in this run', ratio: null, met: null };
  // Judged on the unrounded ratio, so rounding never turns a miss into a pass.
  const exact = numerator / denominator;
  const ratio = Math.round(exact * 1000) / 1000;
  return { name, target, measured: describe(numerator, denominator), ratio, met: at_most ? exact <= minimum : exact >= minimum };
}

const fmt = (ops_per_s: number): string => `${(ops_per_s / 1e6).toFixed(3)} M ops/s`;

export function judgeGoals(results: BenchResults, ycsb_batch: number): Goal[] {
  const goals: Goal[] = [];
  const ycsb_b = results.comparisons.find((c) => c.label === 'YCSB-B uniform raw vs redis-benchmark GET/SET mix');
  goals.push(ratioGoal(`YCSB-B, 1M keys, batches of ${ycsb_batch}`, 'pikv ≥ 3× redis-benchmark -P 1024', 3, ycsb_b?.pikv.ops_per_s, ycsb_b?.redis.ops_per_s,
    (a, b) => `pikv raw ${fmt(a)} vs Redis ${fmt(b)}`));

  const conn50 = (system: string, driver: string): RunRecord | undefined =>
    findRun(results, (r) => r.workload === 'connections' && r.system === system && r.driver === driver && r.params.connections === 50);
  const pikv50 = conn50('pikv', 'pikv-raw');
  const redis50 = conn50('redis', 'redis-benchmark');
  goals.push(ratioGoal('Unbatched, 50 connections', 'pikv ≥ 1.0× Redis unpipelined', 1, pikv50?.ops_per_s, redis50?.ops_per_s,
    (a, b) => `pikv raw ${fmt(a)} (client get(): ${fmt(conn50('pikv', 'pikv-client-get')?.ops_per_s ?? 0)}) vs redis-benchmark ${fmt(b)}`));

  const latency = findRun(results, (r) => r.workload === 'latency' && r.driver === 'pikv-client-get')?.latency;
  const redis_latency = findRun(results, (r) => r.workload === 'latency' && r.driver === 'redis-benchmark')?.latency_ms;
  goals.push(ratioGoal('Unbatched GET p50, 1 connection', 'p50 ≤ 60 µs (client get())', 1, latency?.p50_us, 60,
    (a) => `pikv p50 ${a} µs, p99 ${latency?.p99_us} µs, p99.9 ${latency?.p999_us} µs${redis_latency ? `; redis-benchmark p50 ${Math.round(redis_latency.p50 * 1000)} µs` : ''}`, true));

  const memory = results.memory;
  goals.push(ratioGoal(`Memory, ${memory?.keys ?? '?'} keys`, 'pikv bytes_used ≤ 0.7× Redis used_memory', 0.7, memory?.pikv.bytes_per_key, memory?.redis?.bytes_per_key,
    (a, b) => `pikv ${a} B/key (RSS ${memory?.pikv.rss_bytes_per_key}) vs Redis ${b} B/key (RSS ${memory?.redis?.rss_bytes_per_key})`, true));

  const load = results.comparisons.find((c) => c.workload === 'load');
  goals.push(ratioGoal('Bulk load', 'pikv load ≥ 1.0× redis-cli --pipe', 1, load?.pikv.ops_per_s, load?.redis.ops_per_s,
    (a, b) => `pikv load ${fmt(a)} vs redis-cli --pipe ${fmt(b)}`));

  const batch = (driver: string): RunRecord | undefined =>
    findRun(results, (r) => r.workload === 'batch' && r.driver === driver && r.params.op === 'GET' && r.params.batch_ops === ycsb_batch);
  const raw = batch('pikv-raw');
  const columns = batch('pikv-client-columns');
  goals.push(ratioGoal(`Client library, GET ×${ycsb_batch}`, 'client batch() ≥ 0.8× raw frames', 0.8, batch('pikv-client-batch')?.ops_per_s, raw?.ops_per_s,
    (a, b) => `batch() ${fmt(a)}, batchColumns() ${fmt(columns?.ops_per_s ?? 0)} (${((columns?.ops_per_s ?? 0) / b).toFixed(2)}×) vs raw ${fmt(b)}`));
  return goals;
}

/**
 * Writes one run's outputs into its results folder: results.json (every figure),
 * report.md (header, goals, tables with pikv/Redis ratios, energy estimates) and SVG charts.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { FAWN_KV_QUERIES_PER_JOULE, PI_CORE_SCORES, PI_CORE_SCORES_SOURCE, POWER_TABLE } from './energy.js';
import { DRIVER_NOTES, type BenchResults, type RunRecord } from './results.js';
import { formatBytes, lineChart, type Series } from './svg.js';

const si = (value: number): string => value.toLocaleString('en-US');

function runsTable(runs: RunRecord[]): string[] {
  const lines = ['| system | driver | run | ops/s | server CPU µs/op | server CPU s (main / workers / other) | of which kernel s | client CPU (cores) | misses |', '|---|---|---|---:|---:|---|---:|---:|---:|'];
  for (const run of runs) {
    const threads = run.server_threads ? ` (${run.server_threads.main_s} / ${run.server_threads.workers_s} / ${run.server_threads.other_s})` : '';
    lines.push(`| ${run.system} | ${run.driver} | ${run.label} | ${si(run.ops_per_s)} | ${run.server_cpu_us_per_op} | ${run.server_cpu_s}${threads} | ${run.server_cpu_system_s ?? '–'} | ${run.client_cpu_share} | ${run.misses + run.errors} |`);
  }
  return lines;
}

function header(results: BenchResults): string[] {
  const s = results.system;
  return [
    `# pikv benchmark, ${s.date}`,
    '',
    `CPU: ${s.cpu_model}, ${s.cores} cores, ${s.memory_gib} GiB · ${s.kernel} · Node ${s.node_version} · Redis ${s.redis_version ?? 'not installed'} · pikv ${s.pikv_commit}`,
    '',
    `Options: \`${JSON.stringify(results.options)}\``,
    '',
  ];
}

function goalsSection(results: BenchResults): string[] {
  const lines = ['## Goals', '', '| goal | target | measured | ratio | met |', '|---|---|---|---:|---|'];
  for (const goal of results.goals) lines.push(`| ${goal.name} | ${goal.target} | ${goal.measured} | ${goal.ratio ?? '–'} | ${goal.met === null ? 'not measured' : goal.met ? '**met**' : '**missed**'} |`);
  return [...lines, ''];
}

function comparisonSection(results: BenchResults): string[] {
  if (results.comparisons.length === 0) return [];
  const lines = ['## pikv / Redis', '', '| workload | comparison | pikv ops/s (driver) | Redis ops/s (driver) | pikv / Redis |', '|---|---|---:|---:|---:|'];
  for (const c of results.comparisons) {
    lines.push(`| ${c.workload} | ${c.label} | ${si(c.pikv.ops_per_s)} (${c.pikv.driver}) | ${si(c.redis.ops_per_s)} (${c.redis.driver}${c.redis.note ? `; ${c.redis.note}` : ''}) | ${c.ratio} |`);
  }
  return [...lines, ''];
}

function memorySection(results: BenchResults): string[] {
  const m = results.memory;
  if (m === undefined) return [];
  const lines = ['## Memory', '', `${si(m.keys)} keys. Per key = (loaded − empty) / keys.`, '', '| system | measure | total | per key |', '|---|---|---:|---:|',
    `| pikv | table bytes_used (STATS) | ${formatBytes(m.pikv.bytes_used)} | ${m.pikv.bytes_per_key} B |`,
    `| pikv | process RSS | ${formatBytes(m.pikv.rss_bytes)} | ${m.pikv.rss_bytes_per_key} B |`];
  if (m.redis) {
    lines.push(`| Redis | used_memory | ${formatBytes(m.redis.used_memory)} | ${m.redis.bytes_per_key} B |`);
    lines.push(`| Redis | process RSS | ${formatBytes(m.redis.used_memory_rss)} | ${m.redis.rss_bytes_per_key} B |`);
  }
  lines.push('', 'pikv per worker: ' + m.pikv.per_worker.map((w) => `#${w.partition} ${si(w.keys)} keys, ${formatBytes(w.bytes_used)}, ${si(w.index_slots)} slots`).join('; '), '');
  return lines;
}

function energySection(results: BenchResults): string[] {
  const picks = results.runs.filter((r) => (r.workload === 'ycsb' && r.driver !== 'pikv-client-columns' && r.label.includes('uniform')) || r.workload === 'load' ||
    (r.workload === 'connections' && r.params.connections === 50 && r.driver !== 'pikv-client-get') || r.workload === 'redis-benchmark');
  if (picks.length === 0) return [];
  const boards = POWER_TABLE.filter((p) => PI_CORE_SCORES[p.name] !== undefined).map((p) => p.name);
  const score = results.core_score;
  const scaled = score?.events_per_s ? boards : [];
  const lines = ['## Energy (estimate)', '',
    'Ops per joule from each server\'s measured CPU seconds: J = P_idle·t_wall + (P_load − P_idle)·cpu_s/cores. **Bound** columns charge **this** machine\'s ' +
    'CPU seconds at each platform\'s power: for the boards they are upper bounds (a Pi core is slower). **Scaled** columns multiply the CPU seconds by ' +
    'this machine\'s single-core score over the board\'s (and stretch the run when the board\'s 4 cores would be saturated): estimates, with the ' +
    `uncertainty of one published CPU benchmark (±2× between published runs). Board scores: ${PI_CORE_SCORES_SOURCE}. This machine: ` +
    `${score?.events_per_s ?? '–'} (${score?.source ?? 'not recorded'}). FAWN-KV (SOSP 2009): ~${FAWN_KV_QUERIES_PER_JOULE} queries/J.`, '',
    `| run | ${POWER_TABLE.map((p) => (p.name.startsWith('Raspberry') ? `${p.name} bound` : p.name)).join(' | ')}${scaled.map((b) => ` | ${b} scaled (×slowdown)`).join('')} |`,
    `|---|${POWER_TABLE.map(() => '---:').join('|')}${scaled.map(() => '|---:').join('')}|`];
  for (const run of picks) {
    const scaled_cells = scaled.map((b) => {
      const estimate = run.ops_per_joule_pi_scaled?.[b];
      return estimate === undefined ? ' | –' : ` | ${si(estimate.ops_per_joule)} (×${estimate.slowdown})`;
    }).join('');
    lines.push(`| ${run.system} ${run.driver} ${run.label} | ${POWER_TABLE.map((p) => si(run.ops_per_joule?.[p.name] ?? 0)).join(' | ')}${scaled_cells} |`);
  }
  return [...lines, ''];
}

/** redis-benchmark with the same flags against both servers: ops/s, ratio, server CPU per op. */
function redisBenchmarkSection(results: BenchResults): string[] {
  const runs = results.runs.filter((r) => r.workload === 'redis-benchmark');
  if (runs.length === 0) return [];
  const lines = ['## redis-benchmark, same flags against both', '',
    'Redis\'s own C client against pikv\'s RESP port and against redis-server: `-c 50 -r <keys> -d <value bytes> --csv`, one command per run. ' +
    'Server CPU per op from /proc/PID/stat (utime+stime) over the measured run.', '',
    '| command | pikv ops/s | Redis ops/s | pikv/Redis | pikv CPU µs/op | Redis CPU µs/op | pikv p50 ms | Redis p50 ms |', '|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const pikv of runs.filter((r) => r.system === 'pikv')) {
    const redis = runs.find((r) => r.system === 'redis' && r.label === pikv.label);
    lines.push(`| ${pikv.label} | ${si(pikv.ops_per_s)} | ${redis ? si(redis.ops_per_s) : '–'} | ${redis ? (pikv.ops_per_s / Math.max(redis.ops_per_s, 1)).toFixed(2) : '–'} | ` +
      `${pikv.server_cpu_us_per_op} | ${redis?.server_cpu_us_per_op ?? '–'} | ${pikv.latency_ms?.p50 ?? '–'} | ${redis?.latency_ms?.p50 ?? '–'} |`);
  }
  return [...lines, ''];
}

function latencySection(results: BenchResults): string[] {
  const runs = results.runs.filter((r) => r.workload === 'latency');
  if (runs.length === 0) return [];
  const lines = ['## Latency, unbatched GET, 1 connection', '', '| system | driver | p50 µs | p99 µs | p99.9 µs | max µs | ops/s |', '|---|---|---:|---:|---:|---:|---:|'];
  for (const r of runs) {
    if (r.latency) lines.push(`| ${r.system} | ${r.driver} | ${r.latency.p50_us} | ${r.latency.p99_us} | ${r.latency.p999_us} | ${r.latency.max_us} | ${si(r.ops_per_s)} |`);
    else if (r.latency_ms) lines.push(`| ${r.system} | ${r.driver} | ${Math.round(r.latency_ms.p50 * 1000)} | ${Math.round(r.latency_ms.p99 * 1000)} | – | ${Math.round(r.latency_ms.max * 1000)} | ${si(r.ops_per_s)} |`);
  }
  return [...lines, ''];
}

function seriesBy(runs: RunRecord[], name: (run: RunRecord) => string | null, x: (run: RunRecord) => number, y: (run: RunRecord) => number): Series[] {
  const map = new Map<string, [number, number][]>();
  for (const run of runs) {
    const key = name(run);
    if (key === null) continue;
    map.set(key, [...(map.get(key) ?? []), [x(run), y(run)]]);
  }
  return [...map].map(([series_name, points]) => ({ name: series_name, points }));
}

function writeCharts(results: BenchResults, dir: string): string[] {
  const written: string[] = [];
  const write = (file: string, svg: string): void => {
    writeFileSync(path.join(dir, file), svg);
    written.push(file);
  };
  const batch = results.runs.filter((r) => r.workload === 'batch');
  if (batch.length > 0) {
    write('throughput-vs-batch.svg', lineChart({
      title: 'Throughput vs ops per request', x_label: 'ops per request (Redis: pipeline depth or MGET/MSET keys)', y_label: 'ops/s', x_log: true, y_log: true,
      series: seriesBy(batch, (r) => `${r.system} ${r.params.op} ${r.driver.replace(/^(pikv|redis)-/, '')}${r.params.form ? ` ${r.params.form}` : ''}`, (r) => Number(r.params.batch_ops), (r) => r.ops_per_s),
    }));
  }
  const values = results.runs.filter((r) => r.workload === 'values');
  if (values.length > 0) {
    write('throughput-vs-value-size.svg', lineChart({
      title: 'Throughput vs value size', x_label: 'value size', y_label: 'ops/s', x_log: true, y_log: true, x_format: formatBytes,
      series: seriesBy(values, (r) => `${r.system} ${r.params.op} (${r.driver})`, (r) => Number(r.params.value_bytes), (r) => r.ops_per_s),
    }));
    write('bandwidth-vs-value-size.svg', lineChart({
      title: 'Value bytes per second vs value size', x_label: 'value size', y_label: 'MB/s of values', x_log: true, y_log: true, x_format: formatBytes,
      series: seriesBy(values, (r) => `${r.system} ${r.params.op} (${r.driver})`, (r) => Number(r.params.value_bytes), (r) => (r.ops_per_s * Number(r.params.value_bytes)) / 1e6),
    }));
  }
  const connections = results.runs.filter((r) => r.workload === 'connections');
  if (connections.length > 0) {
    write('throughput-vs-connections.svg', lineChart({
      title: 'Unbatched GET throughput vs connections', x_label: 'connections', y_label: 'ops/s', x_log: true, y_log: false,
      series: seriesBy(connections, (r) => `${r.system} ${r.driver}`, (r) => Number(r.params.connections), (r) => r.ops_per_s),
    }));
  }
  const latency = results.runs.filter((r) => r.workload === 'latency' && r.latency);
  if (latency.length > 0) {
    write('latency-cdf.svg', lineChart({
      title: 'Unbatched GET latency CDF, 1 connection', x_label: 'latency (µs)', y_label: 'percentile', x_log: true, y_log: false,
      series: latency.map((r) => ({ name: `${r.system} ${r.driver}`, points: r.latency!.cdf })),
    }));
  }
  return written;
}

export function writeReport(results: BenchResults, dir: string): string[] {
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify(results, null, 1));
  const charts = writeCharts(results, dir);
  const workloads = [...new Set(results.runs.map((r) => r.workload))];
  const drivers = [...new Set(results.runs.map((r) => r.driver))];
  const lines = [
    ...header(results), ...goalsSection(results), ...comparisonSection(results), ...memorySection(results), ...latencySection(results), ...redisBenchmarkSection(results),
    '## Every run', '',
    ...workloads.flatMap((w) => [`### ${w}`, '', ...runsTable(results.runs.filter((r) => r.workload === w)), '']),
    ...energySection(results),
    '## Clients', '', ...drivers.map((d) => `- **${d}**: ${DRIVER_NOTES[d]}`), '',
    'Client CPU in cores is CPU seconds per wall second of the load generator; near 1.0 the single-threaded client was saturated.', '',
    ...(results.notes.length > 0 ? ['## Notes', '', ...results.notes.map((n) => `- ${n}`), ''] : []),
    ...(charts.length > 0 ? ['## Charts', '', ...charts.map((c) => `![${c}](${c})`), ''] : []),
  ];
  writeFileSync(path.join(dir, 'report.md'), lines.join('\n'));
  return ['results.json', 'report.md', ...charts];
}

/**
 * The cluster bench's outputs: results.json (every run), report.md (medians per cluster size,
 * direct vs entry node, scaling ratios, per-node CPU against the quota, the 1 MiB run against
 * the link's wire time) and two SVG charts.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunTotals } from './cluster-loadgen.js';
import type { SystemInfo } from './sysinfo.js';
import { lineChart, type Series } from './svg.js';

/** direct-wide = direct with client batches of batch x nodes (each node still gets ~batch ops per request). */
export type RunMode = 'direct' | 'direct-wide' | 'entry';

export interface ClusterRun {
  nodes: number;
  mode: RunMode;
  /** get | put | mix | get-1mib */
  workload: string;
  value_bytes: number;
  batch_ops: number;
  rep: number;
  ops_per_s: number;
  totals: RunTotals;
  client_cpu_cores: number;
  load_average: [number, number, number];
  node_cpu: { id: string; cpu_cores: number; throttled_share: number; throttled_s: number }[];
}

export interface ClusterResults {
  system: SystemInfo;
  options: Record<string, unknown> & { cpu?: { cpus: number; period_us: number }; link?: { rate: string; burst: string; latency: string } };
  load_average_start: [number, number, number];
  load_average_end?: [number, number, number];
  elapsed_s?: number;
  runs: ClusterRun[];
  /** Per cluster size: each node's share of the preloaded keys (its share of uniform load). */
  key_shares?: Record<number, Record<string, number>>;
  /** The same for the 1 MiB values (few keys: far from even). */
  big_key_shares?: Record<number, Record<string, number>>;
  notes: string[];
}

export interface Point {
  nodes: number;
  mode: RunMode;
  workload: string;
  runs: ClusterRun[];
  median_ops_per_s: number;
  min_ops_per_s: number;
  max_ops_per_s: number;
  /** Per node id: median CPU cores and median throttled share over the runs. */
  node_cpu: { id: string; cpu_cores: number; throttled_share: number }[];
  client_cpu_cores: number;
  misses: number;
  errors: number;
  load_average: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function points(results: ClusterResults): Point[] {
  const groups = new Map<string, ClusterRun[]>();
  for (const run of results.runs) {
    const key = `${run.workload}|${run.mode}|${run.nodes}`;
    const list = groups.get(key) ?? [];
    list.push(run);
    groups.set(key, list);
  }
  return [...groups.values()].map((runs) => {
    const ids = runs[0]!.node_cpu.map((n) => n.id);
    return {
      nodes: runs[0]!.nodes, mode: runs[0]!.mode, workload: runs[0]!.workload, runs,
      median_ops_per_s: median(runs.map((r) => r.ops_per_s)),
      min_ops_per_s: Math.min(...runs.map((r) => r.ops_per_s)),
      max_ops_per_s: Math.max(...runs.map((r) => r.ops_per_s)),
      node_cpu: ids.map((id, i) => ({ id, cpu_cores: median(runs.map((r) => r.node_cpu[i]!.cpu_cores)), throttled_share: median(runs.map((r) => r.node_cpu[i]!.throttled_share)) })),
      client_cpu_cores: median(runs.map((r) => r.client_cpu_cores)),
      misses: runs.reduce((sum, r) => sum + r.totals.misses, 0),
      errors: runs.reduce((sum, r) => sum + r.totals.errors, 0),
      load_average: median(runs.map((r) => r.load_average[0])),
    };
  }).sort((a, b) => a.workload.localeCompare(b.workload) || a.mode.localeCompare(b.mode) || a.nodes - b.nodes);
}

const si = (value: number): string => Math.round(value).toLocaleString('en-US');
const cores = (value: number): string => value.toFixed(2);

function find(all: Point[], workload: string, mode: string, nodes: number): Point | undefined {
  return all.find((p) => p.workload === workload && p.mode === mode && p.nodes === nodes);
}

function cpuCell(point: Point | undefined, quota: number): string {
  if (point === undefined) return '–';
  const list = point.node_cpu.map((n) => cores(n.cpu_cores)).join(' / ');
  const throttled = Math.max(...point.node_cpu.map((n) => n.throttled_share));
  return `${list}${quota > 0 ? ` (thr. ≤${Math.round(throttled * 100)}%)` : ''}`;
}

const MODE_NAMES: Record<RunMode, string> = { direct: 'direct (ring-aware)', 'direct-wide': 'direct, batch × nodes', entry: 'via entry node' };

/** The throughput table: one row per workload and cluster size. */
export function throughputTable(results: ClusterResults): string[] {
  const all = points(results);
  const quota = results.options.cpu?.cpus ?? 0;
  const batch = Number(results.options['batch_ops'] ?? 1024);
  const workloads = [...new Set(all.map((p) => p.workload))].filter((w) => w !== 'get-1mib');
  const lines = [`| workload | nodes | direct ops/s (min–max) | ×1 node | direct, ${batch} × nodes per batch | ×1 node | entry-node ops/s (min–max) | ×1 node | node CPU direct (cores) | node CPU direct × nodes | node CPU entry | client CPU d / e | load avg | misses+errors |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|'];
  for (const workload of workloads) {
    const sizes = [...new Set(all.filter((p) => p.workload === workload).map((p) => p.nodes))].sort((a, b) => a - b);
    const base_d = find(all, workload, 'direct', sizes[0]!);
    const base_e = find(all, workload, 'entry', sizes[0]!);
    for (const n of sizes) {
      const d = find(all, workload, 'direct', n);
      // At one node direct-wide is direct (the same batch).
      const w = n === 1 ? d : find(all, workload, 'direct-wide', n);
      const e = find(all, workload, 'entry', n);
      const range = (p: Point | undefined): string => (p ? `${si(p.median_ops_per_s)} (${si(p.min_ops_per_s)}–${si(p.max_ops_per_s)})` : '–');
      const ratio = (p: Point | undefined, base: Point | undefined): string => (p && base ? `${(p.median_ops_per_s / base.median_ops_per_s).toFixed(2)}×` : '–');
      const bad = [d, w, e].reduce((sum, p) => sum + (p && p !== d ? p.misses + p.errors : 0), (d?.misses ?? 0) + (d?.errors ?? 0));
      lines.push(`| ${workload} | ${n} | ${range(d)} | ${ratio(d, base_d)} | ${n === 1 ? 'as direct' : range(w)} | ${w ? ratio(w, base_d) : '–'} | ${range(e)} | ${ratio(e, base_e)} | ` +
        `${cpuCell(d, quota)} | ${n === 1 ? '' : cpuCell(w, quota)} | ${cpuCell(e, quota)} | ${d ? cores(d.client_cpu_cores) : '–'} / ${e ? cores(e.client_cpu_cores) : '–'} | ${(d ?? e)?.load_average.toFixed(2) ?? '–'} | ${bad} |`);
    }
  }
  return lines;
}

/** Bytes on the wire per second for one link at `rate` ("1gbit", "100mbit"). */
export function linkBytesPerSecond(rate: string): number {
  const match = /^([\d.]+)\s*([kmg]?)bit$/i.exec(rate.trim());
  if (match === null) return 0;
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return (Number(match[1]) * scale) / 8;
}

export function bigTable(results: ClusterResults): string[] {
  const all = points(results).filter((p) => p.workload === 'get-1mib');
  if (all.length === 0) return [];
  const link = linkBytesPerSecond(results.options.link?.rate ?? '');
  const per_link = link > 0 ? link / (1 << 20) : 0;
  const lines = [
    `Wire time of one 1 MiB value at ${results.options.link?.rate || 'unshaped'}: ${per_link > 0 ? `${(1000 / per_link).toFixed(1)} ms, so at most ${per_link.toFixed(0)} values/s per node link (payload only; TCP/IP/WebSocket headers add ~3-5%)` : 'n/a'}.`,
    '',
    'Link limit: entry = one link (every value leaves through the entry node); direct = the busiest node\'s link: ' +
    'per-link rate / that node\'s share of the 1 MiB keys (batches split by owner finish with it), at most nodes × per-link rate.',
    '',
    '| nodes | mode | values/s (min–max) | MiB/s | link limit values/s | of limit | node CPU (cores) | client CPU | errors |', '|---:|---|---:|---:|---:|---:|---|---:|---:|'];
  for (const p of all.sort((a, b) => a.nodes - b.nodes || a.mode.localeCompare(b.mode))) {
    const shares = Object.values(results.big_key_shares?.[p.nodes] ?? {});
    const max_share = shares.length > 0 ? Math.max(...shares) : 1 / p.nodes;
    const limit = per_link > 0 ? (p.mode === 'entry' ? per_link : per_link * Math.min(p.nodes, 1 / max_share)) : 0;
    lines.push(`| ${p.nodes} | ${p.mode} | ${p.median_ops_per_s.toFixed(1)} (${p.min_ops_per_s.toFixed(0)}–${p.max_ops_per_s.toFixed(0)}) | ${p.median_ops_per_s.toFixed(0)} | ${limit > 0 ? limit.toFixed(0) : '–'} | ` +
      `${limit > 0 ? `${Math.round((p.median_ops_per_s / limit) * 100)}%` : '–'} | ${cpuCell(p, results.options.cpu?.cpus ?? 0)} | ${cores(p.client_cpu_cores)} | ${p.misses + p.errors} |`);
  }
  return lines;
}

export function scalingLines(results: ClusterResults): string[] {
  const all = points(results);
  const lines: string[] = [];
  for (const [count, shares] of Object.entries(results.key_shares ?? {})) {
    const max = Math.max(...Object.values(shares));
    if (Number(count) < 2) continue;
    lines.push(`- ring, ${count} nodes: key shares ${Object.entries(shares).map(([id, share]) => `${id} ${(share * 100).toFixed(1)}%`).join(', ')}; ` +
      `a batch split by owner finishes with its busiest node, so equal nodes scale at most ${(1 / max).toFixed(2)}× (1 / largest share)`);
  }
  for (const workload of [...new Set(all.map((p) => p.workload))]) {
    for (const mode of ['direct', 'direct-wide', 'entry'] as const) {
      const base = all.find((p) => p.workload === workload && p.mode === (mode === 'direct-wide' ? 'direct' : mode) && p.nodes === 1);
      const series = [...(mode === 'direct-wide' && base ? [base] : []), ...all.filter((p) => p.workload === workload && p.mode === mode)].sort((a, b) => a.nodes - b.nodes);
      if (series.length < 2) continue;
      const first = series[0]!;
      const last = series[series.length - 1]!;
      const ratio = last.median_ops_per_s / first.median_ops_per_s;
      const goal = workload !== 'get-1mib' && mode !== 'entry' && first.nodes === 1 && last.nodes === 4 ? ` — goal ≥ 3.5×: **${ratio >= 3.5 ? 'met' : 'missed'}**` : '';
      lines.push(`- ${workload}, ${MODE_NAMES[mode]}: ${first.nodes} → ${last.nodes} nodes ${ratio.toFixed(2)}× (${si(first.median_ops_per_s)} → ${si(last.median_ops_per_s)} ops/s)${goal}`);
    }
  }
  return lines;
}

function chart(results: ClusterResults, big: boolean): string {
  const all = points(results).filter((p) => (p.workload === 'get-1mib') === big);
  const series: Series[] = [];
  for (const workload of [...new Set(all.map((p) => p.workload))]) {
    for (const mode of ['direct', 'direct-wide', 'entry'] as const) {
      const pts = all.filter((p) => p.workload === workload && (p.mode === mode || (mode === 'direct-wide' && p.mode === 'direct' && p.nodes === 1)))
        .map((p) => [p.nodes, p.median_ops_per_s] as [number, number]);
      if (pts.length > 1 || (pts.length > 0 && mode !== 'direct-wide')) series.push({ name: `${workload} ${MODE_NAMES[mode]}`, points: pts });
    }
  }
  const sizes = [...new Set(all.map((p) => p.nodes))].sort((a, b) => a - b);
  if (big) {
    const per_link = linkBytesPerSecond(results.options.link?.rate ?? '') / (1 << 20);
    const limit = (n: number): number => {
      const shares = Object.values(results.big_key_shares?.[n] ?? {});
      return per_link * Math.min(n, shares.length > 0 ? 1 / Math.max(...shares) : n);
    };
    if (per_link > 0) series.push({ name: 'link limit, direct', points: sizes.map((n) => [n, limit(n)]) }, { name: 'link limit, entry', points: sizes.map((n) => [n, per_link]) });
  } else {
    const get1 = all.find((p) => p.workload === 'get' && p.mode === 'direct' && p.nodes === 1);
    if (get1) {
      series.push({ name: 'get, linear from 1 node', points: sizes.map((n) => [n, n * get1.median_ops_per_s]) });
      const shares = results.key_shares ?? {};
      const bound = sizes.filter((n) => shares[n] !== undefined).map((n) => [n, get1.median_ops_per_s / Math.max(...Object.values(shares[n]!))] as [number, number]);
      if (bound.length > 1) series.push({ name: 'get, ring-share bound', points: bound });
    }
  }
  const quota = results.options.cpu?.cpus ?? 0;
  return lineChart({
    title: big ? `GET of 1 MiB values vs cluster size (${results.options.link?.rate || 'unshaped'} per node)` : `Cluster throughput, ${quota > 0 ? `${quota} CPU` : 'no quota'} + ${results.options.link?.rate || 'unshaped'} per node`,
    x_label: 'nodes', y_label: big ? 'values/s (median)' : 'ops/s (median)', x_log: false, y_log: false, series,
    x_format: (v) => String(v),
  });
}

export function writeClusterReport(results: ClusterResults, dir: string): string[] {
  const s = results.system;
  const o = results.options;
  const md = [
    `# pikv cluster scaling, ${s.date}`,
    '',
    `CPU: ${s.cpu_model}, ${s.cores} cores, ${s.memory_gib} GiB · ${s.kernel} · Node ${s.node_version} · pikv ${s.pikv_commit}`,
    `Load average at start ${results.load_average_start.join(' ')}, at end ${results.load_average_end?.join(' ') ?? '–'}; ${results.elapsed_s?.toFixed(0) ?? '–'} s.`,
    '',
    `Options: \`${JSON.stringify(o)}\``,
    '',
    '## Throughput (medians)',
    '',
    ...throughputTable(results),
    '',
    'Scaling:',
    '',
    ...scalingLines(results),
    '',
    ...(bigTable(results).length > 0 ? ['## GET of 1 MiB values', '', ...bigTable(results), ''] : []),
    '![throughput vs nodes](cluster-throughput.svg)',
    '',
    '## Method',
    '',
    'Each node: `pikv serve` in its own network namespace on a bridge, its veth shaped both ways with tc tbf, in its own cgroup v1 `cpu` group ' +
    '(every thread, from birth: the launching shell joins the group before exec). Load generator in a separate namespace, unshaped and without a quota. ' +
    '`direct` = raw ring-aware client: the view is read with RING, each 1024-op batch is split by owner (same HashRing as `connectCluster`) into one pre-encoded frame per node ' +
    'carrying the epoch (`re`); a lane has one socket per node and keeps `depth` logical batches in flight, a batch completing when all its parts are answered. ' +
    '`direct, batch × nodes` = the same with client batches of 1024 × nodes, so every node still gets ~1024 ops per request. ' +
    '`entry` = the same 1024-op frames without `re`, all to node n1, which forwards. Node CPU = /proc/PID/stat delta over the run; "thr." = share of CFS periods in which the group was throttled. ' +
    'Keys preloaded without a quota; misses/errors counted on the first and every 64th reply per socket.',
    '',
    '## Every run',
    '',
    '| nodes | workload | mode | rep | ops/s | node CPU (cores) | throttled | client CPU | load avg | misses | errors |',
    '|---:|---|---|---:|---:|---|---|---:|---:|---:|---:|',
    ...results.runs.map((r) => `| ${r.nodes} | ${r.workload} | ${r.mode} | ${r.rep} | ${si(r.ops_per_s)} | ${r.node_cpu.map((n) => cores(n.cpu_cores)).join(' / ')} | ` +
      `${r.node_cpu.map((n) => `${Math.round(n.throttled_share * 100)}%`).join(' / ')} | ${cores(r.client_cpu_cores)} | ${r.load_average[0].toFixed(2)} | ${r.totals.misses} | ${r.totals.errors}${Object.keys(r.totals.error_codes).length > 0 ? ` ${JSON.stringify(r.totals.error_codes)}` : ''} |`),
    '',
    ...(results.notes.length > 0 ? ['## Notes', '', ...results.notes.map((n) => `- ${n}`), ''] : []),
  ];
  const files = ['results.json', 'report.md', 'cluster-throughput.svg'];
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(dir, 'cluster-throughput.svg'), chart(results, false));
  if (results.runs.some((r) => r.workload === 'get-1mib')) {
    writeFileSync(path.join(dir, 'cluster-1mib.svg'), chart(results, true));
    files.push('cluster-1mib.svg');
    md.splice(md.indexOf('![throughput vs nodes](cluster-throughput.svg)') + 1, 0, '', '![1 MiB GET vs nodes](cluster-1mib.svg)');
  }
  writeFileSync(path.join(dir, 'report.md'), md.join('\n'));
  return files;
}

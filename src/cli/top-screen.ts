/**
 * `pikv top`'s screen: a ClusterSummary (GET /v1/cluster) as text lines, one per node and a
 * total, cut to the terminal's width. Pure: top.ts owns the terminal.
 */
import type { ClusterSummary } from '../node/observe/cluster-summary.js';
import type { NodeSummary } from '../node/observe/node-summary.js';

const COLUMNS = ['NODE', 'STATE', 'OPS/S', 'P50 MS', 'P99 MS', 'MEM', 'TABLE', 'KEYS', 'OPS/J*'] as const;
const WIDTHS = [14, 11, 9, 8, 8, 9, 7, 10, 9] as const;

function pad(text: string, width: number, left: boolean): string {
  const cut = text.length > width ? `${text.slice(0, width - 1)}…` : text;
  return left ? cut.padEnd(width) : cut.padStart(width);
}

function row(cells: readonly string[]): string {
  return cells.map((cell, i) => pad(cell, WIDTHS[i]!, i < 2)).join(' ');
}

export function count(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(digits);
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1048576)}M`;
}

function nodeRow(node: NodeSummary): string {
  const up = node.state !== 'down';
  const sample = node.sample;
  const table = node.bytes_capacity > 0 ? `${((node.bytes_used / node.bytes_capacity) * 100).toFixed(1)}%` : '-';
  return row([
    node.node_id, node.state.replace('_', ' '),
    up ? count(sample?.ops_s) : '-', up ? count(sample?.p50_ms, 2) : '-', up ? count(sample?.p99_ms, 2) : '-',
    up ? mib(node.rss_bytes) : '-', up ? table : '-', up ? count(node.keys) : '-', up ? count(node.ops_per_joule) : '-',
  ]);
}

/** The screen for `summary`, at most `width` columns wide; `note` is a status line (an error, or ''). */
export function topLines(summary: ClusterSummary | null, url: string, note: string, width: number): string[] {
  const now = new Date().toISOString().slice(11, 19);
  const lines: string[] = [];
  if (summary === null) {
    lines.push(`pikv top - ${now} - ${url}`, '', note === '' ? 'waiting for the node…' : note);
    return lines.map((line) => line.slice(0, width));
  }
  const live = summary.nodes.filter((n) => n.state !== 'down');
  lines.push(`pikv top - ${now} - epoch ${summary.epoch} - ${live.length}/${summary.nodes.length} nodes up - via ${summary.from} (${url})`);
  const moving = summary.nodes.flatMap((n) => n.progress.map((p) => `${n.node_id}: ${p.what} ${p.total > 0 ? Math.floor((p.done / p.total) * 100) : 0}%`));
  lines.push(moving.length === 0 ? 'moves: none' : `moves: ${moving.join(', ')}`);
  lines.push('');
  lines.push(row(COLUMNS));
  for (const node of summary.nodes) lines.push(nodeRow(node));
  const ops = live.reduce((sum, n) => sum + (n.sample?.ops_s ?? 0), 0);
  const watts = live.reduce((sum, n) => sum + (n.watts ?? 0), 0);
  const p99 = live.reduce((max, n) => Math.max(max, n.sample?.p99_ms ?? 0), 0);
  lines.push(row(['TOTAL', `${live.length}/${summary.nodes.length} up`, count(ops), '', p99 > 0 ? count(p99, 2) : '-',
    mib(live.reduce((sum, n) => sum + n.rss_bytes, 0)), '', count(live.reduce((sum, n) => sum + n.keys, 0)), watts > 0 ? count(ops / watts) : '-']));
  lines.push('');
  const profile = summary.nodes.find((n) => n.power_profile !== '')?.power_profile ?? '';
  lines.push(`* ESTIMATED ops per joule (${profile} power model, measured CPU seconds). TOTAL P99: the slowest node's.`);
  lines.push(note === '' ? 'q or Ctrl-C: quit   space: refresh now' : note);
  for (const node of summary.nodes) if (node.state === 'down' && node.reason !== undefined) lines.push(`${node.node_id}: ${node.reason}`);
  return lines.map((line) => (line.length > width ? line.slice(0, width) : line));
}

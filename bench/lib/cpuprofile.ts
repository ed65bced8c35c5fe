/**
 * Top-N self time of a V8 .cpuprofile (what `node --cpu-prof` writes, one file per thread):
 * a plain JSON walk. Self time of a node = its sample count × the mean sampling interval;
 * nodes are merged by function name and location.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTimeRow {
  function_name: string;
  location: string;
  self_ms: number;
  self_share: number;
}

export interface ProfileSummary {
  file: string;
  total_ms: number;
  /** Time not spent idle (V8's "(idle)" node) nor in "(program)". */
  busy_ms: number;
  top: SelfTimeRow[];
}

function shortUrl(url: string): string {
  const at = url.lastIndexOf('/dist/');
  if (at >= 0) return url.slice(at + 6);
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + 14);
  return url.replace(/^file:\/\//, '');
}

export function summarizeProfile(file: string, top_count: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const by_id = new Map(profile.nodes.map((node) => [node.id, node]));
  const samples_by_node = new Map<number, number>();
  for (const id of profile.samples) samples_by_node.set(id, (samples_by_node.get(id) ?? 0) + 1);
  const total_ms = (profile.endTime - profile.startTime) / 1000;
  const interval_ms = total_ms / Math.max(profile.samples.length, 1);
  const rows = new Map<string, SelfTimeRow>();
  let idle_ms = 0;
  for (const [id, count] of samples_by_node) {
    const frame = by_id.get(id)!.callFrame;
    const name = frame.functionName || '(anonymous)';
    const self_ms = count * interval_ms;
    if (name === '(idle)') idle_ms += self_ms;
    const location = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${name}@${location}`;
    const row = rows.get(key) ?? { function_name: name, location, self_ms: 0, self_share: 0 };
    row.self_ms += self_ms;
    rows.set(key, row);
  }
  const busy_ms = total_ms - idle_ms;
  const top = [...rows.values()].filter((row) => row.function_name !== '(idle)').sort((a, b) => b.self_ms - a.self_ms).slice(0, top_count);
  for (const row of top) {
    row.self_ms = Math.round(row.self_ms * 10) / 10;
    row.self_share = Math.round((row.self_ms / Math.max(busy_ms, 1e-9)) * 1000) / 10;
  }
  return { file, total_ms: Math.round(total_ms), busy_ms: Math.round(busy_ms), top };
}

export function formatSummary(summary: ProfileSummary, title: string): string {
  const lines = [`${title}: ${summary.busy_ms} ms busy of ${summary.total_ms} ms profiled (${summary.file})`];
  for (const row of summary.top) lines.push(`  ${String(row.self_ms.toFixed(1)).padStart(9)} ms ${String(row.self_share.toFixed(1)).padStart(5)}%  ${row.function_name}  ${row.location}`);
  return lines.join('\n');
}

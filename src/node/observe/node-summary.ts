/**
 * One node at a glance, as JSON (GET /v1/summary): state, the last second's sample
 * (metrics/node-sampler.ts), memory and keys, the energy estimate, and data-move and
 * re-replication progress. The dashboard and `pikv top` show these; a node builds the
 * cluster's picture from its peers' summaries (cluster-summary.ts).
 */
import type { ClusterStatus } from '../../cluster/cluster-status.js';
import { DEFAULT_POWER_PROFILE } from '../metrics/energy.js';
import type { NodeSampler, Sample } from '../metrics/node-sampler.js';
import type { NodeStats } from '../stats.js';
import type { FormationNote } from './formation-note.js';

/** serving: answers data ops; not_serving: up but without a live view (starting, etcd lost); down: unreachable or marked down. */
export type NodeState = 'serving' | 'not_serving' | 'down';

export interface Progress {
  /** What runs: "move" (a view change's data move), "cleanup", or "replication to <id>". */
  what: string;
  state: string;
  done: number;
  total: number;
}

export interface NodeSummary {
  node_id: string;
  url: string;
  state: NodeState;
  /** Why it is down, when it is (the fetch error, or "marked down in the view"). */
  reason?: string;
  epoch: number;
  uptime_s: number;
  sample: Sample | null;
  keys: number;
  bytes_used: number;
  bytes_capacity: number;
  rss_bytes: number;
  worker_restarts: number;
  metrics_enabled: boolean;
  power_profile: string;
  /** ESTIMATED, over the last 10 s on power_profile; null before two samples. */
  ops_per_joule: number | null;
  /** ESTIMATED power over the same window, so a cluster's ops/J is Σ ops/s ÷ Σ watts. */
  watts: number | null;
  progress: Progress[];
  /** On an etcd member board run by `pikv etcd-form`: its state (waiting and why, or running); absent elsewhere. */
  formation?: FormationNote;
  /** The last HISTORY_SAMPLES samples, oldest first, when asked for (?history=1). */
  history?: Sample[];
}

export interface SummarySource {
  stats(): NodeStats;
  clusterStatus(): ClusterStatus;
  readonly sampler: NodeSampler;
  readonly metrics_enabled: boolean;
  readonly shutting_down: boolean;
  /** The etcd formation state (formation-note.ts), or null when this node has none. */
  formation?: () => FormationNote | null;
}

export function nodeSummary(source: SummarySource, with_history: boolean): NodeSummary {
  const stats = source.stats();
  const status = source.clusterStatus();
  const serving = !source.shutting_down && (status.etcd === null || status.etcd.serving);
  const summary: NodeSummary = {
    node_id: status.node_id,
    url: status.url,
    state: serving ? 'serving' : 'not_serving',
    epoch: status.epoch,
    uptime_s: stats.uptime_s,
    sample: source.sampler.latest,
    keys: stats.keys,
    bytes_used: stats.bytes_used,
    bytes_capacity: stats.bytes_capacity,
    rss_bytes: stats.memory.rss_bytes,
    worker_restarts: stats.per_worker.reduce((sum, w) => sum + w.restarts, 0),
    metrics_enabled: source.metrics_enabled,
    power_profile: DEFAULT_POWER_PROFILE,
    ops_per_joule: source.sampler.opsPerJoule()[DEFAULT_POWER_PROFILE] ?? null,
    watts: roundWatts(source.sampler.watts()),
    progress: progressOf(status),
  };
  const formation = source.formation?.() ?? null;
  if (formation !== null) summary.formation = formation;
  if (with_history) summary.history = source.sampler.recent();
  return summary;
}

function roundWatts(watts: number | null): number | null {
  return watts === null ? null : Math.round(watts * 1000) / 1000;
}

/** What is moving on this node now: the data move, the clean-up, and replication streams with a backlog. */
function progressOf(status: ClusterStatus): Progress[] {
  const result: Progress[] = [];
  const move = status.migration;
  if (move !== null) {
    // Scanning counts partitions; once scanned, what is left is the acknowledgement of what was sent.
    const scanning = move.partitions_scanned < move.partitions;
    result.push(scanning
      ? { what: 'move', state: move.state, done: move.partitions_scanned, total: move.partitions }
      : { what: 'move', state: move.state, done: move.keys_acked, total: Math.max(move.keys_sent, move.keys_acked) });
  }
  const cleanup = status.cleanup;
  if (cleanup !== null && cleanup.state !== 'done') result.push({ what: 'cleanup', state: cleanup.state, done: cleanup.partitions_scanned, total: cleanup.partitions });
  for (const stream of status.replication.streams) {
    if (stream.ops_queued <= 0) continue;
    result.push({ what: `replication to ${stream.to}`, state: 'backlog', done: stream.ops_acked, total: stream.ops_acked + stream.ops_queued });
  }
  return result;
}

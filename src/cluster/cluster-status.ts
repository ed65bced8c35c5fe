/**
 * What a clustered node reports about itself (the CLUSTER_STATUS op, `pikv cluster status`,
 * /metrics and the dashboard): the shape, and the parts built from one component each.
 */
import type { CleanupProgress } from './cleanup.js';
import type { MigrationProgress } from './migration.js';
import type { PeerLink } from './peer-link.js';
import type { Promotion } from './promotion.js';
import type { Replicator } from './replicator.js';
import type { ClusterView } from '../routing/view.js';

export interface PeerStatus {
  id: string;
  url: string;
  up: boolean;
  last_answer_ms_ago: number | null;
  ops_failed: number;
  rtt_ms: number | null;
}

export interface ReplicationStatus {
  replicas: number;
  next_replicas: number | null;
  min_replicas: number;
  down: string[];
  writes_replicated: number;
  commits_done: number;
  commits_failed: number;
  commits_waiting: number;
  reads_held: number;
  /** This node's commit watermark as a primary (docs/REPLICATION.md R7). */
  commit_watermark: number;
  /** The replay log (R7): bytes and ops kept from other primaries, and what promotions re-sent. */
  replay_log: { bytes: number; ops: number; ops_replayed: number; promotions: number };
  streams: { to: string; ops_sent: number; ops_acked: number; ops_queued: number; failures: number; failure: string | null }[];
}

export interface ClusterStatus {
  node_id: string;
  url: string;
  epoch: number;
  view: ClusterView;
  member: boolean;
  keys: number;
  ops_forwarded: number;
  ops_resent_after_stale_ring: number;
  frames_forwarded: number;
  peers: PeerStatus[];
  replication: ReplicationStatus;
  migration: MigrationProgress | null;
  last_migration: MigrationProgress | null;
  cleanup: CleanupProgress | null;
  clean_epoch: number;
  keys_cleaned_total: number;
  /** Expired keys this node deleted as primary, and reported keys a write had renewed first (expiry-driver.ts). */
  keys_expired: number;
  keys_renewed: number;
  etcd: { serving: boolean; controller: boolean; fence_ms_left: number } | null;
}

export function peerStatus(link: PeerLink): PeerStatus {
  return { id: link.node.id, url: link.node.url, up: link.up, last_answer_ms_ago: link.last_answer_ms_ago, ops_failed: link.ops_failed, rtt_ms: link.rtt_ms };
}

export function replicationStatus(replicator: Replicator, promotion: Promotion, view: ClusterView): ReplicationStatus {
  const r = replicator;
  const log = promotion.log;
  let replay_ops = 0;
  for (const sender of log.sendersLogged()) replay_ops += log.opsOf(sender);
  return {
    replicas: view.replicas ?? 1, next_replicas: view.next_replicas ?? null, min_replicas: view.min_replicas ?? 1, down: view.down ?? [],
    writes_replicated: r.writes_replicated, commits_done: r.commits_done, commits_failed: r.commits_failed,
    commits_waiting: r.commits_waiting, reads_held: r.reads_held, commit_watermark: r.watermark,
    replay_log: { bytes: log.bytes, ops: replay_ops, ops_replayed: promotion.ops_replayed, promotions: promotion.promotions },
    streams: [...r.allStreams()].map((s) => ({
      to: s.dest.id, ops_sent: s.keys_sent, ops_acked: s.keys_acked, ops_queued: s.ops_appended - s.keys_acked, failures: s.failures, failure: s.failure,
    })),
  };
}

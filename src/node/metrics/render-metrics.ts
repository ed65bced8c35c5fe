/**
 * GET /metrics: this node's state as Prometheus text (prometheus-text.ts). Everything is read
 * when scraped, from counters the node keeps anyway (partition counters in shared memory, the
 * cluster's status, RequestMetrics), so a scrape costs the node nothing between scrapes.
 * docs/OBSERVABILITY.md lists each family with its labels.
 */
import { FSYNC_BOUNDS_S, WorkerCounter } from '../../engine/packet.js';
import type { Partition } from '../../engine/partition.js';
import type { ClusterStatus } from '../../cluster/cluster-status.js';
import { ErrorCode, statusName } from '../../protocol/errors.js';
import { Op } from '../../protocol/constants.js';
import type { ConnectionProtocol } from '../request-budget.js';
import type { NodeStats } from '../stats.js';
import { POWER_TABLE } from './energy.js';
import type { NodeSampler } from './node-sampler.js';
import { PrometheusText } from './prometheus-text.js';
import { OP_SLOTS, ORIGINS, STATUS_SLOTS, type RequestMetrics } from './request-metrics.js';

export interface MetricsSource {
  stats(): NodeStats;
  readonly partitions: readonly Partition[];
  connectionsByProtocol(): Record<ConnectionProtocol, number>;
  clusterStatus(): ClusterStatus;
  readonly request_metrics: RequestMetrics | null;
  readonly sampler: NodeSampler;
}

const OP_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(Op).map(([name, code]) => [code < OP_SLOTS ? code : OP_SLOTS - 1, name.toLowerCase()]));

function opName(slot: number): string {
  return OP_NAMES.get(slot) ?? `op_${slot}`;
}

function codeName(slot: number): string {
  if (slot === STATUS_SLOTS - 1) return 'OTHER';
  const name = statusName(slot);
  // statusName answers INTERNAL for a byte it does not know: keep such bytes apart.
  return name === ErrorCode.INTERNAL && slot !== 16 ? `STATUS_${slot}` : name;
}

export function renderMetrics(source: MetricsSource): string {
  const out = new PrometheusText();
  const stats = source.stats();
  const cluster = source.clusterStatus();
  // No node label on the samples: Prometheus adds the target's `instance` to each; the node id
  // is joined from pikv_node_info (docs/OBSERVABILITY.md has the PromQL).
  const node: Record<string, string> = {};
  out.family('pikv_node_info', 'gauge', 'Always 1; its labels name the node: its cluster id and the protocol version.');
  out.sample('pikv_node_info', { node: cluster.node_id, protocol_version: stats.protocol_version }, 1);
  writeRequests(out, source.request_metrics, node);
  writePartitions(out, source.partitions, stats, node);
  writeConnections(out, source.connectionsByProtocol(), node);
  writeCluster(out, cluster, node);
  writeProcess(out, source.sampler, stats, node);
  return out.text();
}

function writeRequests(out: PrometheusText, metrics: RequestMetrics | null, node: Record<string, string>): void {
  out.family('pikv_metrics_enabled', 'gauge', 'Whether ops and latency are counted (0 with --metrics off: pikv_ops_total and pikv_request_duration_seconds are then absent).');
  out.sample('pikv_metrics_enabled', node, metrics === null ? 0 : 1);
  if (metrics === null) return;
  out.family('pikv_ops_total', 'counter', 'Ops answered, by op type and result code; origin="peer" are ops other nodes forwarded or replicated here.');
  for (const origin of ORIGINS) {
    for (let op = 0; op < OP_SLOTS; op++) {
      for (let status = 0; status < STATUS_SLOTS; status++) {
        const count = metrics.opsOf(origin, op, status);
        if (count > 0) out.sample('pikv_ops_total', { ...node, origin, op: opName(op), code: codeName(status) }, count);
      }
    }
  }
  out.family('pikv_requests_total', 'counter', 'Client requests (batches) answered.');
  out.sample('pikv_requests_total', node, metrics.requests);
  out.family('pikv_request_duration_seconds', 'histogram', 'Client request latency, from the request being read to its answer being ready.');
  out.histogram('pikv_request_duration_seconds', node, metrics.latency.bounds_s, metrics.latency.counts, metrics.latency.sum_s);
}

function writePartitions(out: PrometheusText, partitions: readonly Partition[], stats: NodeStats, node: Record<string, string>): void {
  const per = stats.per_worker;
  const gauge = (name: string, help: string, value: (w: NodeStats['per_worker'][number]) => number, type: 'gauge' | 'counter' = 'gauge'): void => {
    out.family(name, type, help);
    for (const w of per) out.sample(name, { ...node, partition: w.partition }, value(w));
  };
  gauge('pikv_keys', 'Keys held, per partition.', (w) => w.keys);
  gauge('pikv_bytes_used', 'Table bytes in use (entries, index, allocator waste), per partition.', (w) => w.bytes_used);
  gauge('pikv_bytes_reserved', 'Table bytes reserved (claimed from the arena, in use or free for reuse), per partition.', (w) => w.bytes_reserved);
  gauge('pikv_bytes_capacity', 'Table bytes the partition may use (its share of --max-memory).', (w) => w.bytes_capacity);
  gauge('pikv_ops_queued', 'Ops waiting for the partition worker.', (w) => w.ops_queued);
  gauge('pikv_worker_restarts_total', 'Times the partition worker died and was restarted on the same memory.', (w) => w.restarts, 'counter');
  gauge('pikv_out_of_memory_total', 'Writes refused with OUT_OF_MEMORY.', (w) => w.out_of_memory, 'counter');
  gauge('pikv_log_bytes', 'With --data-dir: bytes of the partition\'s live log and snapshot files.', (w) => w.disk_bytes);
  gauge('pikv_log_bytes_written_total', 'With --data-dir: bytes written to disk (logs, snapshots, headers).', (w) => w.disk_bytes_written, 'counter');
  gauge('pikv_disk_errors_total', 'With --data-dir: failed writes or fsyncs.', (w) => w.disk_errors, 'counter');
  gauge('pikv_compactions_total', 'With --data-dir: log compactions.', (w) => w.compactions, 'counter');
  // One histogram for the node: partitions' buckets added up (per-partition latency says little more, at 1/workers the samples).
  out.family('pikv_fsync_duration_seconds', 'histogram', 'With --data-dir: time of each log fdatasync, all partitions together.');
  const buckets = new Float64Array(FSYNC_BOUNDS_S.length + 1);
  let fsync_seconds = 0;
  for (const partition of partitions) {
    const c = partition.counters;
    for (let i = 0; i < buckets.length; i++) buckets[i]! += c[WorkerCounter.FSYNC_BUCKETS + i]!;
    fsync_seconds += c[WorkerCounter.FSYNC_SECONDS]!;
  }
  out.histogram('pikv_fsync_duration_seconds', node, FSYNC_BOUNDS_S, buckets, fsync_seconds);
}

function writeConnections(out: PrometheusText, by_protocol: Record<ConnectionProtocol, number>, node: Record<string, string>): void {
  out.family('pikv_connections', 'gauge', 'Open connections by protocol: ws (WebSocket clients), http, resp (Redis protocol), peer (other nodes).');
  for (const protocol of ['ws', 'http', 'resp', 'peer'] as const) out.sample('pikv_connections', { ...node, protocol }, by_protocol[protocol]);
}

function writeCluster(out: PrometheusText, cluster: ClusterStatus, node: Record<string, string>): void {
  out.family('pikv_view_epoch', 'gauge', 'Epoch of the cluster view this node routes by.').sample('pikv_view_epoch', node, cluster.epoch);
  out.family('pikv_serving', 'gauge', '1 while the node serves data ops (with etcd: it holds the view in a live session).');
  out.sample('pikv_serving', node, cluster.etcd === null || cluster.etcd.serving ? 1 : 0);
  out.family('pikv_forwarded_ops_total', 'counter', 'Ops this node forwarded to their owner.').sample('pikv_forwarded_ops_total', node, cluster.ops_forwarded);
  out.family('pikv_forwarded_frames_total', 'counter', 'Frames of forwarded ops sent to peers.').sample('pikv_forwarded_frames_total', node, cluster.frames_forwarded);
  out.family('pikv_peer_up', 'gauge', 'Whether the link to a peer is up (heartbeats answered).');
  for (const peer of cluster.peers) out.sample('pikv_peer_up', { ...node, peer: peer.id }, peer.up ? 1 : 0);
  out.family('pikv_peer_rtt_seconds', 'gauge', 'Round trip of the last answered heartbeat to a peer.');
  for (const peer of cluster.peers) if (peer.rtt_ms !== null) out.sample('pikv_peer_rtt_seconds', { ...node, peer: peer.id }, peer.rtt_ms / 1000);
  out.family('pikv_peer_ops_failed_total', 'counter', 'Forwarded ops that failed because the peer was down or too slow.');
  for (const peer of cluster.peers) out.sample('pikv_peer_ops_failed_total', { ...node, peer: peer.id }, peer.ops_failed);
  const move = cluster.migration;
  out.family('pikv_move_active', 'gauge', '1 while this node moves data for a view change.').sample('pikv_move_active', node, move === null ? 0 : 1);
  out.family('pikv_move_partitions_scanned', 'gauge', 'Data move: partitions scanned of pikv_move_partitions.').sample('pikv_move_partitions_scanned', node, move?.partitions_scanned ?? 0);
  out.family('pikv_move_partitions', 'gauge', 'Data move: partitions to scan.').sample('pikv_move_partitions', node, move?.partitions ?? 0);
  out.family('pikv_move_keys_sent', 'gauge', 'Data move: keys sent to their new owners (this move).').sample('pikv_move_keys_sent', node, move?.keys_sent ?? 0);
  out.family('pikv_move_keys_acked', 'gauge', 'Data move: keys the new owners acknowledged (this move).').sample('pikv_move_keys_acked', node, move?.keys_acked ?? 0);
  const replication = cluster.replication;
  out.family('pikv_replicas', 'gauge', 'Copies of each key the view asks for.').sample('pikv_replicas', node, replication.replicas);
  out.family('pikv_replicated_writes_total', 'counter', 'Writes copied to other replicas.').sample('pikv_replicated_writes_total', node, replication.writes_replicated);
  out.family('pikv_replication_ops_sent', 'gauge', 'Replication and re-replication streams: ops sent to a replica.');
  for (const stream of replication.streams) out.sample('pikv_replication_ops_sent', { ...node, to: stream.to }, stream.ops_sent);
  out.family('pikv_replication_ops_acked', 'gauge', 'Replication and re-replication streams: ops the replica acknowledged.');
  for (const stream of replication.streams) out.sample('pikv_replication_ops_acked', { ...node, to: stream.to }, stream.ops_acked);
  out.family('pikv_replication_ops_queued', 'gauge', 'Replication and re-replication streams: ops not yet acknowledged (the backlog).');
  for (const stream of replication.streams) out.sample('pikv_replication_ops_queued', { ...node, to: stream.to }, stream.ops_queued);
}

function writeProcess(out: PrometheusText, sampler: NodeSampler, stats: NodeStats, node: Record<string, string>): void {
  out.family('pikv_uptime_seconds', 'gauge', 'Seconds since the node started.').sample('pikv_uptime_seconds', node, stats.uptime_s);
  out.family('pikv_resident_memory_bytes', 'gauge', 'Resident set size of the node process.').sample('pikv_resident_memory_bytes', node, stats.memory.rss_bytes);
  out.family('pikv_cpu_seconds_total', 'counter', 'CPU time of the node process (main thread and partition workers).');
  const usage = process.cpuUsage();
  out.sample('pikv_cpu_seconds_total', node, (usage.user + usage.system) / 1e6);
  out.family('pikv_event_loop_lag_seconds', 'gauge', 'Main thread event-loop delay over the last second (perf_hooks.monitorEventLoopDelay).');
  out.sample('pikv_event_loop_lag_seconds', { ...node, quantile: '0.5' }, sampler.lag_p50_s);
  out.sample('pikv_event_loop_lag_seconds', { ...node, quantile: '0.99' }, sampler.lag_p99_s);
  out.sample('pikv_event_loop_lag_seconds', { ...node, quantile: '1' }, sampler.lag_max_s);
  out.family('pikv_energy_ops_per_joule', 'gauge', 'ESTIMATED ops per joule over the last 10 s on each power profile, from measured CPU seconds (docs/PERFORMANCE.md, Energy).');
  const per_joule = sampler.opsPerJoule();
  for (const profile of POWER_TABLE) {
    const value = per_joule[profile.name];
    if (value !== undefined) out.sample('pikv_energy_ops_per_joule', { ...node, profile: profile.name }, value);
  }
  out.family('pikv_energy_joules_total', 'counter', 'ESTIMATED joules used since start on each power profile, from measured CPU seconds.');
  for (const profile of POWER_TABLE) out.sample('pikv_energy_joules_total', { ...node, profile: profile.name }, Math.round(sampler.joulesSinceStart(stats.uptime_s, profile.name) * 1000) / 1000);
}

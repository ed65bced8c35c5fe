/**
 * etcd's own load, read from its Prometheus endpoint (GET <client url>/metrics): the counters
 * that say how much work the pikv nodes give it. Parsed as text (one "name{labels} value" per
 * line); series of one metric are summed unless a label filter is given.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (comments and malformed lines skipped). */
export function parsePrometheus(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    const value = Number(match[3]);
    if (Number.isFinite(value)) samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** Sum of every series of `name` whose labels include `filter`; null when no series has that name. */
export function metricSum(samples: readonly PromSample[], name: string, filter: Record<string, string> = {}): number | null {
  let sum: number | null = null;
  for (const sample of samples) {
    if (sample.name !== name) continue;
    if (Object.entries(filter).some(([key, value]) => sample.labels[key] !== value)) continue;
    sum = (sum ?? 0) + sample.value;
  }
  return sum;
}

/** The figures a scaling step reports. Counters are cumulative; the bench subtracts two snapshots. */
export interface EtcdSnapshot {
  at_ms: number;
  /** Raft proposals committed (every write: lease grants and keep-alives are not writes, puts and txns are). */
  proposals_committed: number | null;
  /** Unary gRPC calls finished (Range, Txn, Put, LeaseGrant, ...). */
  grpc_handled: number | null;
  /** gRPC messages received, streams included (lease keep-alives, watch requests). */
  grpc_msgs_received: number | null;
  /** Per gRPC method, unary calls finished. */
  grpc_handled_by_method: Record<string, number>;
  db_bytes: number | null;
}

export function etcdSnapshot(text: string, at_ms: number): EtcdSnapshot {
  const samples = parsePrometheus(text);
  const by_method: Record<string, number> = {};
  for (const sample of samples) {
    if (sample.name !== 'grpc_server_handled_total') continue;
    const method = sample.labels['grpc_method'] ?? '?';
    by_method[method] = (by_method[method] ?? 0) + sample.value;
  }
  return {
    at_ms,
    proposals_committed: metricSum(samples, 'etcd_server_proposals_committed_total'),
    grpc_handled: metricSum(samples, 'grpc_server_handled_total'),
    grpc_msgs_received: metricSum(samples, 'grpc_server_msg_received_total'),
    grpc_handled_by_method: by_method,
    // etcd 3.4 has both names; 3.5 only the first.
    db_bytes: metricSum(samples, 'etcd_mvcc_db_total_size_in_bytes') ?? metricSum(samples, 'etcd_debugging_mvcc_db_total_size_in_bytes'),
  };
}

export async function readEtcdSnapshot(client_url: string): Promise<EtcdSnapshot> {
  const response = await fetch(`${client_url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`etcd /metrics answered ${response.status}`);
  return etcdSnapshot(await response.text(), performance.now());
}

export interface EtcdRates {
  proposals_per_s: number | null;
  grpc_calls_per_s: number | null;
  grpc_msgs_per_s: number | null;
  /** The busiest methods, calls per second. */
  top_methods: Record<string, number>;
  db_bytes: number | null;
}

export function etcdRates(before: EtcdSnapshot, after: EtcdSnapshot): EtcdRates {
  const seconds = Math.max((after.at_ms - before.at_ms) / 1000, 1e-6);
  const rate = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : Math.round(((b - a) / seconds) * 10) / 10);
  const methods = Object.entries(after.grpc_handled_by_method)
    .map(([method, count]) => [method, (count - (before.grpc_handled_by_method[method] ?? 0)) / seconds] as const)
    .filter(([, per_s]) => per_s > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4);
  return {
    proposals_per_s: rate(before.proposals_committed, after.proposals_committed),
    grpc_calls_per_s: rate(before.grpc_handled, after.grpc_handled),
    grpc_msgs_per_s: rate(before.grpc_msgs_received, after.grpc_msgs_received),
    top_methods: Object.fromEntries(methods.map(([method, per_s]) => [method, Math.round(per_s * 10) / 10])),
    db_bytes: after.db_bytes,
  };
}

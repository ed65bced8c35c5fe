/**
 * The key layout of one pikv cluster in etcd, and the admin request objects kept there.
 *
 * Everything lives under `/pikv/<cluster>/`; the trailing slash keeps `/pikv/a/` and
 * `/pikv/ab/` disjoint, so several clusters share one etcd without interference (and a cluster
 * name may not contain `/`):
 *
 * - `view` — the authoritative cluster view, signed (signed-view.ts); changed only by a
 *   compare-and-swap on its mod_revision (view-store.ts).
 * - `members/<node_id>` — one per running node, bound to that node's session lease: exists
 *   exactly while the node's lease is alive (members.ts). JSON `{url, weight, started_at_ms, incarnation}`.
 * - `requests/<id>` — admin requests waiting for the controller: join, leave, remove, weight,
 *   set-replicas; one JSON object each (AdminRequest below). Not lease-bound: a request
 *   outlives the CLI that made it.
 * - `controller` — the controller election key, bound to the holder's lease (election.ts).
 */
import { REPLICAS_MAX } from '../../routing/placement.js';
import { NODE_WEIGHT_MAX } from '../../routing/ring.js';
import { ClusterEtcdError } from './errors.js';

export const KEY_ROOT = '/pikv/';
const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Node ids and request ids become key segments: no `/`, bounded length (view.ts allows 128). */
const ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

export function checkClusterName(cluster: string): string {
  if (!CLUSTER_NAME_PATTERN.test(cluster)) throw new ClusterEtcdError('BAD_CLUSTER_KEY', `cluster name "${cluster}" must be 1-64 of [A-Za-z0-9._-]`);
  return cluster;
}

export function checkKeyId(id: string, what: string): string {
  if (!ID_PATTERN.test(id)) throw new ClusterEtcdError('BAD_CLUSTER_KEY', `${what} "${id}" must be 1-128 of [A-Za-z0-9._:@-]`);
  return id;
}

export class ClusterKeys {
  readonly prefix: string;
  readonly view: string;
  readonly controller: string;
  readonly members_prefix: string;
  readonly requests_prefix: string;

  constructor(readonly cluster: string) {
    checkClusterName(cluster);
    this.prefix = `${KEY_ROOT}${cluster}/`;
    this.view = `${this.prefix}view`;
    this.controller = `${this.prefix}controller`;
    this.members_prefix = `${this.prefix}members/`;
    this.requests_prefix = `${this.prefix}requests/`;
  }

  member(node_id: string): string {
    return this.members_prefix + checkKeyId(node_id, 'node id');
  }

  request(request_id: string): string {
    return this.requests_prefix + checkKeyId(request_id, 'request id');
  }

  /** The node id of a `members/<id>` key, or null for any other key. */
  memberIdOf(key: string): string | null {
    return key.startsWith(this.members_prefix) ? key.slice(this.members_prefix.length) || null : null;
  }

  requestIdOf(key: string): string | null {
    return key.startsWith(this.requests_prefix) ? key.slice(this.requests_prefix.length) || null : null;
  }
}

/** What a `members/<id>` key holds. `started_at_ms` is wall-clock (Date.now()), for display only. */
export interface MemberInfo {
  url: string;
  weight: number;
  started_at_ms: number;
  /** A random id per process start: the controller admits it into the view, and a new one means a restart. */
  incarnation?: string | undefined;
  /** The node's table memory (--max-memory): the controller refuses changes that would overfill it. */
  bytes_capacity?: number | undefined;
}

/** What a `clean/<id>` key holds: the epoch the node is clean at, and its table memory then. */
export interface CleanReport {
  epoch: number;
  bytes_used: number;
  bytes_capacity: number;
}

/** Reads a clean report; a bare epoch (written by the previous version) has no memory figures. */
export function parseCleanReport(value: string | undefined): CleanReport | null {
  if (value === undefined) return null;
  try {
    const parsed = JSON.parse(value) as unknown;
    if (typeof parsed === 'number') return { epoch: parsed, bytes_used: 0, bytes_capacity: 0 };
    const report = parsed as Partial<CleanReport>;
    if (typeof report.epoch !== 'number') return null;
    return { epoch: report.epoch, bytes_used: Number(report.bytes_used) || 0, bytes_capacity: Number(report.bytes_capacity) || 0 };
  } catch {
    return null;
  }
}

export type AdminRequest =
  | { kind: 'join'; node_id: string; url: string; weight: number }
  | { kind: 'leave'; node_id: string }
  | { kind: 'remove'; node_id: string }
  | { kind: 'weight'; node_id: string; weight: number }
  | { kind: 'set-replicas'; replicas: number }
  | { kind: 'set-min-replicas'; min_replicas: number };

function fail(message: string): never {
  throw new ClusterEtcdError('BAD_CLUSTER_KEY', message);
}

/** Validates a request read from etcd (anyone with write access to etcd can put one). */
export function checkAdminRequest(value: unknown): AdminRequest {
  if (value === null || typeof value !== 'object') fail('an admin request must be a JSON object');
  const request = value as Record<string, unknown>;
  const nodeId = (): string => (typeof request.node_id === 'string' ? checkKeyId(request.node_id, 'node id') : fail('node_id must be a string'));
  const positive = (field: string, max: number): number => {
    const n = request[field];
    return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= max ? n : fail(`${field} must be an integer 1..${max}`);
  };
  switch (request.kind) {
    case 'join':
      if (typeof request.url !== 'string' || !/^wss?:\/\//.test(request.url)) fail('join: url must be ws://host:port');
      return { kind: 'join', node_id: nodeId(), url: request.url, weight: positive('weight', NODE_WEIGHT_MAX) };
    case 'leave':
    case 'remove':
      return { kind: request.kind, node_id: nodeId() };
    case 'weight':
      return { kind: 'weight', node_id: nodeId(), weight: positive('weight', NODE_WEIGHT_MAX) };
    case 'set-replicas':
      return { kind: 'set-replicas', replicas: positive('replicas', REPLICAS_MAX) };
    case 'set-min-replicas':
      return { kind: 'set-min-replicas', min_replicas: positive('min_replicas', REPLICAS_MAX) };
    default:
      return fail(`unknown admin request kind ${JSON.stringify(request.kind)}`);
  }
}

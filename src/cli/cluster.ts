/**
 * `pikv cluster status|join|leave|remove|set-replicas|set-min-replicas|set`: look at and change the membership of a cluster.
 *
 * status needs no secret; join, leave and remove are admin ops that prove the cluster secret
 * ($PIKV_CLUSTER_SECRET or --cluster-secret-file; never argv, where ps shows it) and wait until the change has finished moving
 * data (the view has no `next` and shows the change) or --wait-ms passes. A change refused
 * with CLUSTER_BUSY (another change moving data, or nodes still deleting old copies after the
 * last one) is asked again until it is accepted or --wait-ms passes.
 */
import { REPLICAS_MAX, type Placement } from '../routing/placement.js';
import { RING_SLOTS } from '../routing/ring.js';
import { connect, type PikvClient } from '../client/client.js';
import { readSecretFile } from '../protocol/auth.js';
import { single } from '../cluster/peer-link.js';
import { ViewRings, type ClusterView } from '../routing/view.js';
import { WireCodec } from '../protocol/codec.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError, statusName } from '../protocol/errors.js';

const codec = new WireCodec();
const EMPTY = new Uint8Array(0);
const STATUS_TIMEOUT_MS = 2_000;
const POLL_MS = 200;

/** How the CLI names itself in the peer handshake (the node logs it). */
const ADMIN_ID = 'admin';

interface TokenOptions {
  clientTokenFile?: string;
}

interface AdminOptions extends TokenOptions {
  url: string;
  clusterSecretFile?: string;
  waitMs: string;
}

const warn = (message: string): void => {
  process.stderr.write(`pikv: warning: ${message}\n`);
};

/** The client token: --client-token-file, else $PIKV_CLIENT_TOKEN, else none. */
function tokenOf(options: TokenOptions): string {
  if (options.clientTokenFile !== undefined) return readSecretFile(options.clientTokenFile, 'client token', warn);
  return process.env['PIKV_CLIENT_TOKEN'] ?? '';
}

export interface NodeStatus {
  node_id: string;
  epoch: number;
  view: ClusterView;
  keys: number;
  peers: { id: string; up: boolean; last_answer_ms_ago: number | null }[];
  migration: null | { state: string; ranges_moving: number; partitions_scanned: number; partitions: number; keys_sent: number; keys_acked: number; bytes_sent: number; failure: string | null };
  cleanup?: null | { epoch: number; state: string; partitions_scanned: number; partitions: number; keys_deleted: number };
  clean_epoch?: number;
  keys_cleaned_total?: number;
  /** etcd mode only: whether the node serves (it holds the view in a live etcd session) and whether it is the controller. */
  etcd?: null | { serving: boolean; controller: boolean };
}

/** The clean-up column: `clean` once the node holds no key outside its ranges at its epoch. */
function cleanupText(status: NodeStatus | null): string {
  if (status === null || status.clean_epoch === undefined) return '-';
  const total = status.keys_cleaned_total ?? 0;
  if (status.clean_epoch === status.epoch) return `clean (deleted ${total})`;
  const c = status.cleanup;
  return c ? `${c.state} partitions ${c.partitions_scanned}/${c.partitions} deleted ${c.keys_deleted}` : 'not clean';
}

async function ask(client: PikvClient, op: number, payload: Uint8Array = EMPTY): Promise<unknown> {
  const reply = await client.batchColumns(single(op, payload));
  const status = reply.status[0]!;
  if (status !== Status.OK) throw new PikvError(statusName(status) === 'OK' ? ErrorCode.INTERNAL : (statusName(status) as never));
  return codec.decodeValue(reply.values);
}

/** One node's CLUSTER_STATUS; `pikv dev-cluster` uses it to see when a cluster has settled. */
export async function nodeStatus(url: string, token: string): Promise<NodeStatus> {
  const client = await connect(url, { connect_timeout_ms: STATUS_TIMEOUT_MS, request_timeout_ms: STATUS_TIMEOUT_MS, token });
  try {
    return (await ask(client, Op.CLUSTER_STATUS)) as NodeStatus;
  } finally {
    await client.close();
  }
}

export async function runClusterStatus(options: TokenOptions & { url: string; json?: boolean }): Promise<void> {
  const token = tokenOf(options);
  const here = await nodeStatus(options.url, token);
  const view = here.view;
  const members = [...view.nodes, ...(view.next ?? []).filter((n) => !view.nodes.some((m) => m.id === n.id))];
  const statuses = await Promise.all(members.map((node) => nodeStatus(node.url, token).catch(() => null)));
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ asked: here.node_id, view, nodes: members.map((node, i) => ({ ...node, status: statuses[i] })) }, null, 2)}\n`);
    return;
  }
  const replicas = `  replicas ${view.replicas ?? 1}${view.next_replicas !== undefined && view.next_replicas !== view.replicas ? ` -> ${view.next_replicas}` : ''}  min_replicas ${view.min_replicas ?? 1}`;
  const down = view.down !== undefined && view.down.length > 0 ? `  down ${view.down.join(',')}` : '';
  const lines = [`epoch ${view.epoch}${view.next ? `  (changing: ${view.nodes.map((n) => n.id).join(',')} -> ${view.next.map((n) => n.id).join(',')})` : ''}${replicas}${down}  asked ${here.node_id}`, ''];
  lines.push('node         url                          state   epoch         keys  clean-up                  data move');
  members.forEach((node, i) => {
    const status = statuses[i];
    const seen = here.node_id === node.id ? true : here.peers.find((p) => p.id === node.id)?.up ?? false;
    const state = view.down?.includes(node.id) === true ? (status === null ? 'down' : 'back') : status === null ? 'down' : seen ? 'up' : 'up?';
    const role = view.nodes.some((n) => n.id === node.id) ? '' : ' (joining)';
    const move = status?.migration
      ? `${status.migration.state} ranges ${status.migration.ranges_moving} partitions ${status.migration.partitions_scanned}/${status.migration.partitions} keys ${status.migration.keys_acked}/${status.migration.keys_sent} bytes ${status.migration.bytes_sent}${status.migration.failure ? ` FAILED: ${status.migration.failure}` : ''}`
      : '-';
    lines.push(`${(node.id + role).padEnd(12)} ${node.url.padEnd(28)} ${state.padEnd(7)} ${String(status?.epoch ?? '-').padStart(5)} ${String(status?.keys ?? '-').padStart(12)}  ${cleanupText(status ?? null).padEnd(25)} ${move}`);
  });
  lines.push('', copiesText(view));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** How many slots have how many live copies, now and after the change in progress (docs/REPLICATION.md). */
function copiesText(view: ClusterView): string {
  const rings = new ViewRings(view);
  const count = (placement: Placement | null): string => {
    if (placement === null) return 'no nodes';
    const by_copies = new Map<number, number>();
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      const live = placement.inSync(slot).length;
      by_copies.set(live, (by_copies.get(live) ?? 0) + 1);
    }
    return [...by_copies].sort((a, b) => b[0] - a[0]).map(([copies, slots]) => {
      const note = copies === 0 ? ' (unavailable: every copy down)'
        : copies < placement.min_replicas ? ' (under-replicated, below min_replicas: writes refused)'
        : copies < placement.replicas ? ' (under-replicated)' : '';
      return `${slots} slots with ${copies} live ${copies === 1 ? 'copy' : 'copies'}${note}`;
    }).join(', ');
  };
  const now = `copies: ${count(rings.current)} (of ${RING_SLOTS} slots, ${rings.current?.replicas ?? 0} wanted)`;
  return rings.target === null ? now : `${now}\nafter the change: ${count(rings.target)}`;
}

function secretOf(options: AdminOptions): string {
  if (options.clusterSecretFile !== undefined) return readSecretFile(options.clusterSecretFile, 'cluster secret', warn);
  const secret = process.env['PIKV_CLUSTER_SECRET'] ?? '';
  if (secret === '') throw new PikvError(ErrorCode.AUTH_FAILED, 'admin ops need the cluster secret: set PIKV_CLUSTER_SECRET or give --cluster-secret-file FILE');
  return secret;
}

async function admin(options: AdminOptions, payload: Record<string, unknown>, done: (view: ClusterView) => boolean): Promise<void> {
  const client = await connect(options.url, { peer: { secret: secretOf(options), node_id: ADMIN_ID, channel: 'control' }, token: tokenOf(options) });
  try {
    const deadline_ms = Date.now() + Number(options.waitMs);
    let reply: { epoch: number };
    for (let busy_said = false; ; busy_said = true) {
      try {
        reply = (await ask(client, Op.CLUSTER_ADMIN, codec.encodeValue(payload))) as { epoch: number };
        break;
      } catch (error) {
        if ((error as PikvError).code !== ErrorCode.CLUSTER_BUSY || Date.now() > deadline_ms) throw error;
        if (!busy_said) process.stdout.write('cluster busy (a change or a clean-up is running); asking again\n');
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
    const queued = (reply as { queued?: boolean }).queued === true;
    process.stdout.write(queued
      ? `${String(payload['action'])} requested (etcd); the controller carries it out after any change ahead of it; waiting\n`
      : `${String(payload['action'])} accepted at epoch ${reply.epoch}; waiting for data to move\n`);
    for (;;) {
      const view = (await ask(client, Op.RING)) as ClusterView;
      if (view.next === undefined && view.epoch >= reply.epoch && (done(view) || !queued)) {
        if (!done(view)) throw new PikvError(ErrorCode.CLUSTER_BUSY, `the change was overtaken by another one (epoch ${view.epoch}); check pikv cluster status`);
        process.stdout.write(`done: epoch ${view.epoch}, nodes ${view.nodes.map((n) => n.id).join(',')}\n`);
        return;
      }
      if (Date.now() > deadline_ms) throw new PikvError(ErrorCode.TIMEOUT, `the change has not finished after ${options.waitMs} ms; see pikv cluster status`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    await client.close();
  }
}

export async function runClusterJoin(id: string, url: string, options: AdminOptions & { weight?: string }): Promise<void> {
  const node = { id, url, weight: Number(options.weight ?? 1) };
  await admin(options, { action: 'join', node }, (view) => view.nodes.some((n) => n.id === id));
}

export async function runClusterLeave(id: string | undefined, options: AdminOptions): Promise<void> {
  const target = id ?? (await nodeStatus(options.url, tokenOf(options))).node_id;
  await admin(options, { action: 'leave', id: target }, (view) => !view.nodes.some((n) => n.id === target));
}

export async function runClusterRemove(id: string, options: AdminOptions & { force?: boolean }): Promise<void> {
  await admin(options, { action: 'remove', id, ...(options.force === true ? { force: true } : {}) }, (view) => !view.nodes.some((n) => n.id === id));
}

export async function runClusterSetMinReplicas(n: string, options: AdminOptions): Promise<void> {
  const min_replicas = Number(n);
  if (!Number.isInteger(min_replicas) || min_replicas < 1 || min_replicas > REPLICAS_MAX) throw new PikvError(ErrorCode.BAD_OP, `min-replicas must be a whole number from 1 to ${REPLICAS_MAX}`);
  await admin(options, { action: 'set-min-replicas', min_replicas }, (view) => (view.min_replicas ?? 1) === min_replicas);
}

export async function runClusterSetReplicas(n: string, options: AdminOptions): Promise<void> {
  const replicas = Number(n);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > REPLICAS_MAX) throw new PikvError(ErrorCode.BAD_OP, `replicas must be a whole number from 1 to ${REPLICAS_MAX}`);
  await admin(options, { action: 'set-replicas', replicas }, (view) => (view.replicas ?? 1) === replicas);
}

/** The settings `pikv cluster set NAME VALUE` changes (the issue's spelling of set-replicas and set-min-replicas). */
const CLUSTER_SETTINGS: Readonly<Record<string, (value: string, options: AdminOptions) => Promise<void>>> = {
  'replicas': runClusterSetReplicas,
  'min-replicas': runClusterSetMinReplicas,
  'min_replicas': runClusterSetMinReplicas,
};

export async function runClusterSet(name: string, value: string, options: AdminOptions): Promise<void> {
  const run = CLUSTER_SETTINGS[name];
  if (run === undefined) throw new PikvError(ErrorCode.BAD_OP, `unknown cluster setting ${JSON.stringify(name)}; settings: replicas, min-replicas`);
  await run(value, options);
}


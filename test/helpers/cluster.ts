/**
 * Starts pikv cluster nodes for tests (each a real `pikv serve` process on an ephemeral
 * loopback port, see server-process.ts) and waits for views to settle.
 */
import { connect } from '../../src/client/client.js';
import { Op, Status } from '../../src/protocol/constants.js';
import { WireCodec } from '../../src/protocol/codec.js';
import type { ClusterView } from '../../src/routing/view.js';
import { startServer, type ServerProcess } from './server-process.js';
import { delay } from './raw-socket.js';

export const SECRET = 'test-secret';
const codec = new WireCodec();

export function startNode(id: string, join: string[] = [], extra: string[] = []): Promise<ServerProcess> {
  const args = ['--workers', '2', '--max-memory', '64mb', '--node-id', id, '--heartbeat-interval-ms', '100', '--forward-timeout-ms', '2000', ...extra];
  if (join.length > 0) args.push('--join', join.join(','));
  // The secret travels in the environment: argv shows in ps, and pikv refuses it there.
  return startServer(args, { PIKV_CLUSTER_SECRET: SECRET });
}

export async function clusterOp(url: string, op: number): Promise<unknown> {
  const client = await connect(url, { connect_timeout_ms: 2_000, request_timeout_ms: 2_000 });
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(op), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    if (reply.status[0] !== Status.OK) throw new Error(`op ${op}: status ${reply.status[0]}`);
    return codec.decodeValue(reply.values);
  } finally {
    await client.close();
  }
}

export function ringOf(url: string): Promise<ClusterView> {
  return clusterOp(url, Op.RING) as Promise<ClusterView>;
}

/** Waits until every node at `urls` shows a settled view of exactly `ids`. */
export async function waitForMembers(urls: string[], ids: string[], timeout_ms = 20_000): Promise<ClusterView> {
  const deadline_ms = Date.now() + timeout_ms;
  const wanted = [...ids].sort().join(',');
  for (;;) {
    const views = await Promise.all(urls.map((url) => ringOf(url).catch(() => null)));
    const settled = views.every((view) => view !== null && view.next === undefined && view.nodes.map((n) => n.id).sort().join(',') === wanted);
    if (settled && new Set(views.map((view) => view!.epoch)).size === 1) return views[0]!;
    if (Date.now() > deadline_ms) throw new Error(`views did not settle on ${wanted}: ${JSON.stringify(views)}`);
    await delay(100);
  }
}

/** Waits until every node at `urls` holds no key outside its ranges at its current epoch (cleanup.ts). */
export async function waitForClean(urls: string[], timeout_ms = 20_000): Promise<{ keys: number; epoch: number; clean_epoch: number }[]> {
  const deadline_ms = Date.now() + timeout_ms;
  for (;;) {
    const statuses = (await Promise.all(urls.map((url) => clusterOp(url, Op.CLUSTER_STATUS)))) as { keys: number; epoch: number; clean_epoch: number }[];
    if (statuses.every((s) => s.clean_epoch === s.epoch)) return statuses;
    if (Date.now() > deadline_ms) throw new Error(`clean-up did not finish: ${JSON.stringify(statuses.map((s) => [s.epoch, s.clean_epoch]))}`);
    await delay(100);
  }
}

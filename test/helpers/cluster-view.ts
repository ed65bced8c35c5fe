/**
 * Reading a node's cluster view and status for cluster tests: one control op over a fresh
 * client, and waits for a settled view with given members.
 */
import { connect, Op, WireCodec, type ClientOptions } from '../../src/index.js';
import type { ClusterView } from '../../src/routing/view.js';
import { waitFor } from './raw-socket.js';

const codec = new WireCodec();

/** Sends one control op (RING, CLUSTER_STATUS) and decodes its value. */
export async function askNode(url: string, op: number, options: ClientOptions = {}): Promise<unknown> {
  const client = await connect(url, { connect_timeout_ms: 2_000, request_timeout_ms: 2_000, ...options });
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(op), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    return codec.decodeValue(reply.values);
  } finally {
    await client.close();
  }
}

export function viewOf(url: string, options: ClientOptions = {}): Promise<ClusterView> {
  return askNode(url, Op.RING, options) as Promise<ClusterView>;
}

/** Waits until `url` routes by a settled view (no move in progress) whose members are exactly `ids`. */
export function waitForView(url: string, ids: string[], timeout_ms = 30_000): Promise<ClusterView> {
  return waitForSettledView(url, ids, false, timeout_ms);
}

/** As waitForView, and no member is marked down either (e.g. a node removed after its grace, its copies rebuilt). */
export function waitForHealthyView(url: string, ids: string[], timeout_ms = 30_000): Promise<ClusterView> {
  return waitForSettledView(url, ids, true, timeout_ms);
}

function waitForSettledView(url: string, ids: string[], none_down: boolean, timeout_ms: number): Promise<ClusterView> {
  const want = [...ids].sort().join(',');
  return waitFor(async () => {
    const view = await viewOf(url).catch(() => null);
    if (view === null || view.next !== undefined || (none_down && (view.down?.length ?? 0) > 0)) return null;
    return view.nodes.map((n) => n.id).sort().join(',') === want ? view : null;
  }, timeout_ms);
}

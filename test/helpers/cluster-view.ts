/**
 * Reading a node's cluster view and status for cluster tests: one control op over a fresh
 * client, and a wait for a settled view with given members.
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
  const want = [...ids].sort().join(',');
  return waitFor(async () => {
    const view = await viewOf(url).catch(() => null);
    return view !== null && view.next === undefined && view.nodes.map((n) => n.id).sort().join(',') === want ? view : null;
  }, timeout_ms);
}

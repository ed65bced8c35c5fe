/**
 * Limits of authenticated peer connections, apart from the clients' (docs/CLUSTER.md, "Peer
 * links").
 *
 * A node's link to a peer is two connections: a data channel (forwarded client ops,
 * replication and data-move frames) and a control channel (heartbeats and the small
 * membership ops). Neither counts against node_inflight_bytes_max, the budget of
 * the node's own clients: when it did, two nodes forwarding to each other at full load paused
 * each other's peer connections (each node's budget was full of its clients' requests waiting
 * on the other), every forwarded frame timed out, and each showed the other down
 * (test/peer-load.test.ts). Each peer connection has its own in-flight byte budget instead:
 * peer_inflight_bytes_max for a data channel, CONTROL_INFLIGHT_BYTES_MAX for a control channel.
 *
 * A control channel carries only CONTROL_OPS, in frames of at most CONTROL_FRAME_BYTES_MAX, so
 * what it can make a node hold stays small, and nothing bulky can ride on it and delay a
 * heartbeat.
 */
import { Op } from '../protocol/constants.js';
import type { BudgetHost } from './request-budget.js';

/** Ops a control channel accepts: none reads or writes keys, all are answered on the main thread. */
export const CONTROL_OPS: ReadonlySet<number> = new Set<number>([
  Op.PING, Op.STATS, Op.RING, Op.CLUSTER_STATUS, Op.CLUSTER_HEARTBEAT, Op.CLUSTER_VIEW, Op.CLUSTER_ADMIN, Op.CLUSTER_DRAINED,
]);
/** The largest control frame: a view of RING_NODES_MAX members is a few tens of KiB. */
export const CONTROL_FRAME_BYTES_MAX = 1024 * 1024;
/** Unanswered requests on one control connection (a link has one heartbeat in flight; gossip pushes a few views). */
export const CONTROL_REQUESTS_INFLIGHT_MAX = 64;
/** Request bytes one control connection may have in flight before it is not read. */
export const CONTROL_INFLIGHT_BYTES_MAX = 4 * CONTROL_FRAME_BYTES_MAX;
/** Response bytes queued for one control connection before it is not read (answers are views at most). */
export const CONTROL_SEND_BYTES_MAX = 4 * CONTROL_FRAME_BYTES_MAX;

/**
 * One peer connection's own in-flight byte budget. It stands in for the node in the
 * connection's RequestBudget: its bytes are not the node's, and only this connection pauses
 * when they pass `bytes_max`. Finished requests still tell the node, so that every paused
 * connection (client or peer) is looked at again.
 */
export class PeerBudgetHost implements BudgetHost {
  inflight_bytes = 0;
  readonly bytes_max: number;
  private readonly node: BudgetHost;

  constructor(node: BudgetHost, bytes_max: number) {
    if (!(bytes_max > 0)) throw new Error(`peer in-flight budget must be positive, got ${bytes_max}`);
    this.node = node;
    this.bytes_max = bytes_max;
  }

  overBudget(): boolean {
    return this.inflight_bytes >= this.bytes_max;
  }

  onRequestDone(): void {
    this.node.onRequestDone();
  }
}

/**
 * The contract between the dispatcher (src/node/) and whatever routes ops across nodes
 * (src/cluster/cluster-node.ts). It lives in the engine so that both import it downwards:
 * the cluster implements it, the node front calls it.
 */
import type { RequestBatch } from '../protocol/codec.js';
import type { OpRef } from './op-ref.js';
import type { PendingRequest } from './pending-request.js';

/**
 * The cluster's hook (src/cluster/cluster-node.ts): with `routes`, every data op is offered to
 * route() before a partition is chosen, and ops the dispatcher does not know to settleOp().
 */
export interface OpRouter {
  readonly routes: boolean;
  /** True when ops on this key hash execute on this node (the fast path may read it). */
  isLocal(hash: number): boolean;
  /** Takes the op if it does not execute here (forwarded, refused, held); false lets it run locally. */
  route(ref: OpRef, batch: RequestBatch): boolean;
  /** False when this node may not answer now (its lease fence ran out): outcomes become unknown. */
  answerable(): boolean;
  /** Answers cluster ops (RING, ...); false for ops it does not know. */
  settleOp(request: PendingRequest, index: number, op: number, batch: RequestBatch, key_offset: number, key_length: number, value_length: number): boolean;
}

/**
 * Forwards ops this node does not own to their owners: one frame per destination per
 * event-loop turn (like the dispatcher's one packet per worker per turn), each carrying this
 * node's ring epoch so the owner can refuse with STALE_RING if the views disagree. The
 * owner's per-op results settle the original requests by op index, so a client's reply
 * keeps request order whatever mix of local and forwarded ops it held.
 *
 * Ops for a peer that is down settle at once with NODE_DOWN; a frame the peer does not
 * answer within forward_timeout_ms (the link's request timeout) settles NODE_DOWN too.
 */
import { Status } from '../protocol/constants.js';
import { ErrorCode, type PikvError } from '../protocol/errors.js';
import type { PendingRequest } from '../server/pending-request.js';
import { failBatch, OutBatch, settleBatch } from './out-batch.js';
import type { PeerLink } from './peer-link.js';
import type { RingNode } from './ring.js';

const PEER_FAILURES: ReadonlySet<string> = new Set([ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST, ErrorCode.NODE_DOWN, ErrorCode.CLIENT_CLOSED]);

export class Forwarder {
  ops_forwarded = 0;
  frames_forwarded = 0;
  private readonly pending = new Map<string, OutBatch>();
  private flush_scheduled = false;
  private readonly links: (id: string) => PeerLink | undefined;
  private readonly epoch: () => number;

  constructor(links: (id: string) => PeerLink | undefined, epoch: () => number) {
    this.links = links;
    this.epoch = epoch;
  }

  forward(owner: RingNode, request: PendingRequest, index: number, op: number, keys: Uint8Array, key_offset: number, key_length: number, values: Uint8Array, value_offset: number, value_length: number): void {
    const link = this.links(owner.id);
    if (link === undefined || !link.up) {
      if (link !== undefined) link.ops_failed++;
      request.settle(index, Status.NODE_DOWN);
      return;
    }
    let batch = this.pending.get(owner.id);
    if (batch === undefined) {
      batch = new OutBatch();
      this.pending.set(owner.id, batch);
    }
    batch.add(request, index, op, keys, key_offset, key_length, values, value_offset, value_length);
    if (batch.full) {
      this.pending.delete(owner.id);
      this.send(link, batch);
    } else if (!this.flush_scheduled) {
      this.flush_scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flush_scheduled = false;
    for (const [id, batch] of this.pending) {
      this.pending.delete(id);
      const link = this.links(id);
      if (link === undefined) failBatch(batch, Status.NODE_DOWN);
      else this.send(link, batch);
    }
  };

  private send(link: PeerLink, batch: OutBatch): void {
    this.ops_forwarded += batch.op_count;
    this.frames_forwarded++;
    link.send({ ...batch.columns(), ring_epoch: this.epoch() }).then(
      (results) => settleBatch(batch, results.status, results.value_lengths, results.values),
      (error: PikvError) => {
        link.ops_failed += batch.op_count;
        failBatch(batch, PEER_FAILURES.has(error.code) ? Status.NODE_DOWN : Status.INTERNAL);
      },
    );
  }
}

/**
 * Forwards ops this node does not own to their owners: one frame per destination per
 * event-loop turn (like the dispatcher's one packet per worker per turn), each carrying this
 * node's ring epoch so the owner can refuse with STALE_RING if the views disagree. The
 * owner's per-op results settle the original requests by op index, so a client's reply
 * keeps request order whatever mix of local and forwarded ops it held.
 *
 * Ops for a peer that is down settle at once with NODE_DOWN; a frame the peer does not
 * answer within forward_timeout_ms (the link's request timeout) settles NODE_DOWN too.
 *
 * During a view change the owner may refuse a forwarded op with STALE_RING when the views
 * disagree (it did not apply it). Plain clients cannot act on that, so the op is sent again
 * after FORWARD_RETRY_DELAY_MS to whoever owns it in this node's view by then, up to
 * FORWARD_RETRIES_MAX times (2 s: a few heartbeats, which is how fast views converge); only then,
 * or if this node now owns it itself, does STALE_RING reach the client.
 */
import { Status } from '../protocol/constants.js';
import { VALUE_CODECS_KNOWN_MASK } from '../protocol/value-codec.js';
import { ErrorCode, type PikvError } from '../protocol/errors.js';
import type { OpRef } from '../engine/op-ref.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import { failBatch, OutBatch, settleBatch } from './out-batch.js';
import type { PeerLink } from './peer-link.js';
import type { RingNode } from '../routing/ring.js';

const PEER_FAILURES: ReadonlySet<string> = new Set([ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST, ErrorCode.NODE_DOWN, ErrorCode.CLIENT_CLOSED]);
const FORWARD_RETRIES_MAX = 20;
const FORWARD_RETRY_DELAY_MS = 100;

/** The owner of a key hash in this node's current view, or null if this node owns it. */
export type OwnerLookup = (hash: number) => RingNode | null;

export class Forwarder {
  ops_forwarded = 0;
  frames_forwarded = 0;
  private readonly pending = new Map<string, OutBatch>();
  private flush_scheduled = false;
  private readonly links: (id: string) => PeerLink | undefined;
  private readonly epoch: () => number;
  private readonly ownerOf: OwnerLookup;
  /** Ops sent again after a STALE_RING refusal, ever. */
  ops_resent = 0;

  constructor(links: (id: string) => PeerLink | undefined, epoch: () => number, ownerOf: OwnerLookup) {
    this.links = links;
    this.epoch = epoch;
    this.ownerOf = ownerOf;
  }

  /** Queues `ref` (its request must be set) for `owner`; its bytes are copied. */
  forward(owner: RingNode, ref: OpRef): void {
    const link = this.links(owner.id);
    if (link === undefined || !link.up) {
      if (link !== undefined) link.ops_failed++;
      ref.request!.settle(ref.index, Status.NODE_DOWN);
      return;
    }
    let batch = this.pending.get(owner.id);
    if (batch === undefined) {
      batch = new OutBatch();
      this.pending.set(owner.id, batch);
    }
    batch.add(ref);
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
    // `ac`: results come back as stored (compressed values stay compressed over the link); the
    // dispatcher decodes them here only for a client that did not announce the codec.
    link.send({ ...batch.columns(), ring_epoch: this.epoch(), accept_codecs: VALUE_CODECS_KNOWN_MASK }).then(
      (results) => settleBatch(batch, results.status, results.value_lengths, results.values, this.holdStale(batch, results.status), results.value_codec),
      (error: PikvError) => {
        link.ops_failed += batch.op_count;
        failBatch(batch, PEER_FAILURES.has(error.code) ? Status.NODE_DOWN : Status.INTERNAL);
      },
    );
  }

  /** Marks the ops refused with STALE_RING that may be sent again, and schedules that; null if none. */
  private holdStale(batch: OutBatch, status: Uint8Array): Uint8Array | null {
    let held: Uint8Array | null = null;
    for (let i = 0; i < batch.op_count && i < status.length; i++) {
      if (status[i] !== Status.STALE_RING || batch.owners[i] === null || batch.attempts[i]! >= FORWARD_RETRIES_MAX) continue;
      held ??= new Uint8Array(batch.op_count);
      held[i] = 1;
    }
    if (held !== null) {
      const retry = held;
      setTimeout(() => this.resend(batch, retry), FORWARD_RETRY_DELAY_MS).unref();
    }
    return held;
  }

  private resend(batch: OutBatch, held: Uint8Array): void {
    let i = 0;
    batch.eachOp((ref) => {
      if (held[i++] !== 1) return;
      const owner = this.ownerOf(murmur3_x86_32(ref.keys, ref.key_offset, ref.key_length, KEY_HASH_SEED));
      if (owner === null) {
        ref.request!.settle(ref.index, Status.STALE_RING);
      } else {
        this.ops_resent++;
        ref.attempt++;
        this.forward(owner, ref);
      }
    });
  }

  /**
   * Sends ops a sealed range held (migration.ts) to the range's new owner, in the order they
   * arrived; ops of clients that have gone are dropped (they were never executed).
   */
  forwardHeld(dest: RingNode, held: OutBatch): void {
    held.eachOp((ref) => {
      if (ref.request !== null && !ref.request.cancelled) this.forward(dest, ref);
    });
  }
}

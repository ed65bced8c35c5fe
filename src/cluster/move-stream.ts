/**
 * The ordered stream of data-move ops from this node to one new owner during a membership
 * change: scanned entries, writes captured after they were applied here, and (after the
 * hand-off switch) client ops for the moved ranges, all in one FIFO of frames marked `mg`.
 *
 * One FIFO on one WebSocket is what makes the move safe: the receiver applies frames in the
 * order they were sent, so a captured write always lands after any older scanned value of
 * its key, and a handed-off op after every write this node applied before the switch.
 * At most STREAM_FRAMES_INFLIGHT_MAX frames are unanswered; the scan waits while the
 * stream is congested (captured writes and handed-off ops are never dropped).
 */
import { Status } from '../protocol/constants.js';
import { failBatch, OutBatch, settleBatch } from './out-batch.js';
import type { PeerLink } from './peer-link.js';
import type { RingNode } from '../routing/ring.js';

export const STREAM_FRAMES_INFLIGHT_MAX = 4;

export class MoveStream {
  readonly dest: RingNode;
  keys_sent = 0;
  bytes_sent = 0;
  keys_acked = 0;
  /** Set on the first failed frame; the migration decides what to do (migration.ts). */
  failure: string | null = null;
  private readonly queue: OutBatch[] = [new OutBatch()];
  private frames_inflight = 0;
  private readonly link: () => PeerLink | undefined;
  private readonly onChange: () => void;

  constructor(dest: RingNode, link: () => PeerLink | undefined, onChange: () => void) {
    this.dest = dest;
    this.link = link;
    this.onChange = onChange;
  }

  /** The batch to append to; a full one is closed and a new one started. */
  get tail(): OutBatch {
    let tail = this.queue[this.queue.length - 1]!;
    if (tail.full) {
      tail = new OutBatch();
      this.queue.push(tail);
    }
    return tail;
  }

  get congested(): boolean {
    return this.frames_inflight >= STREAM_FRAMES_INFLIGHT_MAX || this.queue.length > 2;
  }

  /** Nothing queued and nothing unanswered: everything sent so far is applied at the destination. */
  get idle(): boolean {
    return this.frames_inflight === 0 && this.queue.length === 1 && this.queue[0]!.op_count === 0;
  }

  flush(): void {
    // A link not up yet (just created for a joining node) or briefly down: keep the queue, in order.
    if (this.link()?.up !== true) return;
    while (this.frames_inflight < STREAM_FRAMES_INFLIGHT_MAX && this.queue[0]!.op_count > 0) {
      const batch = this.queue.shift()!;
      if (this.queue.length === 0) this.queue.push(new OutBatch());
      this.send(batch);
    }
  }

  private send(batch: OutBatch): void {
    const link = this.link();
    if (link === undefined || !link.up) {
      this.fail(batch, `node ${this.dest.id} is down`);
      return;
    }
    this.frames_inflight++;
    this.keys_sent += batch.op_count;
    this.bytes_sent += batch.bytes;
    link.send({ ...batch.columns(), migrate: true }).then(
      (results) => {
        this.frames_inflight--;
        const failed = settleBatch(batch, results.status, results.value_lengths, results.values);
        this.keys_acked += batch.op_count - failed;
        if (failed > 0) this.failure ??= `${failed} moved ops failed at ${this.dest.id} (e.g. OUT_OF_MEMORY)`;
        this.flush();
        this.onChange();
      },
      (error: Error) => {
        this.frames_inflight--;
        this.fail(batch, error.message);
      },
    );
  }

  private fail(batch: OutBatch, reason: string): void {
    failBatch(batch, Status.NODE_DOWN);
    this.failure ??= reason;
    this.onChange();
  }
}

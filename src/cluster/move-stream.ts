/**
 * The ordered stream of data-move ops from this node to one new owner during a membership
 * change: scanned entries, writes captured after they were applied here, and (after the
 * hand-off switch) client ops for the moved ranges, all in one FIFO of frames marked `mg`.
 *
 * One FIFO on one WebSocket is what makes the move safe: the receiver applies frames in the
 * order they were sent, so a captured write always lands after any older scanned value of
 * its key. At most STREAM_FRAMES_INFLIGHT_MAX frames are unanswered; the scan waits while the
 * stream is congested.
 *
 * A failed frame (timeout, reset, peer restart) never drops anything: every frame not yet
 * acknowledged goes back to the front of the queue, in order, and is sent again once the link
 * is up. Re-applying a suffix of the stream in order ends in the same state, because before
 * the switch nothing but this stream writes the moving keys at the receiver. Frames from
 * before the failure that answer late are ignored (generation), so counts stay exact.
 */
import { Status, STREAM_RECORD_VERSION } from '../protocol/constants.js';
import type { ColumnBatch } from '../client/client.js';
import { OutBatch, settleBatch, type StreamCommit } from './out-batch.js';
import type { PeerLink } from './peer-link.js';
import type { RingNode } from '../routing/ring.js';

export const STREAM_FRAMES_INFLIGHT_MAX = 4;
/**
 * Batches queued before writes of keys moving to this node are refused (CLUSTER_BUSY,
 * retryable) instead of captured: a destination that is unreachable or slow must slow the
 * writers of its ranges, not grow this node's memory (64 batches of at most 4 MiB).
 */
export const STREAM_QUEUE_BATCHES_MAX = 64;
/** Wait before resending after a failure, so a dead link is not hammered. */
export const RESEND_DELAY_MS = 200;

/**
 * Runs `callback` once after `delay_ms` and returns a function that cancels it. Injected only by
 * the simulation tests (test/move-stream-sim.test.ts, and test/replication-sim.test.ts through
 * the Replicator), whose clock must order this delay exactly among its simulated network events
 * (node:test's mock timers do not tell when they fire next, so they cannot be merged into that
 * event queue).
 */
export type Schedule = (callback: () => void, delay_ms: number) => () => void;

const realSchedule: Schedule = (callback, delay_ms) => {
  const timer = setTimeout(callback, delay_ms);
  timer.unref();
  return () => clearTimeout(timer);
};

export class MoveStream {
  readonly dest: RingNode;
  private readonly epoch: () => number;
  /** The sender's commit watermark when a frame leaves, sent as `cw` (replicator.ts; 0: none). */
  private readonly watermark: () => number;
  keys_sent = 0;
  bytes_sent = 0;
  keys_acked = 0;
  /** The last failure, for status; the stream resends by itself. */
  failure: string | null = null;
  failures = 0;
  private readonly queue: OutBatch[] = [new OutBatch()];
  /** Sent and not yet acknowledged, oldest first. */
  private readonly unacked: OutBatch[] = [];
  /** Frames of `unacked` answered OK while an older frame is still unanswered. */
  private readonly answered = new Set<OutBatch>();
  private generation = 0;
  /** Cancels the pending resend; null when none is pending. */
  private resend_timer: (() => void) | null = null;
  private stopped = false;
  private readonly link: () => PeerLink | undefined;
  private readonly onChange: () => void;
  private readonly schedule: Schedule;

  /**
   * `epoch`: the sender's view epoch when a frame leaves, stamped on it (0: none). A receiver
   * behind it refuses the frame until it has caught up (etcd mode, docs/REPLICATION.md R3) or
   * holds off deleting keys it thinks are not its own (gossip, ClusterNode.route).
   */
  constructor(dest: RingNode, link: () => PeerLink | undefined, onChange: () => void, schedule: Schedule = realSchedule, epoch: () => number = () => 0, watermark: () => number = () => 0) {
    this.epoch = epoch;
    this.watermark = watermark;
    this.dest = dest;
    this.link = link;
    this.onChange = onChange;
    this.schedule = schedule;
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

  /** Ops ever appended: acknowledged, in flight, or queued (a drain waits for keys_acked to reach a mark of this). */
  get ops_appended(): number {
    let total = this.keys_acked;
    for (const batch of this.unacked) total += batch.op_count;
    for (const batch of this.queue) total += batch.op_count;
    return total;
  }

  /** Frames sent and not yet acknowledged (at most STREAM_FRAMES_INFLIGHT_MAX). */
  get frames_inflight(): number {
    return this.unacked.length;
  }

  get congested(): boolean {
    return this.unacked.length >= STREAM_FRAMES_INFLIGHT_MAX || this.queue.length > 2;
  }

  /** Too much queued: writes of keys moving here are refused until the stream catches up. */
  get overloaded(): boolean {
    return this.queue.length >= STREAM_QUEUE_BATCHES_MAX;
  }

  /** Nothing queued and nothing unanswered: everything sent so far is applied at the destination. */
  get idle(): boolean {
    return this.unacked.length === 0 && this.queue.length === 1 && this.queue[0]!.op_count === 0;
  }

  flush(): void {
    if (this.stopped || this.resend_timer !== null) return;
    if (this.link()?.up !== true) {
      // A link not up yet (just created for a joining node) or briefly down: keep the queue, in
      // order, and look again later. Nothing else may call flush: a replication stream is flushed
      // only when a write is captured, so without this its last frames (and the client answers
      // held for them) would wait for the next write, however long that takes.
      if (this.queue[0]!.op_count > 0) this.flushLater();
      return;
    }
    while (this.unacked.length < STREAM_FRAMES_INFLIGHT_MAX && this.queue[0]!.op_count > 0) {
      const batch = this.queue.shift()!;
      if (this.queue.length === 0) this.queue.push(new OutBatch());
      this.send(batch);
    }
  }

  /** The move is over (switched, or replaced by a newer view): send nothing more. */
  stop(): void {
    this.stopped = true;
    this.resend_timer?.();
    this.resend_timer = null;
  }

  /** Calls `visit` for every commit still waiting on this stream. */
  forEachCommit(visit: (commit: StreamCommit) => void): void {
    for (const batch of [...this.unacked, ...this.queue]) for (const commit of batch.commits) visit(commit);
  }

  /** Stops, and tells every commit still waiting on this stream that it was given up. */
  abandon(): void {
    this.stop();
    this.generation++;
    for (const batch of [...this.unacked, ...this.queue]) for (const commit of batch.commits) commit.abandoned();
    this.unacked.length = 0;
    this.answered.clear();
    this.queue.length = 0;
    this.queue.push(new OutBatch());
  }

  private send(batch: OutBatch): void {
    const link = this.link()!;
    const generation = this.generation;
    this.unacked.push(batch);
    this.keys_sent += batch.op_count;
    this.bytes_sent += batch.bytes;
    const epoch = this.epoch();
    // `sv`: the per-entry record carries key, value and absolute expiry (constants.ts STREAM_RECORD_VERSION).
    // `ci`/`cw`: what the receiver's replay log keeps and drops (docs/REPLICATION.md R7).
    const frame: ColumnBatch = { ...batch.columns(), migrate: true, stream_version: STREAM_RECORD_VERSION };
    if (epoch > 0) frame.ring_epoch = epoch;
    if (batch.commit_id_max > 0) frame.commit_id = batch.commit_id_max;
    const watermark = this.watermark();
    if (watermark > 0) frame.commit_watermark = watermark;
    link.send(frame).then(
      (results) => {
        if (generation !== this.generation || this.stopped) return;
        const failed = countFailed(results.status);
        if (failed > 0) {
          // OUT_OF_MEMORY or a refusal at the destination: nothing after this frame may be
          // applied before it is, so resend from the oldest unacknowledged one (the controller
          // sees the move stall).
          this.fail(`${failed} moved ops refused at ${this.dest.id} (e.g. OUT_OF_MEMORY)`);
          return;
        }
        // Answers may come out of order: the receiver answers a frame once every partition it
        // touches has applied its ops, so a later frame for idle partitions can be answered
        // first. A frame counts as acknowledged only once every frame sent before it is: a
        // failure resends from the oldest unacknowledged frame, and the frames after it must go
        // again too (resending an older frame alone could put an old value over a newer one).
        if (!this.unacked.includes(batch)) {
          // Cannot happen (a failure clears unacked and bumps the generation). Never throw
          // here: this is a promise callback, and a throw would kill the node.
          this.fail(`stream to ${this.dest.id}: answer for a frame not in flight`);
          return;
        }
        this.answered.add(batch);
        while (this.unacked.length > 0 && this.answered.has(this.unacked[0]!)) {
          const done = this.unacked.shift()!;
          this.answered.delete(done);
          this.keys_acked += done.op_count;
          for (const commit of done.commits) commit.acked();
        }
        settleBatch(batch, results.status, results.value_lengths, results.values);
        this.flush();
        this.onChange();
      },
      (error: Error) => {
        if (generation !== this.generation || this.stopped) return;
        this.fail(error.message);
      },
    );
  }

  /** Puts every unacknowledged frame back in front of the queue, in order, and resends later. */
  private fail(reason: string): void {
    this.generation++;
    this.failures++;
    this.failure = reason;
    const back = this.unacked.splice(0);
    this.answered.clear();
    if (this.queue.length === 1 && this.queue[0]!.op_count === 0) this.queue.length = 0;
    this.queue.unshift(...back);
    if (this.queue.length === 0) this.queue.push(new OutBatch());
    this.flushLater();
    this.onChange();
  }

  /** Flushes again after RESEND_DELAY_MS; flush() does nothing meanwhile. */
  private flushLater(): void {
    // A failure while a flush waits for the link (frames in flight when it went down) restarts the wait.
    this.resend_timer?.();
    this.resend_timer = this.schedule(() => {
      this.resend_timer = null;
      this.flush();
    }, RESEND_DELAY_MS);
  }
}

function countFailed(status: Uint8Array): number {
  let failed = 0;
  for (let i = 0; i < status.length; i++) if (status[i] !== Status.OK && status[i] !== Status.NOT_FOUND) failed++;
  return failed;
}

/**
 * Synchronous replication from this node, as primary, to the other replicas of its slots
 * (docs/REPLICATION.md).
 *
 * The primary applies a packet in its worker first. Its applied writes are captured here from
 * the worker's reply, in worker order, and appended to one ordered stream per destination (a
 * MoveStream: one WebSocket FIFO, one frame per peer per event-loop turn, re-sent in order on
 * failure). The requests those writes answer are held (PendingRequest.hold) by one Commit per
 * packet, released when every stream the packet wrote to has had its frame applied (R1). A
 * GET whose key hash has an uncommitted write is held by that write's commit too, so no read
 * returns a value a failover could take back; so is a DELETE that found nothing (it reads the
 * key: its NOT_FOUND says the key is absent).
 *
 * The same streams carry the data-move scan of a change in progress (migration.ts), so scanned
 * values and captured writes reach each destination in one order (R4). Streams outlive views:
 * a view change only changes which slots go where (CopyPlan). A stream whose destination is in
 * no copy set any more is abandoned: its commits count as satisfied, because a view drops a
 * destination only when it is marked down or removed in etcd, or never became in sync (R5). If
 * this node itself is marked down, every waiting commit fails instead (NODE_DOWN: unknown).
 */
import type { Partition } from '../engine/partition.js';
import type { ReplyPacket, RequestPacket } from '../engine/packet.js';
import { OpRef } from '../engine/op-ref.js';
import type { PendingRequest } from '../engine/pending-request.js';
import { Op, Status } from '../protocol/constants.js';
import type { RingNode } from '../routing/ring.js';
import type { ViewRings } from '../routing/view.js';
import { COPIES_MAX, CopyPlan, NO_PEER } from './copy-plan.js';
import { MoveStream, type Schedule } from './move-stream.js';
import type { OutBatch, StreamCommit } from './out-batch.js';
import { CommitWatermark } from './commit-watermark.js';
import type { LoggedOp } from './replay-log.js';
import type { PeerLink } from './peer-link.js';

const SLOT_SHIFT = 16;
/** held_hashes entry of a read (key hashes are u32, never negative). */
const HELD_READ = -1;

/**
 * The replicator's timers. Injected only by the simulation test (test/replication-sim.test.ts),
 * whose simulated clock must order every resend delay and every flush among its simulated network
 * events; the defaults are the real timers, which production uses.
 */
export interface ReplicatorTimers {
  /** The streams' resend delay after a failure (default: MoveStream's own setTimeout). */
  schedule?: Schedule;
  /** Runs the batched flush after this turn's writes were captured (default: setImmediate). */
  defer?: (callback: () => void) => void;
}

/** One packet's replicated writes: the answers it holds until every stream it wrote to applied them. */
class Commit implements StreamCommit {
  /** Numbered in capture order; `ci` on the frames that carry its writes (docs/REPLICATION.md R7). */
  readonly id: number;
  remaining = 0;
  failed = false;
  /** Its held answers were already given (as unknown, by answerEarly); the copies still go out. */
  answered = false;
  /** The ops (writes, and reads of uncommitted keys) whose answers this commit holds, one hold each. */
  readonly held: PendingRequest[] = [];
  readonly held_indices: number[] = [];
  /** Per held answer: the key hash of a write, or HELD_READ for a read that waits on one. */
  readonly held_hashes: number[] = [];
  readonly hashes: number[] = [];
  private readonly onCommitted: (commit: Commit) => void;

  constructor(id: number, onCommitted: (commit: Commit) => void) {
    this.id = id;
    this.onCommitted = onCommitted;
  }

  acked(): void {
    this.one();
  }

  abandoned(): void {
    this.one();
  }

  private one(): void {
    this.remaining--;
    if (this.remaining < 0) throw new Error('replication invariant: a commit was acknowledged more often than it was sent');
    if (this.remaining === 0) this.onCommitted(this);
  }
}

export class Replicator {
  plan: CopyPlan = new CopyPlan(null, '');
  /** Writes captured, commits released, commits failed, answers held: for status. */
  writes_replicated = 0;
  commits_done = 0;
  commits_failed = 0;
  reads_held = 0;
  private readonly streams = new Map<string, MoveStream>();
  /** The streams of plan.peers, by peer index; built lazily. */
  private plan_streams: (MoveStream | undefined)[] = [];
  /** The newest uncommitted commit of each key hash with one. */
  private readonly uncommitted = new Map<number, Commit>();
  private readonly touched = new Uint8Array(NO_PEER);
  private readonly touched_list: number[] = [];
  /** Per touched peer, the batch that took this packet's last write to it: the commit waits on that batch. */
  private readonly touched_batch: (OutBatch | undefined)[] = [];
  /** Sent as `cw`: every commit up to it has completed (commit-watermark.ts, docs/REPLICATION.md R7). */
  private readonly commit_watermark = new CommitWatermark();
  private readonly links: (id: string) => PeerLink | undefined;
  private readonly epoch: () => number;
  private readonly onStreamChange: () => void;
  private flush_scheduled = false;
  /** The adopted view's rings: min_replicas is checked against its current placement. */
  private rings: ViewRings | null = null;
  private readonly captured = new OpRef();
  private readonly schedule: Schedule | undefined;
  private readonly defer: (callback: () => void) => void;

  constructor(links: (id: string) => PeerLink | undefined, epoch: () => number, onStreamChange: () => void, timers: ReplicatorTimers = {}) {
    this.links = links;
    this.epoch = epoch;
    this.onStreamChange = onStreamChange;
    this.schedule = timers.schedule;
    this.defer = timers.defer ?? ((callback) => setImmediate(callback));
  }

  /**
   * A new view: new copy sets. `lost_primary`: this node was marked down (or its incarnation
   * replaced), so nothing it has not committed yet may be acknowledged.
   */
  adopt(rings: ViewRings, self: string, lost_primary: boolean): void {
    // First: commits completed by the abandons below check min_replicas against this view.
    this.rings = rings;
    if (lost_primary) this.failAll();
    const plan = new CopyPlan(rings, self);
    const wanted = new Set(plan.peers.map((p) => p.id));
    for (const [id, stream] of this.streams) {
      const node = plan.peers.find((p) => p.id === id);
      if (wanted.has(id) && node?.url === stream.dest.url) continue;
      stream.abandon();
      this.streams.delete(id);
    }
    this.plan = plan;
    this.plan_streams = [];
  }

  /** The stream to `node`, created on first use. */
  stream(node: RingNode): MoveStream {
    let stream = this.streams.get(node.id);
    if (stream === undefined) {
      stream = new MoveStream(node, () => this.links(node.id), this.onStreamChange, this.schedule, this.epoch, () => this.commit_watermark.value);
      this.streams.set(node.id, stream);
    }
    return stream;
  }

  streamOf(peer_index: number): MoveStream {
    let stream = this.plan_streams[peer_index];
    if (stream === undefined) {
      stream = this.stream(this.plan.peers[peer_index]!);
      this.plan_streams[peer_index] = stream;
    }
    return stream;
  }

  /** True if this key hash has a write applied here and not yet on every copy: its reads must wait. */
  dirty(hash: number): boolean {
    return this.uncommitted.size > 0 && this.uncommitted.has(hash);
  }

  /** True when a write of this key hash must be refused for now: a stream it would go to is too far behind. */
  overloaded(hash: number): boolean {
    if (this.plan.empty) return false;
    const base = (hash >>> SLOT_SHIFT) * COPIES_MAX;
    for (let i = 0; i < COPIES_MAX; i++) {
      const peer = this.plan.copies[base + i]!;
      if (peer === NO_PEER) return false;
      if (this.streamOf(peer).overloaded) return true;
    }
    return false;
  }

  /** Partition hook, before the packet's ops settle: capture its writes, hold its answers. */
  onApplied(_partition: Partition, request: RequestPacket, reply: ReplyPacket, owners: readonly PendingRequest[], op_indices: Int32Array): void {
    const plan = this.plan;
    const placement = this.rings?.current ?? null;
    const min_replicas = placement?.min_replicas ?? 1;
    if (plan.empty && this.uncommitted.size === 0 && min_replicas <= 1) return;
    const data = request.data;
    const copies = plan.copies;
    let commit: Commit | null = null;
    let offset = 0;
    for (let i = 0; i < reply.op_count; i++) {
      const op = request.op[i]!;
      const key_length = request.key_length[i]!;
      const value_length = request.value_length[i]!;
      const key_offset = offset;
      offset += key_length + value_length;
      const hash = request.hash[i]!;
      // A DELETE that found nothing reads the key too: its NOT_FOUND must not report an absence
      // that a failover could take back (an uncommitted DELETE), any more than a GET may.
      if (op === Op.GET || op === Op.TTL || (op === Op.DELETE && reply.status[i] === Status.NOT_FOUND)) {
        const pending = this.uncommitted.size > 0 ? this.uncommitted.get(hash) : undefined;
        if (pending !== undefined) {
          owners[i]!.hold();
          pending.held.push(owners[i]!);
          pending.held_indices.push(op_indices[i]!);
          pending.held_hashes.push(HELD_READ);
          this.reads_held++;
        }
        continue;
      }
      // A PUT answering NOT_FOUND was applied: a conditional op (Op.PUT_NX) that wrote an absent
      // key; the worker rewrote conditional ops into the plain ops they amounted to.
      const applied = reply.status[i] === Status.OK || (op === Op.PUT && reply.status[i] === Status.NOT_FOUND);
      if ((op !== Op.PUT && op !== Op.DELETE && op !== Op.EXPIRE && op !== Op.PERSIST && op !== Op.DELETE_EXPIRED) || !applied) continue;
      const base = (hash >>> SLOT_SHIFT) * COPIES_MAX;
      if (plan.empty || copies[base] === NO_PEER) {
        // No copy to wait for. Admitted while its slot had M copies up, applied after a view
        // with fewer: it must not be reported done (docs/REPLICATION.md, min_replicas).
        if (min_replicas > 1 && !placement!.writable(hash)) this.answerBelowMin(owners[i]!, op_indices[i]!);
        continue;
      }
      commit ??= this.newCommit();
      // A DELETE carries no value (a PUT whose expiry had passed became a DELETE in place, its
      // value bytes left behind); the expiry goes as the absolute time the worker applied.
      // The primary's expiry of a key goes to the copies as the delete it was (docs/REPLICATION.md, "Expiry").
      const copied_op = op === Op.DELETE_EXPIRED ? Op.DELETE : op;
      const ref = this.captured.set(null, 0, copied_op, hash, data, key_offset, key_length, data, key_offset + key_length, copied_op === Op.DELETE ? 0 : value_length);
      ref.expiry_ms = request.expiry[i]!;
      // The value as stored (compressed or not) with its codec id: never re-encoded per hop.
      ref.value_codec = copied_op === Op.PUT ? request.value_codec[i]! : 0;
      this.append(ref, base, commit);
      const owner = owners[i]!;
      owner.hold();
      commit.held.push(owner);
      commit.held_indices.push(op_indices[i]!);
      commit.held_hashes.push(hash);
      commit.hashes.push(hash);
      this.uncommitted.set(hash, commit);
      this.writes_replicated++;
    }
    if (commit === null) return;
    this.seal(commit);
  }

  /** Appends one captured op to the stream of every copy of its slot (`base` = slot * COPIES_MAX). */
  private append(ref: OpRef, base: number, commit: Commit): void {
    const copies = this.plan.copies;
    for (let c = 0; c < COPIES_MAX; c++) {
      const peer = copies[base + c]!;
      if (peer === NO_PEER) break;
      const batch = this.streamOf(peer).tail;
      batch.add(ref);
      batch.commit_id_max = commit.id;
      // The batch that holds the write, not the stream's tail after it: a write that filled its
      // batch would otherwise leave its commit on a new, empty batch, which is not sent until
      // another write comes (a lone 5 MiB PUT waited for the next write of its slots).
      this.touched_batch[peer] = batch;
      if (this.touched[peer] === 0) {
        this.touched[peer] = 1;
        this.touched_list.push(peer);
      }
    }
  }

  /** A packet's writes are appended: its commit waits on each stream they went to. */
  private seal(commit: Commit): void {
    for (const peer of this.touched_list) {
      this.touched[peer] = 0;
      this.touched_batch[peer]!.commits.push(commit);
      this.touched_batch[peer] = undefined;
      commit.remaining++;
    }
    this.touched_list.length = 0;
    if (commit.remaining === 0) throw new Error('replication invariant: a commit with writes went to no stream');
    this.scheduleFlush();
  }

  private newCommit(): Commit {
    return new Commit(this.commit_watermark.open(), this.committed);
  }

  get watermark(): number {
    return this.commit_watermark.value;
  }

  /**
   * Promotion (docs/REPLICATION.md R7): re-sends `ops`, applied here from a primary now marked
   * down, to every other copy of their slots in this node's plan, as one commit, ahead of any
   * later write; their keys stay uncommitted (reads wait) until every copy applied them. Call
   * right after adopt(), before any client op is routed under the new view. Returns the ops sent.
   */
  replay(ops: readonly LoggedOp[]): number {
    if (this.plan.empty || ops.length === 0) return 0;
    const commit = this.newCommit();
    let sent = 0;
    for (const logged of ops) {
      const base = (logged.hash >>> SLOT_SHIFT) * COPIES_MAX;
      if (this.plan.copies[base] === NO_PEER) continue;
      const value_length = logged.op === Op.PUT ? logged.value.length : 0;
      const ref = this.captured.set(null, 0, logged.op, logged.hash, logged.key, 0, logged.key.length, logged.value, 0, value_length);
      ref.expiry_ms = logged.expiry_ms;
      ref.value_codec = logged.op === Op.PUT ? logged.value_codec : 0;
      this.append(ref, base, commit);
      commit.hashes.push(logged.hash);
      this.uncommitted.set(logged.hash, commit);
      sent++;
    }
    if (sent === 0) {
      // Nothing of these slots has another copy: close the commit at once.
      this.completeCommit(commit);
      return 0;
    }
    this.seal(commit);
    return sent;
  }

  /** Every stream it went to acknowledged it or was given up (or it failed): the watermark may pass it. */
  private completeCommit(commit: Commit): void {
    this.commit_watermark.complete(commit.id);
  }

  /** Sends what the streams queued, once per event-loop turn. */
  scheduleFlush(): void {
    if (this.flush_scheduled) return;
    this.flush_scheduled = true;
    this.defer(() => {
      this.flush_scheduled = false;
      for (const stream of this.streams.values()) stream.flush();
    });
  }

  /** Every stream, for status and for the data move's drain marks. */
  allStreams(): IterableIterator<MoveStream> {
    return this.streams.values();
  }

  get commits_waiting(): number {
    return this.uncommitted.size;
  }

  stop(): void {
    this.failAll();
  }

  /** Fails every commit still waiting: their writes' outcome is unknown (NODE_DOWN). */
  private failAll(): void {
    for (const stream of this.streams.values()) {
      stream.forEachCommit((commit) => ((commit as Commit).failed = true));
      stream.abandon();
    }
    this.streams.clear();
    this.plan_streams = [];
  }

  /**
   * This node's lease fence ran out: it may not acknowledge anything now (R2), and the copies
   * it waits for may not come before the client gives up (a partition). Every held answer is
   * given now as unknown (NODE_DOWN), instead of at the client's timeout. The copies are NOT
   * dropped: they still go out in order, and the keys stay uncommitted (their reads wait) until
   * they are applied, so that whatever this node reads afterwards its backups have too.
   */
  answerEarly(): void {
    const seen = new Set<Commit>();
    for (const stream of this.streams.values()) stream.forEachCommit((c) => seen.add(c as Commit));
    for (const commit of seen) {
      if (commit.answered) continue;
      commit.answered = true;
      this.commits_failed++;
      for (let i = 0; i < commit.held.length; i++) commit.held[i]!.override(commit.held_indices[i]!, Status.NODE_DOWN);
      for (const request of commit.held) request.release();
      commit.held.length = 0;
      commit.held_indices.length = 0;
      commit.held_hashes.length = 0;
    }
  }

  /** A write with no copy to wait for, in a slot below min_replicas: answered NOT_ENOUGH_REPLICAS once it has settled. */
  private answerBelowMin(request: PendingRequest, op_index: number): void {
    request.hold();
    // The partition settles the op right after this hook returns; override it after that.
    queueMicrotask(() => {
      request.override(op_index, Status.NOT_ENOUGH_REPLICAS);
      request.release();
    });
  }

  private readonly committed = (commit: Commit): void => {
    this.completeCommit(commit);
    for (const hash of commit.hashes) if (this.uncommitted.get(hash) === commit) this.uncommitted.delete(hash);
    // After answerEarly, `held` holds only reads that came to wait on it later.
    if (commit.failed) {
      if (!commit.answered) this.commits_failed++;
      // Writes and the reads that saw them: neither may be reported as done (unknown outcome).
      for (let i = 0; i < commit.held.length; i++) commit.held[i]!.override(commit.held_indices[i]!, Status.NODE_DOWN);
    } else if (!commit.answered) {
      this.commits_done++;
      this.checkMinReplicas(commit);
    }
    for (const request of commit.held) request.release();
  };

  /**
   * min_replicas, checked when a commit completes: a write whose slot now has fewer copies up
   * than M (a copy was dropped while it waited, or it was admitted under an older view) is on
   * every copy still in sync (R1 holds) but must not be reported done: it is answered
   * NOT_ENOUGH_REPLICAS (applied on fewer copies than asked; it may or may not persist), like
   * Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND.
   */
  private checkMinReplicas(commit: Commit): void {
    const placement = this.rings?.current ?? null;
    if (placement === null || placement.min_replicas <= 1) return;
    for (let i = 0; i < commit.held.length; i++) {
      const hash = commit.held_hashes[i]!;
      if (hash !== HELD_READ && !placement.writable(hash)) commit.held[i]!.override(commit.held_indices[i]!, Status.NOT_ENOUGH_REPLICAS);
    }
  }
}

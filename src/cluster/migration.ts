/**
 * Moving data for one membership change (view epoch E: current placement `from`, target
 * placement `to`; docs/MEMBERSHIP.md I3 and docs/REPLICATION.md R6).
 *
 * For every slot this node is the primary of in `from`, it sends the slot's values to the
 * slot's targets (nodes that hold it in `to` and not in `from`, CopyPlan), and hands the
 * slot to its `to` primary if that is another node, without stopping writes until the end:
 *   1. scanning: each partition's table is scanned in bounded steps (HashTable.scan), only
 *      at moments its worker holds no packet (right after a reply, or while idle), so the
 *      main thread reads a table nobody writes. Every write applied here meanwhile is
 *      captured by the replicator, in worker order, onto the same per-destination streams, and
 *      its answer waits for the targets too. A scanned value is therefore never older than a
 *      capture sent before it, and a capture sent after it is newer: the target ends at the
 *      latest. This node stays the primary: it serves reads and writes itself.
 *   2. sealing: once every partition is scanned, the slots whose primary changes are sealed:
 *      new ops for them are held, not executed, and the node waits until every op enqueued to
 *      a partition before that moment was executed and captured (the barrier: ops_done_total
 *      catches up with ops_enqueued_total). Then it marks how far each stream has been filled.
 *   3. drained: every stream has been applied up to its mark. The node reports it
 *      (onDrained; in etcd mode a `moves/E/<id>` key) and keeps holding. Only the switch view
 *      {E + 1, nodes: to}, committed once every primary drained, releases the held ops: they
 *      go to the new primaries (release()). Nothing acknowledged here can come after the new
 *      primary starts, and every target holds every write acknowledged before the switch
 *      (later ones are held until it applied them: it is a copy of the replicator).
 * A stream that fails resends every unacknowledged frame in order (move-stream.ts), in any
 * state: the move never fails for good and never drops a captured write. A stream that falls
 * too far behind makes writes of its keys fail with the retryable CLUSTER_BUSY.
 */
import { OpRef } from '../engine/op-ref.js';
import type { Partition } from '../engine/partition.js';
import { SCAN_END } from '../hashmap/index.js';
import { Op, Status } from '../protocol/constants.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import type { Placement } from '../routing/placement.js';
import type { RingNode } from '../routing/ring.js';
import { COPIES_MAX, NO_PEER } from './copy-plan.js';
import { failBatch, OutBatch } from './out-batch.js';
import type { MoveStream } from './move-stream.js';
import type { PeerLink } from './peer-link.js';
import type { Replicator } from './replicator.js';

/** Entries one scan step visits per partition: about 1 ms of main-thread work. */
const SCAN_ENTRIES_PER_STEP = 1024;
const TIMER_BUSY_MS = 1;
const TIMER_IDLE_MS = 20;
const SLOT_SHIFT = 16;
/** Ops held in sealed ranges before further ones are refused with CLUSTER_BUSY (retryable). */
export const HELD_OPS_MAX = 65_536;

export type MigrationState = 'scanning' | 'sealing' | 'drained';

export interface MigrationProgress {
  epoch: number;
  state: MigrationState;
  ranges_moving: number;
  partitions_scanned: number;
  partitions: number;
  keys_sent: number;
  ops_held: number;
  stream_failures: number;
  keys_acked: number;
  bytes_sent: number;
  failure: string | null;
  streams: { to: string; keys_sent: number; keys_acked: number; bytes_sent: number }[];
}

export class Migration {
  readonly epoch: number;
  state: MigrationState = 'scanning';
  private readonly self: string;
  private readonly self_index: number;
  private readonly from: Placement;
  private readonly to: Placement;
  private readonly partitions: Partition[];
  private readonly cursors: number[];
  private readonly replicator: Replicator;
  private readonly held = new Map<string, OutBatch>();
  private barrier: number[] | null = null;
  /** How far each stream was filled when the barrier passed: drained once each is applied that far. */
  private marks: Map<MoveStream, number> | null = null;
  private readonly links: (id: string) => PeerLink | undefined;
  private readonly onDrained: (epoch: number) => void;
  private readonly log: (message: string) => void;
  private timer: NodeJS.Timeout | null = null;
  private ops_held = 0;
  private stopped = false;
  /** Slots this node sends values of (it is their primary and they have targets) or hands to another primary. */
  readonly ranges_moving: number;
  private key_buffer = Buffer.allocUnsafe(64 * 1024);
  private value_buffer = Buffer.allocUnsafe(64 * 1024);
  private readonly scanned = new OpRef();

  constructor(epoch: number, self: string, from: Placement, to: Placement, partitions: Partition[], replicator: Replicator,
    links: (id: string) => PeerLink | undefined, onDrained: (epoch: number) => void, log: (message: string) => void) {
    this.epoch = epoch;
    this.self = self;
    this.from = from;
    this.to = to;
    this.self_index = from.indexOf(self);
    this.partitions = partitions;
    this.replicator = replicator;
    this.links = links;
    this.onDrained = onDrained;
    this.log = log;
    this.cursors = partitions.map(() => 0);
    this.ranges_moving = this.countMovingSlots();
    if (this.ranges_moving === 0) {
      this.state = 'drained';
      queueMicrotask(() => onDrained(epoch));
      return;
    }
    this.log(`epoch ${epoch}: copying or handing off ${this.ranges_moving} slots`);
    this.schedule(0);
  }

  /** The new primary of a key this node must hand over, or null. */
  destination(hash: number): RingNode | null {
    if (!this.from.isPrimary(hash, this.self_index)) return null;
    const target = this.to.primaryOf(hash);
    return target === null || target.id === this.self ? null : target;
  }

  /** True once ops for handed-off keys no longer execute here: the slot is sealed until the switch. */
  handsOff(hash: number): boolean {
    return this.state !== 'scanning' && this.destination(hash) !== null;
  }

  /** Takes a client op for a sealed key: held (bounded) until the switch view releases it. */
  routeHandedOff(ref: OpRef): void {
    const dest = this.destination(ref.hash)!;
    if (this.ops_held >= HELD_OPS_MAX) {
      ref.request!.settle(ref.index, Status.CLUSTER_BUSY);
      return;
    }
    let held = this.held.get(dest.id);
    if (held === undefined) this.held.set(dest.id, (held = new OutBatch()));
    held.add(ref);
    this.ops_held++;
  }

  /**
   * The switch view arrived: the new primaries are authoritative. Held ops go to them through
   * `forward` (they were never executed here), and the move ends. The streams go on: they
   * belong to the replicator.
   */
  release(forward: (dest: RingNode, held: OutBatch) => void): void {
    if (this.state !== 'drained') throw new Error(`epoch ${this.epoch}: switch view arrived in state ${this.state}, before this node drained`);
    this.halt();
    for (const [id, held] of this.held) forward(this.to.ring.nodes.find((n) => n.id === id)!, held);
    this.held.clear();
    this.ops_held = 0;
  }

  /** Partition hook: maybe scan while the worker is empty, and check the barrier. */
  onApplied(partition: Partition): void {
    if (this.stopped || this.state === 'drained') return;
    if (this.state === 'scanning' && partition.packets_inflight === 0) this.scanStep(partition);
    if (this.state === 'sealing') this.checkDrained();
  }

  /** A stream made progress. */
  onStreamChange(): void {
    this.checkDrained();
  }

  progress(): MigrationProgress {
    let keys_sent = 0, keys_acked = 0, bytes_sent = 0, failures = 0;
    let failure: string | null = null;
    const streams = [...this.replicator.allStreams()].map((s) => {
      keys_sent += s.keys_sent;
      keys_acked += s.keys_acked;
      bytes_sent += s.bytes_sent;
      failures += s.failures;
      failure ??= s.failure;
      return { to: s.dest.id, keys_sent: s.keys_sent, keys_acked: s.keys_acked, bytes_sent: s.bytes_sent };
    });
    return {
      epoch: this.epoch, state: this.state, ranges_moving: this.ranges_moving,
      partitions_scanned: this.cursors.filter((c) => c >= SCAN_END).length, partitions: this.cursors.length,
      keys_sent, keys_acked, bytes_sent, ops_held: this.ops_held, stream_failures: failures, failure, streams,
    };
  }

  /**
   * Abandons the move: a newer start view replaced it before its switch, so this node is
   * still the primary of every slot it was handing off. Held ops were never executed; they are
   * answered STALE_RING and clients resend them under the new view.
   */
  stop(): void {
    this.halt();
    for (const held of this.held.values()) failBatch(held, Status.STALE_RING);
    this.held.clear();
    this.ops_held = 0;
  }

  private halt(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  /** One bounded scan step of one partition; only while its worker holds no packet. */
  private scanStep(partition: Partition): void {
    const cursor = this.cursors[partition.index]!;
    if (cursor >= SCAN_END || this.congested() || !this.targetsUp()) return;
    const table = partition.table;
    const plan = this.replicator.plan;
    this.cursors[partition.index] = table.scan(cursor, SCAN_ENTRIES_PER_STEP, (entry) => {
      const key_length = table.keyLength(entry);
      if (key_length > this.key_buffer.length) this.key_buffer = Buffer.allocUnsafe(key_length);
      table.copyKey(entry, this.key_buffer, 0);
      const hash = murmur3_x86_32(this.key_buffer, 0, key_length, KEY_HASH_SEED);
      const base = (hash >>> SLOT_SHIFT) * COPIES_MAX;
      if (plan.targets[base] === NO_PEER) return;
      const value_length = table.valueLength(entry);
      if (value_length > this.value_buffer.length) this.value_buffer = Buffer.allocUnsafe(value_length);
      table.copyValue(entry, this.value_buffer, 0);
      const ref = this.scanned.set(null, 0, Op.PUT, hash, this.key_buffer, 0, key_length, this.value_buffer, 0, value_length);
      // The absolute expiry moves with the entry (an expired one arrives as a DELETE: the receiving worker turns a PUT whose time has passed into one).
      ref.expiry_ms = table.expiry(entry);
      // The value moves as stored, with its codec id (never decoded or re-encoded on the way).
      ref.value_codec = table.valueFlags(entry);
      for (let i = 0; i < COPIES_MAX; i++) {
        const peer = plan.targets[base + i]!;
        if (peer === NO_PEER) break;
        this.replicator.streamOf(peer).tail.add(ref);
      }
    });
    this.replicator.scheduleFlush();
    if (this.cursors.every((c) => c >= SCAN_END)) this.startSealing();
  }

  /** Scanning starts only once every target is reachable, so the copy never begins toward a node that is not. */
  private targetsUp(): boolean {
    for (const node of this.replicator.plan.peers) {
      if (this.links(node.id)?.up !== true) return false;
    }
    return true;
  }

  private congested(): boolean {
    for (const stream of this.replicator.allStreams()) if (stream.congested) return true;
    return false;
  }

  private startSealing(): void {
    this.state = 'sealing';
    this.barrier = this.partitions.map((p) => p.ops_enqueued_total);
    this.log(`epoch ${this.epoch}: scan done; slots changing primary sealed until the switch`);
    this.checkDrained();
  }

  /** Past the barrier, every write applied to a sealed key is captured and queued. */
  private barrierPassed(): boolean {
    const barrier = this.barrier;
    return barrier !== null && this.partitions.every((p, i) => p.ops_done_total >= barrier[i]!);
  }

  private checkDrained(): void {
    if (this.stopped || this.state !== 'sealing') return;
    if (this.marks === null) {
      if (!this.barrierPassed()) return;
      this.marks = new Map();
      for (const peer of this.replicator.plan.peers) {
        const stream = this.replicator.stream(peer);
        this.marks.set(stream, stream.ops_appended);
      }
    }
    for (const [stream, mark] of this.marks) if (stream.keys_acked < mark) return;
    this.state = 'drained';
    this.log(`epoch ${this.epoch}: every copy and hand-off acknowledged; waiting for the switch`);
    this.onDrained(this.epoch);
  }

  /** Drives scan steps of idle partitions and the barrier when no worker reply would. */
  private schedule(delay_ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimer(), delay_ms);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    if (this.stopped || this.state === 'drained') return;
    if (this.state === 'scanning') {
      for (const partition of this.partitions) if (partition.isIdle()) this.scanStep(partition);
    }
    if (this.state === 'sealing') this.checkDrained();
    this.replicator.scheduleFlush();
    this.schedule(this.state === 'scanning' && !this.congested() ? TIMER_BUSY_MS : TIMER_IDLE_MS);
  }

  /** Slots this node is the primary of in `from` that have targets or another primary in `to`. */
  private countMovingSlots(): number {
    let count = 0;
    const targets = this.replicator.plan.targets;
    for (let slot = 0; slot < 1 << 16; slot++) {
      const hash = (slot << SLOT_SHIFT) >>> 0;
      if (targets[slot * COPIES_MAX] !== NO_PEER || this.destination(hash) !== null) count++;
    }
    return count;
  }
}

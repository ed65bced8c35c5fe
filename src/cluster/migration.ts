/**
 * Moving data for one membership change (view epoch E: active ring `from`, target ring `to`).
 *
 * This node sends every key it owns in `from` but not in `to` to its `to` owner, without
 * stopping writes until the very end (docs/MEMBERSHIP.md, invariant I3):
 *   1. scanning: each partition's table is scanned in bounded steps (HashTable.scan), only
 *      at moments its worker holds no packet (right after a reply, or while idle), so the
 *      main thread reads a table nobody writes. Every PUT or DELETE applied for a moving key
 *      is captured from the worker's reply, in worker order, and appended to the same
 *      stream (move-stream.ts). A scanned value is therefore never older than a capture
 *      sent before it, and a capture sent after it is newer: the receiver ends at the latest.
 *      This node stays authoritative: it serves reads and writes of moving keys itself.
 *   2. sealing: once every partition is scanned, the moving ranges are sealed: new ops for
 *      moving keys are held, not executed, and the node waits until every op enqueued to a
 *      partition before that moment was executed and captured (the barrier: ops_done_total
 *      catches up with ops_enqueued_total).
 *   3. drained: every stream is idle (all acknowledged). The node reports it (onDrained; in
 *      etcd mode a `moves/E/<id>` key) and keeps holding. Only the switch view {E + 1, nodes:
 *      to}, committed once every old owner drained, releases the held ops: they go to the new
 *      owners (release()). Nothing acknowledged here can come after the new owner starts.
 * A stream that fails resends every unacknowledged frame in order (move-stream.ts), in any
 * state: the move never fails for good and never drops a captured write. A stream that falls
 * too far behind makes writes of its keys fail with the retryable CLUSTER_BUSY.
 */
import type { PendingRequest } from '../engine/pending-request.js';
import type { Partition } from '../engine/partition.js';
import type { ReplyPacket, RequestPacket } from '../engine/packet.js';
import { SCAN_END } from '../hashmap/index.js';
import { Op, Status } from '../protocol/constants.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import { failBatch, OutBatch } from './out-batch.js';
import { MoveStream } from './move-stream.js';
import type { PeerLink } from './peer-link.js';
import type { HashRing, RingNode } from '../routing/ring.js';

/** Entries one scan step visits per partition: about 1 ms of main-thread work. */
const SCAN_ENTRIES_PER_STEP = 1024;
const TIMER_BUSY_MS = 1;
const TIMER_IDLE_MS = 20;
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
  private readonly from: HashRing;
  private readonly to: HashRing;
  private readonly partitions: Partition[];
  private readonly cursors: number[];
  private readonly streams = new Map<string, MoveStream>();
  private readonly held = new Map<string, OutBatch>();
  private barrier: number[] | null = null;
  private readonly links: (id: string) => PeerLink | undefined;
  private readonly onDrained: (epoch: number) => void;
  private readonly log: (message: string) => void;
  private timer: NodeJS.Timeout | null = null;
  private flush_scheduled = false;
  private ops_held = 0;
  private stopped = false;
  readonly ranges_moving: number;
  private key_buffer = Buffer.allocUnsafe(64 * 1024);
  private value_buffer = Buffer.allocUnsafe(64 * 1024);

  constructor(epoch: number, self: string, from: HashRing, to: HashRing, partitions: Partition[],
    links: (id: string) => PeerLink | undefined, onDrained: (epoch: number) => void, log: (message: string) => void) {
    this.epoch = epoch;
    this.self = self;
    this.from = from;
    this.to = to;
    this.partitions = partitions;
    this.links = links;
    this.onDrained = onDrained;
    this.log = log;
    this.cursors = partitions.map(() => 0);
    this.ranges_moving = countMovingRanges(from, to, self);
    if (this.ranges_moving === 0) {
      this.state = 'drained';
      queueMicrotask(() => onDrained(epoch));
      return;
    }
    this.log(`epoch ${epoch}: moving ${this.ranges_moving} ranges to their new owners`);
    this.schedule(0);
  }

  /** The new owner of a key this node must hand over, or null. */
  destination(hash: number): RingNode | null {
    if (this.from.ownerOf(hash).id !== this.self) return null;
    const target = this.to.ownerOf(hash);
    return target.id === this.self ? null : target;
  }

  /** True once ops for moving keys no longer execute here: the range is sealed until the switch. */
  handsOff(hash: number): boolean {
    return this.state !== 'scanning' && this.destination(hash) !== null;
  }

  /** True when a write of this key must be refused for now: its stream is too far behind. */
  overloaded(hash: number): boolean {
    const dest = this.destination(hash);
    return dest !== null && this.streams.get(dest.id)?.overloaded === true;
  }

  /** Takes a client op for a sealed key: held (bounded) until the switch view releases it. */
  routeHandedOff(request: PendingRequest, index: number, op: number, hash: number, keys: Uint8Array, key_offset: number, key_length: number, values: Uint8Array, value_offset: number, value_length: number): void {
    const dest = this.destination(hash)!;
    if (this.ops_held >= HELD_OPS_MAX) {
      request.settle(index, Status.CLUSTER_BUSY);
      return;
    }
    let held = this.held.get(dest.id);
    if (held === undefined) this.held.set(dest.id, (held = new OutBatch()));
    held.add(request, index, op, keys, key_offset, key_length, values, value_offset, value_length);
    this.ops_held++;
  }

  /**
   * The switch view arrived: the new owners are authoritative. Held ops go to them through
   * `forward` (they were never executed here), and the move ends.
   */
  release(forward: (dest: RingNode, held: OutBatch) => void): void {
    if (this.state !== 'drained') throw new Error(`epoch ${this.epoch}: switch view arrived in state ${this.state}, before this node drained`);
    this.stopStreams();
    for (const [id, held] of this.held) forward(this.to.nodes.find((n) => n.id === id)!, held);
    this.held.clear();
    this.ops_held = 0;
  }

  /** Partition hook: capture applied writes of moving keys, then maybe scan while the worker is empty. */
  onApplied(partition: Partition, request: RequestPacket, reply: ReplyPacket): void {
    if (this.stopped || this.state === 'drained') return;
    this.capture(request, reply);
    if (this.state === 'scanning' && partition.packets_inflight === 0) this.scanStep(partition);
    if (this.state === 'sealing') this.checkBarrier();
    this.scheduleFlush();
  }

  progress(): MigrationProgress {
    let keys_sent = 0, keys_acked = 0, bytes_sent = 0;
    const streams = [...this.streams.values()].map((s) => {
      keys_sent += s.keys_sent;
      keys_acked += s.keys_acked;
      bytes_sent += s.bytes_sent;
      return { to: s.dest.id, keys_sent: s.keys_sent, keys_acked: s.keys_acked, bytes_sent: s.bytes_sent };
    });
    let failures = 0;
    let failure: string | null = null;
    for (const stream of this.streams.values()) {
      failures += stream.failures;
      failure ??= stream.failure;
    }
    return {
      epoch: this.epoch, state: this.state, ranges_moving: this.ranges_moving,
      partitions_scanned: this.cursors.filter((c) => c >= SCAN_END).length, partitions: this.cursors.length,
      keys_sent, keys_acked, bytes_sent, ops_held: this.ops_held, stream_failures: failures, failure, streams,
    };
  }

  /**
   * Abandons the move: a newer start view replaced it before its switch, so this node is
   * still the owner of every range it was moving. Held ops were never executed; they are
   * answered STALE_RING and clients resend them under the new view.
   */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.stopStreams();
    for (const held of this.held.values()) failBatch(held, Status.STALE_RING);
    this.held.clear();
    this.ops_held = 0;
  }

  private stopStreams(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const stream of this.streams.values()) stream.stop();
  }

  private stream(dest: RingNode): MoveStream {
    let stream = this.streams.get(dest.id);
    if (stream === undefined) {
      stream = new MoveStream(dest, () => this.links(dest.id), () => this.onStreamChange(), undefined, this.epoch);
      this.streams.set(dest.id, stream);
    }
    return stream;
  }

  private capture(request: RequestPacket, reply: ReplyPacket): void {
    const data = request.data;
    let offset = 0;
    for (let i = 0; i < reply.op_count; i++) {
      const op = request.op[i]!;
      const key_length = request.key_length[i]!;
      const value_length = request.value_length[i]!;
      const key_offset = offset;
      offset += key_length + value_length;
      if ((op !== Op.PUT && op !== Op.DELETE) || reply.status[i] !== Status.OK) continue;
      const dest = this.destination(request.hash[i]!);
      if (dest === null) continue;
      this.stream(dest).tail.add(null, 0, op, data, key_offset, key_length, data, key_offset + key_length, value_length);
    }
  }

  /** One bounded scan step of one partition; only while its worker holds no packet. */
  private scanStep(partition: Partition): void {
    const cursor = this.cursors[partition.index]!;
    if (cursor >= SCAN_END || this.congested() || !this.destinationsUp()) return;
    const table = partition.table;
    this.cursors[partition.index] = table.scan(cursor, SCAN_ENTRIES_PER_STEP, (ref) => {
      const key_length = table.keyLength(ref);
      const value_length = table.valueLength(ref);
      if (key_length > this.key_buffer.length) this.key_buffer = Buffer.allocUnsafe(key_length);
      table.copyKey(ref, this.key_buffer, 0);
      const dest = this.destination(murmur3_x86_32(this.key_buffer, 0, key_length, KEY_HASH_SEED));
      if (dest === null) return;
      if (value_length > this.value_buffer.length) this.value_buffer = Buffer.allocUnsafe(value_length);
      table.copyValue(ref, this.value_buffer, 0);
      this.stream(dest).tail.add(null, 0, Op.PUT, this.key_buffer, 0, key_length, this.value_buffer, 0, value_length);
    });
    if (this.cursors.every((c) => c >= SCAN_END)) this.startSealing();
  }

  /** Scanning starts only once every new owner is reachable, so the hand-off never begins toward a node that is not. */
  private destinationsUp(): boolean {
    for (const node of this.to.nodes) {
      if (node.id !== this.self && this.links(node.id)?.up !== true) return false;
    }
    return true;
  }

  private congested(): boolean {
    for (const stream of this.streams.values()) if (stream.congested) return true;
    return false;
  }

  private startSealing(): void {
    this.state = 'sealing';
    this.barrier = this.partitions.map((p) => p.ops_enqueued_total);
    this.log(`epoch ${this.epoch}: scan done; moving ranges sealed until the switch`);
    this.checkBarrier();
  }

  /** Past the barrier, every write applied to a moving key is captured and queued. */
  private barrierPassed(): boolean {
    const barrier = this.barrier;
    return barrier !== null && this.partitions.every((p, i) => p.ops_done_total >= barrier[i]!);
  }

  private checkBarrier(): void {
    this.onStreamChange();
  }

  private onStreamChange(): void {
    if (this.stopped || this.state !== 'sealing') return;
    if (!this.barrierPassed()) return;
    for (const stream of this.streams.values()) if (!stream.idle) return;
    this.state = 'drained';
    this.log(`epoch ${this.epoch}: all moved keys acknowledged by their new owners; waiting for the switch`);
    this.onDrained(this.epoch);
  }

  private scheduleFlush(): void {
    if (this.flush_scheduled) return;
    this.flush_scheduled = true;
    setImmediate(() => {
      this.flush_scheduled = false;
      for (const stream of this.streams.values()) stream.flush();
      this.onStreamChange();
    });
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
    if (this.state === 'sealing') this.checkBarrier();
    this.scheduleFlush();
    this.schedule(this.state === 'scanning' && !this.congested() ? TIMER_BUSY_MS : TIMER_IDLE_MS);
  }
}

/** Arcs of the circle this node owns in `from` and someone else owns in `to`. */
export function countMovingRanges(from: HashRing, to: HashRing, self: string): number {
  const bounds = [...new Set([...from.points, ...to.points])].sort((a, b) => a - b);
  let count = 0;
  for (const point of bounds) {
    if (from.ownerOf(point).id === self && to.ownerOf(point).id !== self) count++;
  }
  return count;
}

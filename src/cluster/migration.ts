/**
 * Moving data for one membership change (view epoch E: active ring `from`, target ring `to`).
 *
 * This node sends every key it owns in `from` but not in `to` to its `to` owner, without
 * stopping writes:
 *   1. scanning: each partition's table is scanned in bounded steps (HashTable.scan), only
 *      at moments its worker holds no packet (right after a reply, or while idle), so the
 *      main thread reads a table nobody writes. Every PUT or DELETE applied for a moving key
 *      is captured from the worker's reply, in worker order, and appended to the same
 *      stream (move-stream.ts). A scanned value is therefore never older than a capture
 *      sent before it, and a capture sent after it is newer: the receiver ends at the latest.
 *      This node stays authoritative: it serves reads and writes of moving keys itself.
 *   2. holding: once every partition is scanned, new ops for moving keys are held, and the
 *      node waits until every op enqueued to a partition before that moment was executed
 *      and captured (the barrier: ops_done_total catches up with ops_enqueued_total).
 *   3. forwarding: held ops join the streams behind the last capture; from now on ops for
 *      moving keys are forwarded through the stream, so the new owner is authoritative.
 *   4. drained: every stream is idle (all acknowledged). The node reports CLUSTER_DRAINED;
 *      once all nodes of `from` have, every node adopts {E + 1, nodes: to} (cluster-node.ts).
 * A stream failure while scanning restarts the scan (a rescan re-sends current values, and
 * captures keep flowing); after the switch it cannot be repaired and the move is 'failed'.
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
const RESCAN_DELAY_MS = 500;

export type MigrationState = 'scanning' | 'holding' | 'forwarding' | 'drained' | 'failed';

export interface MigrationProgress {
  epoch: number;
  state: MigrationState;
  ranges_moving: number;
  partitions_scanned: number;
  partitions: number;
  scans: number;
  keys_sent: number;
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
  private scans = 1;
  private failure: string | null = null;
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

  /** True once ops for moving keys no longer execute here (held, then forwarded). */
  handsOff(hash: number): boolean {
    return this.state !== 'scanning' && this.destination(hash) !== null;
  }

  /** Takes a client op for a handed-off key: held until the barrier, then streamed to its new owner. */
  routeHandedOff(request: PendingRequest, index: number, op: number, hash: number, keys: Uint8Array, key_offset: number, key_length: number, values: Uint8Array, value_offset: number, value_length: number): void {
    const dest = this.destination(hash)!;
    if (this.state === 'holding') {
      let held = this.held.get(dest.id);
      if (held === undefined) this.held.set(dest.id, (held = new OutBatch()));
      held.add(request, index, op, keys, key_offset, key_length, values, value_offset, value_length);
      return;
    }
    const link = this.links(dest.id);
    if (link === undefined || !link.up) {
      request.settle(index, Status.NODE_DOWN);
      return;
    }
    this.stream(dest).tail.add(request, index, op, keys, key_offset, key_length, values, value_offset, value_length);
    this.scheduleFlush();
  }

  /** Partition hook: capture applied writes of moving keys, then maybe scan while the worker is empty. */
  onApplied(partition: Partition, request: RequestPacket, reply: ReplyPacket): void {
    if (this.stopped || this.state === 'drained') return;
    this.capture(request, reply);
    if (this.state === 'scanning' && partition.packets_inflight === 0) this.scanStep(partition);
    if (this.state === 'holding') this.checkBarrier();
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
    return {
      epoch: this.epoch, state: this.state, ranges_moving: this.ranges_moving,
      partitions_scanned: this.cursors.filter((c) => c >= SCAN_END).length, partitions: this.cursors.length, scans: this.scans,
      keys_sent, keys_acked, bytes_sent, failure: this.failure, streams,
    };
  }

  /** Abandons the move (a newer view replaced it). Held ops are answered STALE_RING, so clients resend. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const held of this.held.values()) failBatch(held, Status.STALE_RING);
    this.held.clear();
  }

  private stream(dest: RingNode): MoveStream {
    let stream = this.streams.get(dest.id);
    if (stream === undefined) {
      stream = new MoveStream(dest, () => this.links(dest.id), () => this.onStreamChange());
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
    if (this.cursors.every((c) => c >= SCAN_END)) this.startHolding();
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

  private startHolding(): void {
    this.state = 'holding';
    this.barrier = this.partitions.map((p) => p.ops_enqueued_total);
    this.checkBarrier();
  }

  private checkBarrier(): void {
    const barrier = this.barrier!;
    if (!this.partitions.every((p, i) => p.ops_done_total >= barrier[i]!)) return;
    for (const [id, held] of this.held) {
      const dest = this.to.nodes.find((n) => n.id === id)!;
      this.stream(dest).tail.append(held);
    }
    this.held.clear();
    this.state = 'forwarding';
    this.log(`epoch ${this.epoch}: scan done; ops for moving ranges now go to their new owners`);
    this.scheduleFlush();
  }

  private onStreamChange(): void {
    if (this.stopped) return;
    const failed = [...this.streams.values()].find((s) => s.failure !== null);
    if (failed !== undefined) {
      if (this.state === 'scanning') {
        this.log(`epoch ${this.epoch}: stream to ${failed.dest.id} failed (${failed.failure}); scanning again`);
        for (const stream of this.streams.values()) stream.failure = null;
        this.cursors.fill(0);
        this.scans++;
        this.schedule(RESCAN_DELAY_MS);
      } else if (this.state !== 'failed') {
        this.failure = `stream to ${failed.dest.id} failed after the hand-off: ${failed.failure}`;
        this.log(`epoch ${this.epoch}: ${this.failure}; writes acknowledged by ${failed.dest.id} may be lost if it does not come back`);
        this.state = 'failed';
      }
      return;
    }
    if (this.state === 'forwarding' && [...this.streams.values()].every((s) => s.idle)) {
      this.state = 'drained';
      this.log(`epoch ${this.epoch}: all moved keys acknowledged by their new owners`);
      this.onDrained(this.epoch);
    }
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
    if (this.stopped || this.state === 'drained' || this.state === 'failed') return;
    if (this.state === 'scanning') {
      for (const partition of this.partitions) if (partition.isIdle()) this.scanStep(partition);
    }
    if (this.state === 'holding') this.checkBarrier();
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

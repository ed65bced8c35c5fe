/**
 * Deleting this node's copies of keys it no longer owns (after a membership change moved
 * their ranges to other nodes), for one adopted view.
 *
 * A key is kept if this node is one of its replicas in the view's current placement or in the
 * target placement of a change in progress (ViewRings.keeps); every other key is a leftover copy.
 * A node outside the view keeps nothing: it joins again empty (docs/REPLICATION.md, R5). Each partition's table is scanned in bounded steps
 * (SCAN_ENTRIES_PER_STEP), only at moments its worker holds no packet (right after a reply,
 * or while idle), like the data-move scan (migration.ts). The leftover keys a step finds are
 * submitted as DELETE ops through the partition's ordinary queue, so the worker applies them
 * in order with every other op and, with --data-dir, logs them. A partition is not scanned
 * again until the deletes of its previous step were answered, so at most one step's deletes
 * wait in a queue.
 *
 * The scan waits until every other node of the view has shown, by a heartbeat, that it is not
 * at a newer epoch: a node restarted from disk with an old view must not delete keys the
 * newest view gives it. A delete that fails (WORKER_RESTARTED, DISK_ERROR) makes the whole
 * scan run again. States: waiting -> scanning -> deleting -> done. Only `done` lets the
 * cluster start another membership change (cluster-node.ts), which is what keeps a range from
 * coming back to a node that still holds old copies of it (docs/CLUSTER.md).
 */
import { SCAN_END } from '../hashmap/index.js';
import { Op, Status } from '../protocol/constants.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import type { Partition } from '../engine/partition.js';
import { OpRef } from '../engine/op-ref.js';
import { PendingRequest } from '../engine/pending-request.js';
import { RING_SLOTS } from '../routing/ring.js';
import type { ViewRings } from '../routing/view.js';

/** Entries one scan step visits per partition: about 1 ms of main-thread work. */
const SCAN_ENTRIES_PER_STEP = 1024;
const TIMER_BUSY_MS = 1;
const TIMER_IDLE_MS = 20;
const RESCAN_DELAY_MS = 500;
const EMPTY = new Uint8Array(0);

export type CleanupState = 'waiting' | 'scanning' | 'deleting' | 'done';

export interface CleanupProgress {
  epoch: number;
  state: CleanupState;
  partitions_scanned: number;
  partitions: number;
  scans: number;
  keys_deleted: number;
  delete_failures: number;
}

export class Cleanup {
  readonly epoch: number;
  state: CleanupState = 'waiting';
  keys_deleted = 0;
  private readonly self: string;
  private readonly rings: ViewRings;
  private readonly partitions: Partition[];
  private readonly cursors: number[];
  /** Delete ops submitted and not yet answered, per partition. */
  private readonly deletes_pending: number[];
  /** Peers that must confirm (by a heartbeat at an epoch <= ours) before anything is deleted. */
  private readonly unconfirmed: Set<string>;
  private readonly onDone: (epoch: number) => void;
  private readonly log: (message: string) => void;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private scans = 1;
  private delete_failures = 0;
  private failed_this_scan = false;
  private key_buffer = Buffer.allocUnsafe(64 * 1024);
  private key_offsets: number[] = [];
  private key_lengths: number[] = [];
  private hashes: number[] = [];

  constructor(epoch: number, self: string, rings: ViewRings, peers: string[], partitions: Partition[],
    onDone: (epoch: number) => void, log: (message: string) => void) {
    this.epoch = epoch;
    this.self = self;
    this.rings = rings;
    this.partitions = partitions;
    this.cursors = partitions.map(() => 0);
    this.deletes_pending = partitions.map(() => 0);
    this.unconfirmed = new Set(peers.filter((id) => id !== self));
    this.onDone = onDone;
    this.log = log;
    if (this.unconfirmed.size === 0) this.state = 'scanning';
    this.schedule(0);
  }

  /** True if this node holds a replica of the key hash in the view, now or after its change. */
  keeps(hash: number): boolean {
    return this.rings.keeps(this.self, hash);
  }

  /** A peer answered or sent a heartbeat at `epoch`; a newer epoch makes the node pull that view instead. */
  confirm(peer: string, epoch: number): void {
    if (epoch > this.epoch || !this.unconfirmed.delete(peer)) return;
    if (this.unconfirmed.size === 0 && this.state === 'waiting') {
      this.state = 'scanning';
      this.schedule(0);
    }
  }

  /** Partition hook: a scan step right after a reply, while the worker holds no packet. */
  onApplied(partition: Partition): void {
    if (this.state === 'scanning' && partition.packets_inflight === 0) this.scanStep(partition);
  }

  progress(): CleanupProgress {
    return {
      epoch: this.epoch, state: this.state, partitions_scanned: this.cursors.filter((c) => c >= SCAN_END).length,
      partitions: this.cursors.length, scans: this.scans, keys_deleted: this.keys_deleted, delete_failures: this.delete_failures,
    };
  }

  /** A newer view replaced this one. Deletes already queued still run: they are for keys no view since gave back (cluster-node.ts). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One bounded step; `flush` when called outside a reply (a reply's handler flushes the queue itself). */
  private scanStep(partition: Partition, flush = false): void {
    const p = partition.index;
    const cursor = this.cursors[p]!;
    if (cursor >= SCAN_END || this.deletes_pending[p]! > 0) return;
    const table = partition.table;
    this.key_offsets.length = 0;
    this.key_lengths.length = 0;
    this.hashes.length = 0;
    let used = 0;
    this.cursors[p] = table.scan(cursor, SCAN_ENTRIES_PER_STEP, (ref) => {
      const key_length = table.keyLength(ref);
      if (used + key_length > this.key_buffer.length) {
        const grown = Buffer.allocUnsafe(Math.max(this.key_buffer.length * 2, used + key_length));
        this.key_buffer.copy(grown, 0, 0, used);
        this.key_buffer = grown;
      }
      table.copyKey(ref, this.key_buffer, used);
      const hash = murmur3_x86_32(this.key_buffer, used, key_length, KEY_HASH_SEED);
      if (this.keeps(hash)) return;
      this.key_offsets.push(used);
      this.key_lengths.push(key_length);
      this.hashes.push(hash);
      used += key_length;
    });
    const count = this.hashes.length;
    if (count > 0) {
      this.deletes_pending[p] = count;
      const request = new PendingRequest(0, count, 0, 0, (done) => this.onDeletesAnswered(p, done));
      const ref = new OpRef();
      for (let i = 0; i < count; i++) {
        partition.enqueue(ref.set(request, i, Op.DELETE, this.hashes[i]!, this.key_buffer, this.key_offsets[i]!, this.key_lengths[i]!, EMPTY, 0, 0));
      }
      if (flush) partition.flush();
    }
    this.checkFinished();
  }

  private onDeletesAnswered(p: number, request: PendingRequest): void {
    this.deletes_pending[p] = 0;
    for (let i = 0; i < request.op_count; i++) {
      const status = request.status[i]!;
      if (status === Status.OK) this.keys_deleted++;
      else if (status !== Status.NOT_FOUND) {
        this.delete_failures++;
        this.failed_this_scan = true;
      }
    }
    // The partition's next step waits for the next reply or timer tick: here its worker may be gone (WORKER_RESTARTED).
    if (!this.stopped) this.checkFinished();
  }

  private checkFinished(): void {
    if (this.state !== 'scanning' && this.state !== 'deleting') return;
    if (!this.cursors.every((c) => c >= SCAN_END)) return;
    this.state = 'deleting';
    if (!this.deletes_pending.every((n) => n === 0)) return;
    if (this.failed_this_scan) {
      this.log(`epoch ${this.epoch}: clean-up: some deletes failed (${this.delete_failures} so far); scanning again`);
      this.failed_this_scan = false;
      this.cursors.fill(0);
      this.scans++;
      this.state = 'scanning';
      this.schedule(RESCAN_DELAY_MS);
      return;
    }
    this.state = 'done';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.keys_deleted > 0) this.log(`epoch ${this.epoch}: clean-up done: deleted ${this.keys_deleted} keys this node no longer owns`);
    this.onDone(this.epoch);
  }

  /** Drives scan steps of idle partitions when no worker reply would. */
  private schedule(delay_ms: number): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimer(), delay_ms);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    if (this.stopped || this.state === 'done' || this.state === 'waiting') return;
    if (this.state === 'scanning') {
      for (const partition of this.partitions) if (partition.isIdle()) this.scanStep(partition, true);
    }
    if ((this.state as CleanupState) === 'done') return;
    this.schedule(this.state === 'scanning' ? TIMER_BUSY_MS : TIMER_IDLE_MS);
  }
}

/** True if some slot this node keeps a copy of in `before` it keeps in neither placement of `after`. */
export function losesRanges(before: ViewRings, after: ViewRings, self: string): boolean {
  for (let slot = 0; slot < RING_SLOTS; slot++) {
    const hash = (slot << 16) >>> 0;
    if (before.keeps(self, hash) && !after.keeps(self, hash)) return true;
  }
  return false;
}

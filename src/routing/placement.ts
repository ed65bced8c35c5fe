/**
 * Where each key lives under one configuration (docs/REPLICATION.md): the ring of a view's
 * members, its replication factor N, and the members marked down.
 *
 * A slot's replicas are its first N ranked nodes (HashRing.ranking), down or not: a node that
 * goes down keeps its place, so its slots keep their replica sets and no copy moves until the
 * controller removes it. The slot's primary is its first replica not marked down; it takes
 * every op of the slot's keys. A slot whose N replicas are all down has no primary: its ops fail
 * NODE_DOWN. With N = 1 and nobody down this is exactly the ring's owner.
 *
 * A slot with fewer than `min_replicas` copies up is under-replicated past its limit: its
 * primary refuses writes with NOT_ENOUGH_REPLICAS (reads go on), as Kafka does with
 * min.insync.replicas. The limit is on copies up, so a cluster of fewer nodes than M refuses
 * every write: that is what the operator asked for.
 */
import { HashRing, RING_SLOT_BITS, RING_SLOTS, type RingNode } from './ring.js';

const SLOT_SHIFT = 32 - RING_SLOT_BITS;
/** primary_index of a slot whose replicas are all down. */
export const NO_PRIMARY = 0xffff;
export const REPLICAS_MAX = 5;

export class Placement {
  readonly ring: HashRing;
  /** Replicas per slot: the view's N capped at the node count. */
  readonly replicas: number;
  readonly down: ReadonlySet<string>;
  /** Each slot's ranked replicas, `replicas` entries per slot (indices into ring.nodes). */
  readonly ranked: Uint16Array;
  /** Each slot's primary (index into ring.nodes), or NO_PRIMARY. */
  readonly primary_index: Uint16Array;
  /** The view's M: the fewest copies up with which a slot takes writes. */
  readonly min_replicas: number;
  /** Each slot's replicas that are not down (its in-sync count). */
  readonly live_count: Uint8Array;
  private readonly down_index: Uint8Array;

  constructor(ring: HashRing, replicas: number, down: ReadonlySet<string>, min_replicas = 1) {
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > REPLICAS_MAX) throw new RangeError(`replicas must be 1..${REPLICAS_MAX}`);
    if (!Number.isInteger(min_replicas) || min_replicas < 1 || min_replicas > REPLICAS_MAX) throw new RangeError(`min_replicas must be 1..${REPLICAS_MAX}`);
    this.ring = ring;
    this.min_replicas = min_replicas;
    this.replicas = Math.min(replicas, ring.nodes.length);
    this.down = down;
    this.down_index = new Uint8Array(ring.nodes.length);
    ring.nodes.forEach((node, index) => (this.down_index[index] = down.has(node.id) ? 1 : 0));
    this.ranked = ring.ranking(this.replicas);
    const primary_index = new Uint16Array(RING_SLOTS).fill(NO_PRIMARY);
    const live_count = new Uint8Array(RING_SLOTS);
    const k = this.replicas;
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      for (let i = 0; i < k; i++) {
        const index = this.ranked[slot * k + i]!;
        if (this.down_index[index] !== 0) continue;
        if (primary_index[slot] === NO_PRIMARY) primary_index[slot] = index;
        live_count[slot]!++;
      }
    }
    this.primary_index = primary_index;
    this.live_count = live_count;
  }

  /** True if this key hash's slot has at least `min_replicas` copies up: its writes may be taken. */
  writable(hash: number): boolean {
    return this.live_count[hash >>> SLOT_SHIFT]! >= this.min_replicas;
  }

  /** Slots with fewer copies up than N (under-replicated) and, of those, fewer than M (refusing writes). */
  underReplicated(): { slots_under: number; slots_refusing_writes: number } {
    let slots_under = 0, slots_refusing_writes = 0;
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      const live = this.live_count[slot]!;
      if (live < this.replicas) slots_under++;
      if (live < this.min_replicas) slots_refusing_writes++;
    }
    return { slots_under, slots_refusing_writes };
  }

  indexOf(id: string): number {
    return this.ring.nodes.findIndex((n) => n.id === id);
  }

  /** The node that takes ops for this key hash, or null when all its replicas are down. */
  primaryOf(hash: number): RingNode | null {
    const index = this.primary_index[hash >>> SLOT_SHIFT]!;
    return index === NO_PRIMARY ? null : this.ring.nodes[index]!;
  }

  /** True if node `index` (into ring.nodes) is this hash's primary. */
  isPrimary(hash: number, index: number): boolean {
    return this.primary_index[hash >>> SLOT_SHIFT] === index;
  }

  /** True if node `id` is one of this hash's N replicas (down or not): it keeps its copy. */
  holds(id: string, hash: number): boolean {
    const base = (hash >>> SLOT_SHIFT) * this.replicas;
    for (let i = 0; i < this.replicas; i++) if (this.ring.nodes[this.ranked[base + i]!]!.id === id) return true;
    return false;
  }

  /** True if node `id` is one of this hash's replicas and not down: it holds every committed write. */
  inSyncHolder(id: string, hash: number): boolean {
    return !this.down.has(id) && this.holds(id, hash);
  }

  /**
   * The `pick`-th (modulo their count) in-sync replica of the slot, or null when every replica
   * is down; for spreading reads without building the in-sync list each time.
   */
  inSyncAt(slot: number, pick: number): RingNode | null {
    let live = 0;
    for (let i = 0; i < this.replicas; i++) if (this.down_index[this.ranked[slot * this.replicas + i]!] === 0) live++;
    if (live === 0) return null;
    let skip = pick % live;
    for (let i = 0; i < this.replicas; i++) {
      const index = this.ranked[slot * this.replicas + i]!;
      if (this.down_index[index] !== 0) continue;
      if (skip-- === 0) return this.ring.nodes[index]!;
    }
    return null;
  }

  /** The slot's replicas that are not down: its in-sync set, primary first. */
  inSync(slot: number): RingNode[] {
    const result: RingNode[] = [];
    for (let i = 0; i < this.replicas; i++) {
      const index = this.ranked[slot * this.replicas + i]!;
      if (this.down_index[index] === 0) result.push(this.ring.nodes[index]!);
    }
    return result;
  }

  isDown(id: string): boolean {
    return this.down.has(id);
  }
}

export function slotOf(hash: number): number {
  return hash >>> SLOT_SHIFT;
}

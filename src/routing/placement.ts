/**
 * Where each key lives under one configuration (docs/REPLICATION.md): the ring of a view's
 * members, its replication factor N, and the members marked down.
 *
 * A slot's replicas are its first N ranked nodes (HashRing.ranking), down or not: a node that
 * goes down keeps its place, so its slots keep their replica sets and no copy moves until the
 * controller removes it. The slot's primary is its first replica not marked down; it takes
 * every op of the slot's keys. A slot whose N replicas are all down has no primary: its ops fail
 * NODE_DOWN. With N = 1 and nobody down this is exactly the ring's owner.
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
  private readonly down_index: Uint8Array;

  constructor(ring: HashRing, replicas: number, down: ReadonlySet<string>) {
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > REPLICAS_MAX) throw new RangeError(`replicas must be 1..${REPLICAS_MAX}`);
    this.ring = ring;
    this.replicas = Math.min(replicas, ring.nodes.length);
    this.down = down;
    this.down_index = new Uint8Array(ring.nodes.length);
    ring.nodes.forEach((node, index) => (this.down_index[index] = down.has(node.id) ? 1 : 0));
    this.ranked = ring.ranking(this.replicas);
    const primary_index = new Uint16Array(RING_SLOTS).fill(NO_PRIMARY);
    const k = this.replicas;
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      for (let i = 0; i < k; i++) {
        const index = this.ranked[slot * k + i]!;
        if (this.down_index[index] === 0) {
          primary_index[slot] = index;
          break;
        }
      }
    }
    this.primary_index = primary_index;
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

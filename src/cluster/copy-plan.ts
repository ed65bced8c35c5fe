/**
 * Where this node must copy the writes it applies, slot by slot, under one view
 * (docs/REPLICATION.md): for each slot it is the primary of, the other nodes of the slot's
 * in-sync set, plus the nodes that gain the slot in the change in progress (the targets; the
 * data move's scan sends them the slot's old values too). Built once per adopted view, so the
 * per-write work is one table lookup.
 */
import { REPLICAS_MAX, type Placement } from '../routing/placement.js';
import { RING_SLOTS, type RingNode } from '../routing/ring.js';
import type { ViewRings } from '../routing/view.js';

/** In-sync copies plus targets of one slot, at most. */
export const COPIES_MAX = 2 * REPLICAS_MAX;
export const NO_PEER = 0xff;

export class CopyPlan {
  /** Destinations of each slot's writes: COPIES_MAX entries per slot, indices into `peers`, NO_PEER after the last. */
  readonly copies: Uint8Array;
  /** The subset of `copies` that gains the slot in the change in progress, same layout. */
  readonly targets: Uint8Array;
  readonly peers: RingNode[] = [];
  /** True when no slot has a copy: the node copies nothing (N = 1 and no change in progress). */
  readonly empty: boolean;
  /** Slots this node is primary of that have targets. */
  readonly slots_moving: number;

  constructor(rings: ViewRings | null, self: string) {
    this.copies = new Uint8Array(rings === null || rings.current === null ? 0 : RING_SLOTS * COPIES_MAX).fill(NO_PEER);
    this.targets = new Uint8Array(this.copies.length).fill(NO_PEER);
    let any = false;
    let moving = 0;
    const current = rings?.current ?? null;
    if (current !== null) {
      const self_index = current.indexOf(self);
      const peer_index = new Map<string, number>();
      const indexOf = (node: RingNode): number => {
        let index = peer_index.get(node.id);
        if (index === undefined) {
          index = this.peers.length;
          if (index >= NO_PEER) throw new Error('copy plan: too many peers');
          this.peers.push(node);
          peer_index.set(node.id, index);
        }
        return index;
      };
      const target = rings!.target;
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        if (self_index < 0 || current.primary_index[slot] !== self_index) continue;
        const base = slot * COPIES_MAX;
        let count = 0;
        let targets = 0;
        for (let i = 0; i < current.replicas; i++) {
          const node = current.ring.nodes[current.ranked[slot * current.replicas + i]!]!;
          if (node.id === self || current.isDown(node.id)) continue;
          this.copies[base + count++] = indexOf(node);
        }
        if (target !== null) {
          for (let i = 0; i < target.replicas; i++) {
            const node = target.ring.nodes[target.ranked[slot * target.replicas + i]!]!;
            if (node.id === self || target.isDown(node.id) || inSync(current, slot, node.id)) continue;
            const index = indexOf(node);
            this.copies[base + count++] = index;
            this.targets[base + targets++] = index;
          }
        }
        if (count > 0) any = true;
        if (targets > 0) moving++;
      }
    }
    this.empty = !any;
    this.slots_moving = moving;
  }
}

function inSync(placement: Placement, slot: number, id: string): boolean {
  for (let i = 0; i < placement.replicas; i++) {
    const node = placement.ring.nodes[placement.ranked[slot * placement.replicas + i]!]!;
    if (node.id === id) return !placement.isDown(id);
  }
  return false;
}

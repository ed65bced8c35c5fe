/**
 * The consistent-hash ring: which node owns a key.
 *
 * Every node contributes `vnodes_per_weight × weight` points ("virtual nodes") on a 32-bit
 * circle, at murmur3_x86_32("<node id>#<i>", RING_SEED). A key hashes to
 * murmur3_x86_32(key, KEY_HASH_SEED) — the same hash that picks its partition inside a node —
 * and belongs to the first point at or after it, wrapping at 2^32. Many points per node keep
 * shares even (ThunderDB's one point per node gave one of 3 nodes 61% of the keys) and spread
 * a joining node's load over every other node.
 *
 * Points are kept in one sorted Uint32Array with a parallel array of owner indices, so a
 * lookup is a binary search with no allocation. Nodes, the client library and the CLI all use
 * this one implementation; it depends only on the view it is built from, so any two builds
 * of the same view agree exactly.
 */
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';

/** Seed for virtual-node positions ("RING" in ASCII). Changing it moves every key. */
export const RING_SEED = 0x52494e47;
export const VNODES_PER_WEIGHT_DEFAULT = 128;
/** Bounds that keep a ring's arrays small on a Pi: 64 nodes × weight 16 × 128 points = 131k points. */
export const RING_NODES_MAX = 64;
export const NODE_WEIGHT_MAX = 16;

export interface RingNode {
  /** Stable, unique name; its points are derived from it. */
  id: string;
  /** Where clients and peers reach it, e.g. ws://10.0.0.2:7070. */
  url: string;
  /** Relative capacity; 1 is a typical board. Points scale with it. */
  weight: number;
}

const encoder = new TextEncoder();

export class HashRing {
  readonly nodes: readonly RingNode[];
  /** Point positions, ascending. */
  readonly points: Uint32Array;
  /** Index into `nodes` of each point's owner. */
  readonly owners: Uint16Array;

  constructor(nodes: readonly RingNode[], vnodes_per_weight = VNODES_PER_WEIGHT_DEFAULT) {
    if (nodes.length === 0) throw new RangeError('a ring needs at least one node');
    if (nodes.length > RING_NODES_MAX) throw new RangeError(`a ring holds at most ${RING_NODES_MAX} nodes`);
    const ids = new Set<string>();
    for (const node of nodes) {
      if (ids.has(node.id)) throw new RangeError(`node id "${node.id}" appears twice`);
      ids.add(node.id);
      if (!Number.isInteger(node.weight) || node.weight < 1 || node.weight > NODE_WEIGHT_MAX) {
        throw new RangeError(`node "${node.id}": weight must be a whole number from 1 to ${NODE_WEIGHT_MAX}`);
      }
    }
    // Sorting by id first makes the result independent of the order nodes were listed in.
    this.nodes = [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const entries: { position: number; owner: number }[] = [];
    this.nodes.forEach((node, owner) => {
      const count = vnodes_per_weight * node.weight;
      for (let i = 0; i < count; i++) {
        const label = encoder.encode(`${node.id}#${i}`);
        entries.push({ position: murmur3_x86_32(label, 0, label.length, RING_SEED), owner });
      }
    });
    // Equal positions (rare) are ordered by owner, which is ordered by id: deterministic.
    entries.sort((a, b) => a.position - b.position || a.owner - b.owner);
    this.points = Uint32Array.from(entries, (entry) => entry.position);
    this.owners = Uint16Array.from(entries, (entry) => entry.owner);
  }

  /** Index of the first point at or after `hash`, wrapping to 0. */
  private pointAfter(hash: number): number {
    const points = this.points;
    let low = 0;
    let high = points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (points[middle]! < hash) low = middle + 1;
      else high = middle;
    }
    return low === points.length ? 0 : low;
  }

  /** Index into `nodes` of the owner of a key hash. */
  ownerIndex(hash: number): number {
    return this.owners[this.pointAfter(hash >>> 0)]!;
  }

  ownerOf(hash: number): RingNode {
    return this.nodes[this.ownerIndex(hash)]!;
  }

  /** The owner of `key` (its bytes, or a string's UTF-8). */
  ownerOfKey(key: Uint8Array | string): RingNode {
    const bytes = typeof key === 'string' ? encoder.encode(key) : key;
    return this.ownerOf(murmur3_x86_32(bytes, 0, bytes.length, KEY_HASH_SEED));
  }

  /**
   * Up to `count` distinct nodes for a key hash, in ring order starting with its owner: the
   * replicas a replicated write would go to.
   */
  preferenceList(hash: number, count: number): RingNode[] {
    const wanted = Math.min(count, this.nodes.length);
    const chosen: number[] = [];
    const start = this.pointAfter(hash >>> 0);
    for (let step = 0; step < this.points.length && chosen.length < wanted; step++) {
      const owner = this.owners[(start + step) % this.points.length]!;
      if (!chosen.includes(owner)) chosen.push(owner);
    }
    return chosen.map((index) => this.nodes[index]!);
  }

  /**
   * The arcs each node owns, as [start, end) hash ranges (end exclusive, wrapping arcs split
   * in two). A point at position p owns (previous point, p]; as half-open ranges that is
   * [previous + 1, p + 1).
   */
  ranges(): { node: RingNode; start: number; end: number }[] {
    const result: { node: RingNode; start: number; end: number }[] = [];
    const points = this.points;
    for (let i = 0; i < points.length; i++) {
      const node = this.nodes[this.owners[i]!]!;
      const end = points[i]! + 1;
      if (i === 0) {
        result.push({ node, start: 0, end });
        result.push({ node, start: points[points.length - 1]! + 1, end: 2 ** 32 });
      } else {
        result.push({ node, start: points[i - 1]! + 1, end });
      }
    }
    return result.filter((range) => range.end > range.start);
  }
}

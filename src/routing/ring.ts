/**
 * The consistent-hash ring: which node owns a key.
 *
 * A key hashes to murmur3_x86_32(key, KEY_HASH_SEED) — the same hash that picks its partition
 * inside a node. The circle of 2^32 hashes is cut into RING_SLOTS = 2^16 equal slots (slot =
 * hash >>> 16), and each slot belongs to the node with the highest score for it (rendezvous,
 * or highest-random-weight, hashing):
 *
 * - Node x's scores are one pseudo-random permutation P_x of 0..RING_SLOTS-1, shuffled by a
 *   generator seeded from murmur3_x86_32(x's id). A permutation rather than independent random
 *   scores means each node has exactly one score in every band, so no node is lucky over many
 *   slots at once: slot counts spread less than with independent scores, and 2^16 slots
 *   give every size from 2 to 16 equal nodes at most 1.03x the fair share in our runs
 *   (`node dist/bench/ring-spread.js` prints the table). 128 random virtual nodes per node,
 *   the previous placement, gave up to 1.25x (one of 4 nodes owned 28.7%).
 * - A node of weight w scores slot i by the best of w entries of its permutation,
 *   P_x[(i + k × RING_SLOTS/16) mod RING_SLOTS] for k < w: the max of w draws, so its chance of
 *   winning a slot is proportional to w, with integer arithmetic only.
 * - Ties (two nodes with the same score for a slot) go to the smaller id.
 *
 * A slot's owner is thus the maximum of a ranking of node ids that depends only on the slot,
 * never on which other nodes are present. That is what makes the ring consistent: a joining
 * node takes exactly the slots where it ranks first, all from other nodes and nothing moves
 * between them (≈1/(n+1) of the keys); a leaving node's slots go to their runner-up, spread
 * over all the others; raising a node's weight only moves slots to it.
 *
 * Ownership is a table of RING_SLOTS owner indices, so a lookup is one shift and one load
 * (128 KiB, fits in cache). Runs of slots with one owner are also listed as sorted arc ends
 * (`points`, `owners`), so the ring still reads as arcs: a key belongs to the first point at
 * or after its hash, wrapping — migration and clean-up walk those arcs. A slot's preference
 * list (its replicas, docs/REPLICATION.md) is its nodes ranked by the same score, best first.
 *
 * Building costs one shuffle per node plus RING_SLOTS × total weight comparisons (~11 ms for
 * 16 nodes on x86, once per view). Nodes, the client library and the CLI all use this one
 * implementation; it depends only on the view it is built from, so any two builds of the same
 * view agree exactly (exact integer arithmetic, ids sorted first).
 */
import { fmix32, KEY_HASH_SEED, murmur3_x86_32 } from './murmur3.js';

/** Seed for node scores ("RING" in ASCII). Changing it moves every key. */
export const RING_SEED = 0x52494e47;
/** Second seed, so two ids collide only if both 32-bit hashes do. */
const RING_SEED_2 = 0x534c4f54; // "SLOT"
export const RING_SLOT_BITS = 16;
/** Equal slots of the hash circle; changing it moves every key. */
export const RING_SLOTS = 1 << RING_SLOT_BITS;
const SLOT_SHIFT = 32 - RING_SLOT_BITS;
const SLOT_MASK = RING_SLOTS - 1;
export const RING_NODES_MAX = 64;
export const NODE_WEIGHT_MAX = 16;
/** Offset between the permutation entries a weighted node takes the best of; distinct for k < NODE_WEIGHT_MAX. */
const WEIGHT_STRIDE_SLOTS = RING_SLOTS / NODE_WEIGHT_MAX;
/** Hash of the last byte of slot i: its arc end. */
const SLOT_HASHES = 2 ** SLOT_SHIFT;

export interface RingNode {
  /** Stable, unique name; its scores are derived from it. */
  id: string;
  /** Where clients and peers reach it, e.g. ws://10.0.0.2:7070. */
  url: string;
  /** Relative capacity; 1 is a typical board. Its share of slots scales with it. */
  weight: number;
  /**
   * The process incarnation the cluster admitted (etcd mode, docs/REPLICATION.md): a node that
   * restarts is a new incarnation and serves nothing until the old one is marked down. The
   * ring ignores it.
   */
  incarnation?: string | undefined;
}

const encoder = new TextEncoder();

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`ring invariant: ${message}`);
}


/**
 * Fills `permutation` with node `id`'s scores: a Fisher-Yates shuffle of 0..RING_SLOTS-1
 * driven by a counter-based generator keyed by two hashes of the id. Index draws use
 * floor(r × (i + 1) / 2^32), exact in doubles (r < 2^32, i < 2^16); its bias, under 2^-16,
 * does not matter here.
 */
function fillPermutation(id: string, permutation: Uint32Array): void {
  const label = encoder.encode(id);
  const key_a = murmur3_x86_32(label, 0, label.length, RING_SEED);
  const key_b = murmur3_x86_32(label, 0, label.length, RING_SEED_2);
  for (let i = 0; i < RING_SLOTS; i++) permutation[i] = i;
  for (let i = RING_SLOTS - 1; i > 0; i--) {
    const random = fmix32(fmix32((key_a ^ Math.imul(i, 0x9e3779b1)) >>> 0) ^ key_b);
    const j = Math.floor((random * (i + 1)) / 4294967296);
    const swap = permutation[i]!;
    permutation[i] = permutation[j]!;
    permutation[j] = swap;
  }
}

/** A node's score for a slot: the best of `weight` entries of its permutation (see the header). */
function scoreOf(permutation: Uint32Array, slot: number, weight: number): number {
  let score = permutation[slot]!;
  for (let k = 1; k < weight; k++) {
    const other = permutation[(slot + k * WEIGHT_STRIDE_SLOTS) & SLOT_MASK]!;
    if (other > score) score = other;
  }
  return score;
}

/** What a ring computes from its nodes' ids and weights alone (urls and incarnations play no part). */
interface RingLayout {
  slot_owners: Uint16Array;
  points: Uint32Array;
  owners: Uint16Array;
  rankings: Map<number, Uint16Array>;
}

/**
 * Layouts of the last few id/weight sets, newest last. A controller rebuilds the rings of the
 * same view on every tick, and a node the rings of each view it adopts, mostly of the same
 * members: the build (~4 ms per node here, several times that on a Pi) is then skipped. The
 * arrays are never written after the build, so rings may share them.
 */
const LAYOUTS = new Map<string, RingLayout>();
const LAYOUTS_MAX = 8;

export class HashRing {
  /** Nodes sorted by id; owner indices point into this. */
  readonly nodes: readonly RingNode[];
  /** Owner index (into `nodes`) of each slot: the lookup table. */
  readonly slot_owners: Uint16Array;
  /** Arc ends, ascending: the last hash of each run of slots with one owner. */
  readonly points: Uint32Array;
  /** Index into `nodes` of each arc's owner. */
  readonly owners: Uint16Array;
  /** Top-k rankings already computed, by k (see ranking()); shared with rings of the same layout. */
  private readonly rankings: Map<number, Uint16Array>;

  constructor(nodes: readonly RingNode[]) {
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
    // Sorting by id makes the result independent of the order nodes were listed in, and makes
    // "lower index wins a tie" mean "smaller id wins", a rule that does not depend on the set.
    this.nodes = [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const layout_key = this.nodes.map((node) => `${node.id}\u0000${node.weight}`).join('\u0000');
    const layout = LAYOUTS.get(layout_key) ?? HashRing.build(this.nodes);
    LAYOUTS.delete(layout_key);
    LAYOUTS.set(layout_key, layout);
    if (LAYOUTS.size > LAYOUTS_MAX) LAYOUTS.delete(LAYOUTS.keys().next().value!);
    this.slot_owners = layout.slot_owners;
    this.points = layout.points;
    this.owners = layout.owners;
    this.rankings = layout.rankings;
  }

  /** Slot owners and arcs of `nodes` (sorted by id, checked). */
  private static build(nodes: readonly RingNode[]): RingLayout {
    const slot_owners = new Uint16Array(RING_SLOTS);
    const best_scores = new Int32Array(RING_SLOTS).fill(-1);
    const permutation = new Uint32Array(RING_SLOTS);
    nodes.forEach((node, owner) => {
      fillPermutation(node.id, permutation);
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        const score = scoreOf(permutation, slot, node.weight);
        // Strictly greater: on a tie the earlier (smaller) id keeps the slot.
        if (score > best_scores[slot]!) {
          best_scores[slot] = score;
          slot_owners[slot] = owner;
        }
      }
    });
    for (const score of best_scores) check(score >= 0, 'every slot has an owner');

    // An arc ends at every slot whose successor has another owner. With one owner for all
    // slots there is no such slot; one point at the top of the circle then covers it all.
    let arc_count = 0;
    for (let slot = 0; slot < RING_SLOTS; slot++) if (slot_owners[slot] !== slot_owners[(slot + 1) & SLOT_MASK]) arc_count++;
    const points = new Uint32Array(Math.max(arc_count, 1));
    const owners = new Uint16Array(points.length);
    if (arc_count === 0) {
      points[0] = 0xffffffff;
      owners[0] = slot_owners[0]!;
    } else {
      let arc = 0;
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        if (slot_owners[slot] === slot_owners[(slot + 1) & SLOT_MASK]) continue;
        points[arc] = (slot + 1) * SLOT_HASHES - 1;
        owners[arc] = slot_owners[slot]!;
        arc++;
      }
      check(arc === arc_count, 'arc count');
    }
    return { slot_owners, points, owners, rankings: new Map() };
  }

  /** Index into `nodes` of the owner of a key hash. */
  ownerIndex(hash: number): number {
    return this.slot_owners[hash >>> SLOT_SHIFT]!;
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
   * Each slot's preference list: the indices (into `nodes`) of its `count` best-scoring nodes,
   * best first, at [slot × count, slot × count + count). Entry 0 is the owner (ownerIndex), so a
   * slot's replicas are its owner and the runners-up that would own it if the ones before them
   * were gone: when a node goes, each of its slots gains the next node of its own ranking, and
   * re-replication spreads over every survivor. `count` is capped at the node count. Computed
   * once per ring and count (one more pass of node scores, about as long as the build).
   */
  ranking(count: number): Uint16Array {
    const k = Math.min(count, this.nodes.length);
    let ranked = this.rankings.get(k);
    if (ranked !== undefined) return ranked;
    ranked = new Uint16Array(RING_SLOTS * k);
    const scores = new Int32Array(RING_SLOTS * k).fill(-1);
    const permutation = new Uint32Array(RING_SLOTS);
    this.nodes.forEach((node, index) => {
      fillPermutation(node.id, permutation);
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        const score = scoreOf(permutation, slot, node.weight);
        const base = slot * k;
        // Strictly greater moves a node ahead: on a tie the earlier (smaller) id stays ahead.
        if (score <= scores[base + k - 1]!) continue;
        let position = k - 1;
        while (position > 0 && score > scores[base + position - 1]!) {
          scores[base + position] = scores[base + position - 1]!;
          ranked[base + position] = ranked[base + position - 1]!;
          position--;
        }
        scores[base + position] = score;
        ranked[base + position] = index;
      }
    });
    for (let slot = 0; slot < RING_SLOTS; slot++) check(ranked[slot * k] === this.slot_owners[slot], 'rank 0 is the owner');
    this.rankings.set(k, ranked);
    return ranked;
  }

  /**
   * Up to `count` distinct nodes for a key hash, best first (see ranking()): the replicas of
   * its slot, starting with its owner.
   */
  preferenceList(hash: number, count: number): RingNode[] {
    const ranked = this.ranking(count);
    const k = Math.min(count, this.nodes.length);
    const base = (hash >>> SLOT_SHIFT) * k;
    const result: RingNode[] = [];
    for (let i = 0; i < k; i++) result.push(this.nodes[ranked[base + i]!]!);
    return result;
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

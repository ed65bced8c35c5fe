import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HashRing, RING_SLOTS, type RingNode } from '../src/routing/ring.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';

function nodes(count: number, weight = 1): RingNode[] {
  return Array.from({ length: count }, (_, i) => ({ id: `pi-${i + 1}`, url: `ws://10.0.0.${i + 1}:7070`, weight }));
}

function ringOf(ids: string[], weights?: number[]): HashRing {
  return new HashRing(ids.map((id, i) => ({ id, url: `ws://${id}:7070`, weight: weights?.[i] ?? 1 })));
}

/** Realistic id families: a, b, ...; pi1, pi2, ...; and random strings. */
function idFamilies(count: number): string[][] {
  let state = 0x9e3779b9 ^ count;
  const next = (): string => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0).toString(36);
  };
  return [
    Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i)),
    Array.from({ length: count }, (_, i) => `pi${i + 1}`),
    Array.from({ length: count }, () => next() + next()),
  ];
}

function randomKeys(count: number, seed: number): Uint32Array {
  // Hashes of random 16-byte keys, as the node computes them.
  const hashes = new Uint32Array(count);
  const key = new Uint8Array(16);
  let state = seed;
  for (let i = 0; i < count; i++) {
    for (let b = 0; b < 16; b++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      key[b] = state & 0xff;
    }
    hashes[i] = murmur3_x86_32(key, 0, 16, KEY_HASH_SEED);
  }
  return hashes;
}

const KEYS_1M = randomKeys(1_000_000, 0x2545f491);

/** Max over nodes of (keys owned / fair share by weight). */
function maxOverFair(ring: HashRing, hashes: Uint32Array): number {
  const counts = new Float64Array(ring.nodes.length);
  for (const hash of hashes) counts[ring.ownerIndex(hash)]!++;
  const total_weight = ring.nodes.reduce((sum, node) => sum + node.weight, 0);
  return Math.max(...ring.nodes.map((node, i) => counts[i]! / ((hashes.length * node.weight) / total_weight)));
}

describe('HashRing', () => {
  it('gives no node more than 1.05x its fair share of 1M random keys with 4 nodes', () => {
    const ring = new HashRing(nodes(4));
    const ratio = maxOverFair(ring, KEYS_1M);
    assert.ok(ratio <= 1.05, `max/fair ${ratio.toFixed(3)}`);
  });

  it('keeps every node within 1.05x its fair share for 2 to 16 equal nodes, whatever the ids', () => {
    const hashes = KEYS_1M.subarray(0, 200_000);
    for (let count = 2; count <= 16; count++) {
      for (const ids of idFamilies(count)) {
        const ratio = maxOverFair(ringOf(ids), hashes);
        assert.ok(ratio <= 1.05, `${count} nodes [${ids.join(',')}]: max/fair ${ratio.toFixed(3)}`);
      }
    }
  });

  it('gives nodes shares proportional to their weights, within 1.05x', () => {
    for (const weights of [[1, 2], [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 4, 8, 16], [16, 16, 16, 1]]) {
      const ring = ringOf(weights.map((_, i) => `pi${i + 1}`), weights);
      const ratio = maxOverFair(ring, KEYS_1M);
      assert.ok(ratio <= 1.05, `weights [${weights.join(',')}]: max/fair ${ratio.toFixed(3)}`);
    }
  });

  it('balances replica load: the first 2 distinct nodes of a key within 1.1x of fair', () => {
    const hashes = KEYS_1M.subarray(0, 100_000);
    for (let count = 2; count <= 16; count++) {
      for (const ids of idFamilies(count)) {
        const ring = ringOf(ids);
        const counts = new Map<string, number>();
        for (const hash of hashes) for (const node of ring.preferenceList(hash, 2)) counts.set(node.id, (counts.get(node.id) ?? 0) + 1);
        const fair = (hashes.length * 2) / count;
        const ratio = Math.max(...counts.values()) / fair;
        assert.ok(ratio <= 1.1, `${count} nodes [${ids.join(',')}]: replica max/fair ${ratio.toFixed(3)}`);
      }
    }
  });

  it('agrees with itself whatever order the nodes are listed in', () => {
    const a = new HashRing(nodes(5));
    const b = new HashRing([...nodes(5)].reverse());
    assert.deepEqual(a.slot_owners, b.slot_owners);
    assert.deepEqual(a.points, b.points);
    for (const hash of randomKeys(10_000, 3)) assert.equal(a.ownerOf(hash).id, b.ownerOf(hash).id);
  });

  it('moves at most 1.1/(n+1) of the keys when the (n+1)th node joins, all to the new node', () => {
    const hashes = KEYS_1M.subarray(0, 200_000);
    for (let count = 2; count <= 16; count++) {
      for (const ids of idFamilies(count).slice(1)) {
        const before = ringOf(ids.slice(0, count - 1));
        const after = ringOf(ids);
        const joining = ids[count - 1]!;
        let moved = 0;
        for (const hash of hashes) {
          const to = after.ownerOf(hash).id;
          if (before.ownerOf(hash).id === to) continue;
          moved++;
          assert.equal(to, joining, 'a key only ever moves to the joining node');
        }
        assert.ok(moved / hashes.length <= 1.1 / count, `${count - 1} -> ${count} nodes moved ${(moved / hashes.length).toFixed(4)}`);
      }
    }
  });

  it('moves only the leaving node\'s keys when a node leaves, spread over all the others', () => {
    const before = ringOf(idFamilies(8)[1]!);
    const after = ringOf(idFamilies(8)[1]!.filter((id) => id !== 'pi3'));
    const received = new Map<string, number>();
    for (const hash of KEYS_1M.subarray(0, 200_000)) {
      const from = before.ownerOf(hash).id;
      const to = after.ownerOf(hash).id;
      if (from === 'pi3') received.set(to, (received.get(to) ?? 0) + 1);
      else assert.equal(to, from, 'a key of a staying node stays');
    }
    assert.equal(received.size, 7, 'every staying node takes a part');
  });

  it('moves keys only to a node whose weight is raised', () => {
    const ids = idFamilies(5)[1]!;
    const before = ringOf(ids, [1, 1, 1, 1, 1]);
    const after = ringOf(ids, [1, 1, 3, 1, 1]);
    for (const hash of KEYS_1M.subarray(0, 100_000)) {
      const to = after.ownerOf(hash).id;
      if (before.ownerOf(hash).id !== to) assert.equal(to, 'pi3');
    }
  });

  it('lists arcs that agree with the slot table: owner = first point at or after the hash', () => {
    for (const count of [1, 2, 3, 7]) {
      const ring = new HashRing(nodes(count));
      for (let i = 1; i < ring.points.length; i++) assert.ok(ring.points[i - 1]! < ring.points[i]!, 'points ascend');
      for (let i = 0; i < ring.points.length && ring.points.length > 1; i++) {
        assert.notEqual(ring.owners[i], ring.owners[(i + 1) % ring.points.length], 'neighbouring arcs have different owners');
      }
      const probes = [0, 1, 0xffffffff, ...ring.points.subarray(0, 50), ...ring.points.subarray(0, 50).map((p) => (p + 1) >>> 0), ...randomKeys(2000, 17)];
      for (const hash of probes) {
        let low = 0;
        let high = ring.points.length;
        while (low < high) {
          const middle = (low + high) >>> 1;
          if (ring.points[middle]! < hash) low = middle + 1;
          else high = middle;
        }
        assert.equal(ring.ownerIndex(hash), ring.owners[low === ring.points.length ? 0 : low], `hash ${hash}`);
      }
    }
    assert.deepEqual([...new HashRing(nodes(1)).points], [0xffffffff]);
  });

  it('returns a preference list of distinct nodes starting with the owner', () => {
    const ring = new HashRing(nodes(4));
    for (const hash of randomKeys(1000, 5)) {
      const list = ring.preferenceList(hash, 3);
      assert.equal(list.length, 3);
      assert.equal(list[0]!.id, ring.ownerOf(hash).id);
      assert.equal(new Set(list.map((node) => node.id)).size, 3);
    }
    assert.equal(ring.preferenceList(123, 10).length, 4);
    assert.equal(ring.preferenceList(0xffffffff, 4).length, 4, 'the walk wraps past the top of the circle');
  });

  it('lists ranges that cover the whole hash space once and match ownerOf', () => {
    const ring = new HashRing(nodes(3));
    const ranges = ring.ranges().sort((a, b) => a.start - b.start);
    let covered = 0;
    for (const range of ranges) {
      assert.equal(range.start, covered, 'ranges are contiguous');
      covered = range.end;
      assert.equal(ring.ownerOf(range.start).id, range.node.id);
      assert.equal(ring.ownerOf(range.end - 1).id, range.node.id);
    }
    assert.equal(covered, 2 ** 32);
    assert.equal(ring.slot_owners.length, RING_SLOTS);
  });

  it('refuses duplicate ids, bad weights and empty rings', () => {
    assert.throws(() => new HashRing([]), RangeError);
    assert.throws(() => new HashRing([...nodes(2), nodes(1)[0]!]), /appears twice/);
    assert.throws(() => new HashRing([{ id: 'a', url: 'ws://x', weight: 0 }]), /weight/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HashRing, type RingNode } from '../src/routing/ring.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';

function nodes(count: number, weight = 1): RingNode[] {
  return Array.from({ length: count }, (_, i) => ({ id: `pi-${i + 1}`, url: `ws://10.0.0.${i + 1}:7070`, weight }));
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

describe('HashRing', () => {
  it('gives no node more than 1.2x its fair share of 1M random keys with 4 nodes', () => {
    const ring = new HashRing(nodes(4));
    const counts = new Map<string, number>();
    const hashes = randomKeys(1_000_000, 0x2545f491);
    for (const hash of hashes) {
      const id = ring.ownerOf(hash).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const fair = 1_000_000 / 4;
    for (const [id, count] of counts) assert.ok(count <= 1.2 * fair, `${id} owns ${count} keys, ${(count / fair).toFixed(3)}x its share`);
    assert.equal(counts.size, 4);
  });

  it('places 128 points per unit of weight and scales a heavier node\'s share', () => {
    const weighted = [...nodes(3), { id: 'big', url: 'ws://10.0.0.9:7070', weight: 2 }];
    const ring = new HashRing(weighted);
    assert.equal(ring.points.length, 128 * 5);
    const hashes = randomKeys(200_000, 7);
    let big = 0;
    for (const hash of hashes) if (ring.ownerOf(hash).id === 'big') big++;
    assert.ok(big / hashes.length > 0.3 && big / hashes.length < 0.5, `big owns ${big / hashes.length}`);
  });

  it('agrees with itself whatever order the nodes are listed in', () => {
    const a = new HashRing(nodes(5));
    const b = new HashRing([...nodes(5)].reverse());
    assert.deepEqual(a.points, b.points);
    for (const hash of randomKeys(10_000, 3)) assert.equal(a.ownerOf(hash).id, b.ownerOf(hash).id);
  });

  it('moves only keys the new node takes when a node joins', () => {
    const before = new HashRing(nodes(3));
    const after = new HashRing(nodes(4));
    let moved = 0;
    const hashes = randomKeys(100_000, 11);
    for (const hash of hashes) {
      const from = before.ownerOf(hash).id;
      const to = after.ownerOf(hash).id;
      if (from !== to) {
        moved++;
        assert.equal(to, 'pi-4', 'a key only ever moves to the joining node');
      }
    }
    assert.ok(moved / hashes.length > 0.18 && moved / hashes.length < 0.32, `moved ${moved / hashes.length}`);
  });

  it('finds the owner by binary search, wrapping past the last point', () => {
    const ring = new HashRing(nodes(2));
    const last = ring.points[ring.points.length - 1]!;
    assert.equal(ring.ownerIndex(last), ring.owners[ring.points.length - 1]);
    assert.equal(ring.ownerIndex((last + 1) >>> 0), ring.owners[0]);
    assert.equal(ring.ownerIndex(0xffffffff), last === 0xffffffff ? ring.owners[ring.points.length - 1] : ring.owners[0]);
    assert.equal(ring.ownerIndex(ring.points[5]!), ring.owners[5]);
    assert.equal(ring.ownerIndex(ring.points[5]! + 1), ring.owners[6]);
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
  });

  it('refuses duplicate ids, bad weights and empty rings', () => {
    assert.throws(() => new HashRing([]), RangeError);
    assert.throws(() => new HashRing([...nodes(2), nodes(1)[0]!]), /appears twice/);
    assert.throws(() => new HashRing([{ id: 'a', url: 'ws://x', weight: 0 }]), /weight/);
  });
});

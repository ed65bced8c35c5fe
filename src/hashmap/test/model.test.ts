// Randomized model test: 1,000,000+ seeded ops against a Map model, through
// growths, tombstone-driven same-size rebuilds and shrinks.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyUniverse, verifyTable } from '../fixtures/model.js';
import { Prng } from '../fixtures/prng.js';
import { createTableMemory, HashTable, PUT_OK } from '../index.js';

interface Phase {
  name: string;
  ops: number;
  put: number; // probability; delete follows, the rest are lookups
  delete: number;
  /** 'random': ids uniform in [low, high). 'fifo': puts take fresh ids, deletes the oldest (tombstone churn). */
  keys: 'random' | 'fifo';
}

const PHASES: Phase[] = [
  { name: 'grow', ops: 250_000, put: 0.8, delete: 0.05, keys: 'random' },
  { name: 'churn', ops: 250_000, put: 0.45, delete: 0.45, keys: 'fifo' },
  { name: 'shrink', ops: 200_000, put: 0.04, delete: 0.8, keys: 'random' },
  { name: 'mixed', ops: 300_000, put: 0.5, delete: 0.3, keys: 'random' },
];
const KEY_COUNT = 160_000;
const GROW_KEY_COUNT = 40_000;
const VERIFY_EVERY_OPS = 50_000;

function valueLengthFor(prng: Prng, previous: Buffer | undefined): number {
  if (previous !== undefined && prng.chance(0.3)) return previous.length; // in-place overwrite
  if (prng.chance(0.01)) return 1024 + prng.below(7 * 1024);
  return prng.below(301);
}

describe('HashTable against a Map model', () => {
  it('agrees with the model over 1,000,000 seeded ops, with exact accounting', () => {
    const seed = Number(process.env['HASHMAP_SEED'] ?? 0x5eed);
    const prng = new Prng(seed);
    const keys = new KeyUniverse(KEY_COUNT, seed ^ 0x1234);
    const memory = createTableMemory(64 * 1024 * 1024);
    let table = new HashTable(memory);
    const model = new Map<number, Buffer>();
    const scratch = new Uint8Array(16 * 1024);
    let op_index = 0;
    let misses_seen = 0;
    let low = 0; // ids below `low` are no longer used by 'random' phases after churn
    let high = GROW_KEY_COUNT;
    for (const phase of PHASES) {
      if (phase.name === 'mixed') low = 0;
      for (let n = 0; n < phase.ops; n++, op_index++) {
        const roll = prng.nextU32() / 0x1_0000_0000;
        let id = low + prng.below(high - low);
        if (phase.keys === 'fifo' && roll < phase.put) id = high++;
        else if (phase.keys === 'fifo' && roll < phase.put + phase.delete) id = low++;
        const hash = keys.hashes[id]!;
        const key_offset = keys.offsets[id]!;
        const key_length = keys.lengths[id]!;
        if (roll < phase.put) {
          const value_length = valueLengthFor(prng, model.get(id));
          const value_offset = prng.below(64);
          prng.fill(scratch, value_offset, value_length);
          const result = table.put(hash, keys.bytes, key_offset, key_length, scratch, value_offset, value_length);
          assert.equal(result, PUT_OK, `seed ${seed} op ${op_index}: put`);
          model.set(id, Buffer.from(scratch.subarray(value_offset, value_offset + value_length)));
        } else if (roll < phase.put + phase.delete) {
          const existed = table.delete(hash, keys.bytes, key_offset, key_length);
          assert.equal(existed, model.delete(id), `seed ${seed} op ${op_index}: delete`);
        } else {
          const ref = table.find(hash, keys.bytes, key_offset, key_length);
          const expected = model.get(id);
          if (expected === undefined) misses_seen += 1;
          assert.equal(ref !== 0, expected !== undefined, `seed ${seed} op ${op_index}: find`);
          if (expected !== undefined) {
            assert.equal(table.valueLength(ref), expected.length);
            table.copyValue(ref, scratch, 1);
            assert.ok(expected.equals(scratch.subarray(1, 1 + expected.length)), `seed ${seed} op ${op_index}: value`);
          }
        }
        if (prng.chance(0.01)) table.step(prng.below(100));
        if ((op_index + 1) % VERIFY_EVERY_OPS === 0) {
          if (process.env["HASHMAP_DEBUG"]) console.log(phase.name, JSON.stringify(table.stats()));
          verifyTable(table, keys, model, `seed ${seed} ${phase.name} op ${op_index}`);
          assert.equal(table.stats().bytes_leaked, 0);
          // Simulated restart: a fresh view of the same buffer is the same table.
          table = new HashTable(memory);
        }
      }
    }
    verifyTable(table, keys, model, `seed ${seed} end`);
    const stats = table.stats();
    assert.ok(stats.index_grows >= 4, `grows ${stats.index_grows}`);
    assert.ok(stats.index_rebuilds >= 1, `same-size rebuilds ${stats.index_rebuilds}`);
    assert.ok(stats.index_shrinks >= 2, `shrinks ${stats.index_shrinks}`);
    assert.ok(misses_seen > 10_000, `misses ${misses_seen}`);
  });
});

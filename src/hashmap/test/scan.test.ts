// scan(): every key present and unchanged for a whole scan is visited, even while
// puts and deletes between steps grow, rebuild and shrink the slot array.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyUniverse } from '../fixtures/model.js';
import { Prng } from '../fixtures/prng.js';
import { createTableMemory, HashTable, PUT_OK, SCAN_END } from '../index.js';

const KEY_COUNT = 60_000;
const VALUE = new Uint8Array(24);

function putId(table: HashTable, keys: KeyUniverse, id: number): void {
  const result = table.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!, VALUE, 0, VALUE.length);
  assert.equal(result, PUT_OK);
}

function deleteId(table: HashTable, keys: KeyUniverse, id: number): void {
  table.delete(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!);
}

/** Scans to the end; between steps runs `between(step)`. Returns the keys seen, as strings. */
function scanAll(table: HashTable, entries_max: number, between: (step: number) => void): { seen: Map<string, number>; steps: number } {
  const seen = new Map<string, number>();
  const scratch = new Uint8Array(64);
  let cursor = 0;
  let steps = 0;
  while (cursor !== SCAN_END) {
    let in_step = 0;
    cursor = table.scan(cursor, entries_max, (ref) => {
      const length = table.keyLength(ref);
      table.copyKey(ref, scratch, 0);
      const key = Buffer.from(scratch.subarray(0, length)).toString('hex');
      seen.set(key, (seen.get(key) ?? 0) + 1);
      in_step++;
    });
    // About entries_max per step; the fixture gives 1 key in 97 the same hash, so not exactly.
    assert.ok(in_step <= entries_max * 16, `step ${steps} visited ${in_step} entries`);
    between(steps++);
    assert.ok(steps < 1_000_000, 'scan terminates');
  }
  return { seen, steps };
}

function keyHex(keys: KeyUniverse, id: number): string {
  return Buffer.from(keys.bytes.subarray(keys.offsets[id]!, keys.offsets[id]! + keys.lengths[id]!)).toString('hex');
}

describe('HashTable.scan', () => {
  it('visits every key exactly once on a quiet table', () => {
    const keys = new KeyUniverse(KEY_COUNT, 7);
    const table = new HashTable(createTableMemory(32 * 1024 * 1024));
    for (let id = 0; id < KEY_COUNT; id++) putId(table, keys, id);
    const { seen, steps } = scanAll(table, 1000, () => {});
    assert.equal(seen.size, KEY_COUNT);
    for (const count of seen.values()) assert.equal(count, 1);
    assert.ok(steps >= 50, `bounded steps: ${steps}`);
  });

  it('visits every untouched key while writes between steps grow, rebuild and shrink the index', () => {
    const keys = new KeyUniverse(KEY_COUNT, 11);
    const table = new HashTable(createTableMemory(32 * 1024 * 1024));
    const prng = new Prng(99);
    const stable = 5000; // ids below this are never touched during the scan
    for (let id = 0; id < 20_000; id++) putId(table, keys, id);
    const grows_before = table.stats().index_grows;
    const { seen } = scanAll(table, 64, (step) => {
      // First grow (inserts), then churn, then shrink (mass deletes).
      for (let n = 0; n < 200; n++) {
        const id = stable + prng.below(KEY_COUNT - stable);
        if (step < 150 || (step < 300 && prng.chance(0.5))) putId(table, keys, id);
        else deleteId(table, keys, id);
      }
    });
    const stats = table.stats();
    assert.ok(stats.index_grows > grows_before, 'the index grew during the scan');
    for (let id = 0; id < stable; id++) assert.ok(seen.has(keyHex(keys, id)), `untouched key ${id} was visited`);
  });

  it('finishes at once on an empty table', () => {
    const table = new HashTable(createTableMemory(1024 * 1024));
    assert.equal(table.scan(0, 100, () => assert.fail('no entries')), SCAN_END);
  });
});

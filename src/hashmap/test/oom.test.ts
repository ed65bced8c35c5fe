// Arena exhaustion: put reports PUT_OUT_OF_MEMORY, nothing is corrupted, and
// freed memory is reused.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyUniverse, verifyTable } from '../fixtures/model.js';
import { createTableMemory, HashTable, PUT_OK, PUT_OUT_OF_MEMORY, TABLE_BYTES_MIN } from '../index.js';

const VALUE = new Uint8Array(100).fill(7);
const BIG_VALUE = new Uint8Array(2000).fill(9);

function fill(table: HashTable, keys: KeyUniverse, model: Map<number, Buffer>, from: number): number {
  for (let id = from; id < keys.count; id++) {
    const result = table.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!, VALUE, 0, VALUE.length);
    if (result === PUT_OUT_OF_MEMORY) return id;
    assert.equal(result, PUT_OK);
    model.set(id, Buffer.from(VALUE));
  }
  assert.fail('arena never filled');
}

describe('out of memory', () => {
  it('returns PUT_OUT_OF_MEMORY, keeps every key, and reuses freed blocks', () => {
    const keys = new KeyUniverse(20_000, 99, 16); // one entry size class
    const memory = createTableMemory(TABLE_BYTES_MIN + 256 * 1024);
    const table = new HashTable(memory);
    const model = new Map<number, Buffer>();
    const first_failure = fill(table, keys, model, 0);
    assert.ok(first_failure > 1000, `filled ${first_failure}`);
    verifyTable(table, keys, model, 'full');
    table.step(Number.MAX_SAFE_INTEGER); // failed puts still advance a migration; finish it first
    assert.equal(table.stats().migrating, false);
    const stats_full = table.stats();

    // Failing puts (insert, grow-overwrite) change nothing.
    const id = 300;
    assert.equal(table.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!, BIG_VALUE, 0, BIG_VALUE.length),
      PUT_OUT_OF_MEMORY);
    assert.equal(fill(table, keys, model, first_failure), first_failure);
    verifyTable(table, keys, model, 'after failed puts');
    assert.deepEqual(table.stats(), stats_full);

    // Deleting frees blocks of the same class; inserts succeed again.
    let deleted = 0;
    for (const [model_id] of model) {
      if (deleted === 200) break;
      if (model_id % 2 === 1) continue;
      assert.equal(table.delete(keys.hashes[model_id]!, keys.bytes, keys.offsets[model_id]!, keys.lengths[model_id]!), true);
      model.delete(model_id);
      deleted += 1;
    }
    verifyTable(table, keys, model, 'after deletes');
    const second_failure = fill(table, keys, model, first_failure);
    assert.equal(second_failure, first_failure + 200, `refilled ${second_failure - first_failure}`);
    verifyTable(table, keys, model, 'refilled');
    assert.equal(table.stats().bytes_leaked, 0);
  });

  it('keeps inserting past 3/4 load when a new index does not fit, up to 15/16', () => {
    const keys = new KeyUniverse(2000, 5);
    const table = new HashTable(createTableMemory(TABLE_BYTES_MIN + 12 * 1024));
    const model = new Map<number, Buffer>();
    const empty = new Uint8Array(0);
    let inserted = 0;
    for (let id = 256; id < keys.count; id++) {
      // 4-byte keys, empty values: 12-byte entries.
      const result = table.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, 4, empty, 0, 0);
      if (result === PUT_OUT_OF_MEMORY) break;
      model.set(id, Buffer.alloc(0));
      inserted += 1;
    }
    const stats = table.stats();
    assert.equal(stats.index_slots, 1024);
    assert.ok(inserted > 768 && inserted <= 960, `inserted ${inserted}`);
    for (const [id] of model) assert.notEqual(table.find(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, 4), 0);
  });
});

// Restart: a new HashTable on the same buffer is the same table, and recover()
// repairs what a killed writer can leave behind.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { allocate } from '../allocator.js';
import { KeyUniverse, verifyTable } from '../fixtures/model.js';
import { createTableMemory, HashTable, PUT_OK } from '../index.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, F_BYTES_ALLOCATED, F_BYTES_FREE_LISTED, F_PAYLOAD_BYTES, H_INDEX_TOMBSTONES,
  H_INDEX_USED_SLOTS, H_KEYS, H_MIGRATE_CURSOR, REF_TOMBSTONE,
} from '../layout.js';
import { descriptorAt } from '../migration.js';
import { probeReusable } from '../slots.js';
import { createViews } from '../views.js';

/** Puts ids from `from` until a migration is running and its cursor is past `cursor_min`. */
function putUntilMigrating(table: HashTable, keys: KeyUniverse, model: Map<number, Buffer>, from: number, cursor_min: number): number {
  for (let id = from; id < keys.count; id++) {
    const value = Buffer.from(`v${id}`);
    assert.equal(table.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!, value, 0, value.length), PUT_OK);
    model.set(id, value);
    const stats = table.stats();
    if (stats.migrating && stats.migration_cursor > cursor_min) return id + 1;
  }
  assert.fail('no migration started');
}

describe('restart', () => {
  it('a new HashTable attached mid-migration sees every key and finishes the migration', () => {
    const keys = new KeyUniverse(20_000, 3);
    const memory = createTableMemory(8 << 20);
    const model = new Map<number, Buffer>();
    const next = putUntilMigrating(new HashTable(memory), keys, model, 0, 1000);
    const restarted = new HashTable(memory);
    assert.equal(restarted.stats().migrating, true);
    verifyTable(restarted, keys, model, 'restarted mid-migration');
    restarted.recover(); // nothing to repair: a no-op on a consistent table
    verifyTable(restarted, keys, model, 'recovered mid-migration');
    for (let id = next; id < next + 500; id++) {
      const value = Buffer.from(`w${id}`);
      assert.equal(restarted.put(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!, value, 0, value.length), PUT_OK);
      model.set(id, value);
    }
    restarted.step(1 << 20);
    assert.equal(restarted.stats().migrating, false);
    verifyTable(restarted, keys, model, 'after migration');
  });

  it('recover() tombstones an old slot that an interrupted step already copied to the new index', () => {
    const keys = new KeyUniverse(20_000, 4);
    const memory = createTableMemory(8 << 20);
    const model = new Map<number, Buffer>();
    const table = new HashTable(memory);
    putUntilMigrating(table, keys, model, 0, 100);
    const views = createViews(memory);
    const u32 = views.u32;
    const d = descriptorAt(u32);
    const old_ref = u32[d + D_OLD_REF]!;
    while (u32[old_ref + u32[H_MIGRATE_CURSOR]! * 2 + 1]! <= REF_TOMBSTONE) table.step(1);
    // Replay a migration step up to the kill: published in new, not yet tombstoned in old.
    const old_slot = old_ref + u32[H_MIGRATE_CURSOR]! * 2;
    const entry_ref = u32[old_slot + 1]!;
    const slot = probeReusable(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, views.i32[old_slot]!);
    views.i32[slot] = views.i32[old_slot]!;
    u32[slot + 1] = entry_ref;

    const restarted = new HashTable(memory);
    restarted.recover();
    assert.equal(u32[old_slot + 1], REF_TOMBSTONE);
    verifyTable(restarted, keys, model, 'after recover');
    // The key must be deletable once: no second copy resurfaces from old.
    const id = [...model.keys()].find((candidate) => restarted.find(keys.hashes[candidate]!, keys.bytes,
      keys.offsets[candidate]!, keys.lengths[candidate]!) === entry_ref)!;
    assert.equal(restarted.delete(keys.hashes[id]!, keys.bytes, keys.offsets[id]!, keys.lengths[id]!), true);
    model.delete(id);
    restarted.step(1 << 20);
    verifyTable(restarted, keys, model, 'after delete and migration');
    assert.equal(restarted.stats().bytes_leaked, 0);
  });

  it('recover() recounts scribbled counters and reports leaked blocks', () => {
    const keys = new KeyUniverse(5_000, 5);
    const memory = createTableMemory(8 << 20);
    const model = new Map<number, Buffer>();
    putUntilMigrating(new HashTable(memory), keys, model, 0, 10);
    const views = createViews(memory);
    allocate(views, 100); // allocated, never published: a leak
    views.u32[H_KEYS] = 7;
    views.u32[H_INDEX_USED_SLOTS] = 0;
    views.u32[H_INDEX_TOMBSTONES] = 99;
    views.f64[F_PAYLOAD_BYTES] = -1;
    views.f64[F_BYTES_ALLOCATED] = 0;
    views.f64[F_BYTES_FREE_LISTED] = 12345;
    const restarted = new HashTable(memory);
    restarted.recover();
    verifyTable(restarted, keys, model, 'recounted');
    assert.equal(restarted.stats().bytes_leaked, 100);
  });
});

// Edge cases: empty keys and values, the largest key, multi-MiB values,
// full-hash collisions, offsets, limits and attach errors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  createTableMemory, HashTable, HashTableError, KEY_BYTES_MAX, PUT_KEY_TOO_LARGE, PUT_OK, TABLE_BYTES_MIN,
} from '../index.js';
import { Prng } from '../fixtures/prng.js';
import { expectedBlockBytes } from '../fixtures/model.js';

function get(table: HashTable, hash: number, key: Uint8Array): Buffer | null {
  const ref = table.find(hash, key, 0, key.length);
  if (ref === 0) return null;
  const value = Buffer.alloc(table.valueLength(ref));
  table.copyValue(ref, value, 0);
  return value;
}

function put(table: HashTable, hash: number, key: Uint8Array, value: Uint8Array): void {
  assert.equal(table.put(hash, key, 0, key.length, value, 0, value.length), PUT_OK);
}

function randomBytes(prng: Prng, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  prng.fill(bytes, 0, length);
  return bytes;
}

describe('keys and values at the limits', () => {
  it('stores an empty key and an empty value', () => {
    const table = new HashTable(createTableMemory(1 << 20));
    const empty = new Uint8Array(0);
    assert.equal(get(table, 5, empty), null);
    put(table, 5, empty, empty);
    assert.deepEqual(get(table, 5, empty), Buffer.alloc(0));
    put(table, 5, empty, Buffer.from('x'));
    assert.deepEqual(get(table, 5, empty), Buffer.from('x'));
    put(table, 6, Buffer.from('k'), empty);
    assert.deepEqual(get(table, 6, Buffer.from('k')), Buffer.alloc(0));
    assert.equal(table.stats().payload_bytes, 2);
    assert.equal(table.delete(5, empty, 0, 0), true);
    assert.equal(table.delete(5, empty, 0, 0), false);
    assert.equal(table.keys, 1);
  });

  it('stores a 65535-byte key and rejects a longer one', () => {
    const prng = new Prng(1);
    const table = new HashTable(createTableMemory(1 << 20));
    const key = randomBytes(prng, KEY_BYTES_MAX + 1);
    put(table, 9, key.subarray(0, KEY_BYTES_MAX), Buffer.from('v'));
    assert.deepEqual(get(table, 9, key.subarray(0, KEY_BYTES_MAX)), Buffer.from('v'));
    assert.equal(get(table, 9, key.subarray(0, KEY_BYTES_MAX - 1)), null);
    assert.equal(table.put(9, key, 0, key.length, key, 0, 1), PUT_KEY_TOO_LARGE);
    assert.equal(table.keys, 1);
  });

  it('stores multi-MiB values and a 64 MiB value, and overwrites them', () => {
    const prng = new Prng(2);
    const table = new HashTable(createTableMemory(200 * 1024 * 1024));
    const big = randomBytes(prng, 3 * 1024 * 1024 + 5);
    const huge = Buffer.alloc(64 * 1024 * 1024, 0xab);
    huge[12345] = 1;
    put(table, 1, Buffer.from('big'), big);
    put(table, 2, Buffer.from('huge'), huge);
    assert.ok(big.equals(get(table, 1, Buffer.from('big'))!));
    assert.ok(huge.equals(get(table, 2, Buffer.from('huge'))!));
    put(table, 2, Buffer.from('huge'), big);
    assert.ok(big.equals(get(table, 2, Buffer.from('huge'))!));
    put(table, 1, Buffer.from('big'), huge);
    assert.ok(huge.equals(get(table, 1, Buffer.from('big'))!));
    assert.equal(table.stats().payload_bytes, 3 + 4 + big.length + huge.length);
  });

  it('uses key and value offsets without reading outside the given ranges', () => {
    const table = new HashTable(createTableMemory(1 << 20));
    const key_buffer = Buffer.from('xxkeyxx');
    const value_buffer = Buffer.from('0123456789'.repeat(10));
    assert.equal(table.put(3, key_buffer, 2, 3, value_buffer, 7, 40), PUT_OK);
    assert.deepEqual(get(table, 3, Buffer.from('key')), value_buffer.subarray(7, 47));
    assert.equal(table.find(3, key_buffer, 1, 3), 0);
    const target = Buffer.alloc(50, 0xff);
    table.copyValue(table.find(3, key_buffer, 2, 3), target, 5);
    assert.equal(target[4], 0xff);
    assert.equal(target[45], 0xff);
    assert.deepEqual(target.subarray(5, 45), value_buffer.subarray(7, 47));
  });
});

describe('collisions', () => {
  it('keeps 3000 keys that share one hash, through deletes and a growth', () => {
    const table = new HashTable(createTableMemory(4 << 20));
    const key = (i: number) => Buffer.from(`collide-${i}`);
    for (let i = 0; i < 3000; i++) put(table, 42, key(i), Buffer.from(`v${i}`));
    assert.ok(table.stats().index_grows >= 2);
    for (let i = 0; i < 3000; i += 3) assert.equal(table.delete(42, key(i), 0, key(i).length), true);
    for (let i = 0; i < 3000; i++) {
      const value = get(table, 42, key(i));
      if (i % 3 === 0) assert.equal(value, null);
      else assert.deepEqual(value, Buffer.from(`v${i}`));
    }
    // Same key bytes, different hash: a different key as far as the table knows.
    assert.equal(get(table, 43, key(1)), null);
  });
});

describe('attach', () => {
  it('rejects an unformatted buffer and bad sizes with stable codes', () => {
    assert.throws(() => new HashTable(new SharedArrayBuffer(TABLE_BYTES_MIN)),
      (error: unknown) => error instanceof HashTableError && error.code === 'HASHMAP_ERR_NOT_FORMATTED');
    assert.throws(() => createTableMemory(1000),
      (error: unknown) => error instanceof HashTableError && error.code === 'HASHMAP_ERR_BAD_CAPACITY');
    assert.throws(() => createTableMemory(TABLE_BYTES_MIN + 4),
      (error: unknown) => error instanceof HashTableError && error.code === 'HASHMAP_ERR_BAD_CAPACITY');
  });

  it('never throws on a bogus ref from a reader', () => {
    const table = new HashTable(createTableMemory(TABLE_BYTES_MIN));
    const target = new Uint8Array(8);
    for (const ref of [0, 1, 2, 0xffff_ffff, TABLE_BYTES_MIN / 4 - 1]) {
      assert.doesNotThrow(() => table.copyValue(ref, target, 0));
      assert.doesNotThrow(() => table.valueLength(ref));
    }
  });
});

describe('entry header forms', () => {
  it('switches between the 4-byte and 8-byte header at 2047/2048-byte keys and 1 MiB values, with exact accounting', () => {
    const table = new HashTable(createTableMemory(64 << 20));
    const prng = new Prng(99);
    const cases: [number, number][] = [[2047, 0xfffff], [2048, 10], [10, 0x100000], [16, 100], [0, 0]];
    const base_used = table.stats().bytes_used;
    let expected_entries = 0;
    cases.forEach(([key_length, value_length], i) => {
      const key = randomBytes(prng, key_length);
      const value = randomBytes(prng, value_length);
      put(table, 1000 + i, key, value);
      assert.deepEqual(get(table, 1000 + i, key), value, `key ${key_length} B, value ${value_length} B`);
      const header_bytes = key_length <= 2047 && value_length < 1 << 20 ? 4 : 8;
      expected_entries += expectedBlockBytes(header_bytes + key_length + value_length);
    });
    assert.equal(table.stats().bytes_used - base_used, expected_entries);
    // Overwrites that cross between forms: short -> long -> short.
    const key = randomBytes(prng, 16);
    put(table, 7, key, Buffer.alloc(5, 1));
    put(table, 7, key, Buffer.alloc(0x100000, 2));
    assert.equal(get(table, 7, key)!.length, 0x100000);
    put(table, 7, key, Buffer.alloc(3, 3));
    assert.deepEqual(get(table, 7, key), Buffer.alloc(3, 3));
    assert.equal(table.delete(7, key, 0, key.length), true);
    assert.equal(table.stats().bytes_used - base_used, expected_entries);
    // A fresh view of the same memory, after recover(), agrees.
    const again = new HashTable(table.memory);
    again.recover();
    assert.equal(again.stats().bytes_used - base_used, expected_entries);
    assert.equal(again.keys, cases.length);
  });
});

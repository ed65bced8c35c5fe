// Entry layout version 2: optional expiry and value codec flags, and attaching a version-1 table.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';

import {
  createTableMemory, HashTable, PUT_BAD_EXPIRY, PUT_NOT_FOUND, PUT_OK, sizeClassBytes, sizeClassOf,
} from '../index.js';
import { TABLE_V1_GZ_BASE64 } from '../fixtures/table-v1.js';

function get(table: HashTable, hash: number, key: Uint8Array): Buffer | null {
  const ref = table.find(hash, key, 0, key.length);
  if (ref === 0) return null;
  const value = Buffer.alloc(table.valueLength(ref));
  table.copyValue(ref, value, 0);
  return value;
}

function put(table: HashTable, hash: number, key: string, value: string, expiry_ms = 0, codec = 0): number {
  const k = Buffer.from(key);
  const v = Buffer.from(value);
  return table.put(hash, k, 0, k.length, v, 0, v.length, expiry_ms, codec);
}

const T = 1_800_000_000_123; // a time past 2^32 ms, so both expiry words matter

describe('entry flags (layout version 2)', () => {
  it('keys without a TTL keep the 4-byte short header; a TTL costs 12 more bytes', () => {
    const table = new HashTable(createTableMemory(1 << 20));
    const key = 'k'.repeat(16);
    const value = 'v'.repeat(100);
    assert.equal(put(table, 1, key, value), PUT_OK);
    const plain = table.stats().bytes_used;
    assert.equal(put(table, 2, key + 'x', value, T), PUT_OK);
    const with_ttl = table.stats().bytes_used - plain;
    table.delete(2, Buffer.from(key + 'x'), 0, 17);
    // 4 + 16 + 100 = 120 B, class 120 B; 16 + 17 + 100 = 133 B, class 136 B.
    assert.equal(sizeClassBytes(sizeClassOf(120)), 120);
    assert.equal(with_ttl, sizeClassBytes(sizeClassOf(16 + 17 + 100)));
    assert.equal(table.stats().bytes_used, plain);
  });

  it('stores, updates and clears an expiry, keeping the value', () => {
    const table = new HashTable(createTableMemory(1 << 20));
    const key = Buffer.from('session');
    assert.equal(put(table, 9, 'session', 'abc', T), PUT_OK);
    let ref = table.find(9, key, 0, key.length);
    assert.equal(table.expiry(ref), T);
    assert.equal(table.stats().expiring_keys, 1);
    assert.equal(table.setExpiry(9, key, 0, key.length, T + 5), PUT_OK);
    ref = table.find(9, key, 0, key.length);
    assert.equal(table.expiry(ref), T + 5);
    assert.equal(table.setExpiry(9, key, 0, key.length, 0), PUT_OK);
    ref = table.find(9, key, 0, key.length);
    assert.equal(table.expiry(ref), 0);
    assert.equal(table.stats().expiring_keys, 0);
    assert.deepEqual(get(table, 9, key), Buffer.from('abc'));
    assert.equal(table.setExpiry(9, key, 0, key.length, T), PUT_OK);
    assert.equal(table.stats().expiring_keys, 1);
    assert.deepEqual(get(table, 9, key), Buffer.from('abc'));
    // A plain put replaces the expiry (Redis's SET without KEEPTTL).
    assert.equal(put(table, 9, 'session', 'xyz'), PUT_OK);
    assert.equal(table.expiry(table.find(9, key, 0, key.length)), 0);
    assert.equal(table.stats().expiring_keys, 0);
    assert.equal(table.setExpiry(10, Buffer.from('nope'), 0, 4, T), PUT_NOT_FOUND);
    assert.equal(put(table, 11, 'bad', 'x', -5), PUT_BAD_EXPIRY);
    assert.equal(put(table, 11, 'bad', 'x', 1.5), PUT_BAD_EXPIRY);
    assert.equal(table.keys, 1);
  });

  it('stores a value codec id beside the expiry without interpreting it', () => {
    const table = new HashTable(createTableMemory(1 << 20));
    assert.equal(put(table, 3, 'c', 'zz', 0, 5), PUT_OK);
    const ref = table.find(3, Buffer.from('c'), 0, 1);
    assert.equal(table.valueFlags(ref), 5);
    assert.equal(table.expiry(ref), 0);
    assert.equal(table.setExpiry(3, Buffer.from('c'), 0, 1, T), PUT_OK);
    const ref2 = table.find(3, Buffer.from('c'), 0, 1);
    assert.equal(table.valueFlags(ref2), 5);
    assert.equal(table.expiry(ref2), T);
    assert.equal(put(table, 3, 'c', 'zz', 0, 8), PUT_BAD_EXPIRY);
  });

  it('active expiry deletes expired keys in bounded steps and keeps the rest', () => {
    const table = new HashTable(createTableMemory(64 << 20));
    const now = 1_700_000_000_000;
    for (let i = 0; i < 20_000; i++) assert.equal(put(table, i * 2654435761 >>> 0, `k${i}`, 'v', i % 2 === 0 ? now - 1 : (i % 3 === 0 ? now + 60_000 : 0)), PUT_OK);
    const result = new Float64Array(3);
    let cursor = 0;
    let deleted = 0;
    for (let step = 0; step < 10_000 && table.keys > 10_000; step++) {
      table.expireStep(cursor, 256, now, result);
      assert.ok(result[1]! <= 2 * 256, 'a step visits at most slots_max slots per array');
      cursor = result[0]!;
      deleted += result[2]!;
    }
    assert.equal(deleted, 10_000);
    assert.equal(table.keys, 10_000);
    assert.equal(table.stats().expiring_keys, 3333);
    for (let i = 0; i < 20_000; i++) {
      const present = get(table, i * 2654435761 >>> 0, Buffer.from(`k${i}`)) !== null;
      assert.equal(present, i % 2 === 1, `k${i}`);
    }
    const stats = table.stats();
    assert.equal(stats.bytes_reserved, stats.bytes_header + stats.bytes_used + stats.bytes_free_listed + stats.bytes_leaked);
    assert.equal(stats.bytes_leaked, 0);
  });

  it('recover() recounts expiring keys', () => {
    const memory = createTableMemory(1 << 20);
    const table = new HashTable(memory);
    for (let i = 0; i < 10; i++) put(table, i, `k${i}`, 'v', i < 4 ? T : 0);
    new Uint32Array(memory)[22] = 0; // H_EXPIRING_KEYS, as a killed writer could leave it
    const again = new HashTable(memory);
    again.recover();
    assert.equal(again.stats().expiring_keys, 4);
  });
});

describe('a table written by layout version 1', () => {
  it('attaches, reads every key, upgrades on recover() and takes expiries', () => {
    const bytes = gunzipSync(Buffer.from(TABLE_V1_GZ_BASE64, 'base64'));
    const memory = new SharedArrayBuffer(bytes.length);
    new Uint8Array(memory).set(bytes);
    assert.equal(new Uint32Array(memory)[1], 1, 'the fixture is layout version 1');
    const table = new HashTable(memory);
    table.recover();
    assert.equal(new Uint32Array(memory)[1], 2);
    assert.equal(table.keys, 51);
    assert.equal(table.stats().expiring_keys, 0);
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(get(table, 1000 + i * 7919, Buffer.from(`key-${i}`)), Buffer.from(`value-${i}`.repeat(i % 5 + 1)));
    }
    const long_key = Buffer.alloc(3000, 0x6b);
    const ref = table.find(424242, long_key, 0, long_key.length);
    assert.equal(table.expiry(ref), 0);
    assert.equal(table.valueFlags(ref), 0);
    assert.deepEqual(get(table, 424242, long_key), Buffer.from('long-form value'));
    assert.equal(table.setExpiry(424242, long_key, 0, long_key.length, T), PUT_OK);
    assert.equal(table.expiry(table.find(424242, long_key, 0, long_key.length)), T);
    assert.deepEqual(get(table, 424242, long_key), Buffer.from('long-form value'));
    const stats = table.stats();
    assert.equal(stats.bytes_leaked, 0);
  });
});

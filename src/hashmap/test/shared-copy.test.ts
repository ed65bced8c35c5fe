// Copies between the table's shared memory and ordinary buffers (shared-copy.ts), at every
// alignment: the staged path must put the same bytes where a plain set() would.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Prng } from '../fixtures/prng.js';
import { copyFromShared, copyIntoShared } from '../shared-copy.js';
import { createTableMemory, HashTable, PUT_OK } from '../index.js';

function randomBytes(prng: Prng, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = prng.nextU32() & 0xff;
  return bytes;
}

describe('shared-copy', () => {
  const prng = new Prng(11);
  const lengths = [0, 1, 255, 256, 257, 4099, 70_001, 1024 * 1024 + 3, 2 * 1024 * 1024 + 5];

  it('copies out of and into shared memory at every pair of alignments', () => {
    const shared = new Uint8Array(new SharedArrayBuffer(3 * 1024 * 1024));
    for (const length of lengths) {
      const source = randomBytes(prng, length + 16);
      for (let shared_mod = 0; shared_mod < 8; shared_mod++) {
        for (let other_mod = 0; other_mod < 8; other_mod += 3) {
          shared.fill(0xee);
          copyIntoShared(shared, 64 + shared_mod, source, other_mod, length);
          assert.deepEqual(shared.subarray(64 + shared_mod, 64 + shared_mod + length), source.subarray(other_mod, other_mod + length), `into ${length} ${shared_mod}/${other_mod}`);
          assert.equal(shared[64 + shared_mod - 1], 0xee, 'nothing written before the target');
          assert.equal(shared[64 + shared_mod + length], 0xee, 'nothing written after the target');
          const target = new Uint8Array(length + 16).fill(0xdd);
          copyFromShared(shared, 64 + shared_mod, length, target, other_mod);
          assert.deepEqual(target.subarray(other_mod, other_mod + length), source.subarray(other_mod, other_mod + length), `out ${length} ${shared_mod}/${other_mod}`);
          if (other_mod > 0) assert.equal(target[other_mod - 1], 0xdd, 'nothing read into bytes before the target');
          assert.equal(target[other_mod + length], 0xdd, 'nothing read into bytes after the target');
        }
      }
    }
  });

  it('keeps large values intact through put, overwrite in place and copyValue, whatever the key length', () => {
    const table = new HashTable(createTableMemory(64 * 1024 * 1024));
    for (let key_length = 1; key_length <= 9; key_length++) {
      const key = randomBytes(prng, key_length);
      const hash = prng.nextU32();
      for (const round of [0, 1]) {
        // Round 1 overwrites in place (same length, same flags): copyIntoShared's single set().
        const value = randomBytes(prng, 300_003);
        assert.equal(table.put(hash, key, 0, key_length, value, 0, value.length), PUT_OK);
        const ref = table.find(hash, key, 0, key_length);
        const out = new Uint8Array(value.length + 5);
        table.copyValue(ref, out, 5);
        assert.deepEqual(out.subarray(5), value, `key length ${key_length}, round ${round}`);
      }
    }
  });
});

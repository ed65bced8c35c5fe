// Typed-array views over one table's SharedArrayBuffer, and attach-time checks.
//
// A HashTable is nothing but these views: all state lives in the buffer, so two
// views (two threads, or a restarted worker) see the same table. The views are
// created once per attach; hot paths index them directly.

import { HashTableError } from './errors.js';
import {
  H_ARENA_END_UNITS, H_BUMP_UNITS, H_HEADER_UNITS, H_LAYOUT_VERSION, H_MAGIC, H_SIZE_CLASS_COUNT,
  HEADER_F64_COUNT, HEADER_UNITS, LAYOUT_VERSION, LAYOUT_VERSION_OLDEST, MAGIC, SIZE_CLASS_COUNT, TABLE_BYTES_MAX, TABLE_BYTES_MIN,
} from './layout.js';

export interface TableViews {
  readonly memory: SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  /** Same memory as u32; hash tags are read as i32 so they stay small integers. */
  readonly i32: Int32Array;
  /** Header only (HEADER_F64_COUNT doubles): byte counters. */
  readonly f64: Float64Array;
  /** memory.byteLength / 4, captured once. */
  readonly units_total: number;
}

export function createViews(memory: SharedArrayBuffer): TableViews {
  return {
    memory,
    u8: new Uint8Array(memory),
    u32: new Uint32Array(memory),
    i32: new Int32Array(memory),
    f64: new Float64Array(memory, 0, HEADER_F64_COUNT),
    units_total: Math.floor(memory.byteLength / 4),
  };
}

/** Throws HashTableError unless `bytes_capacity` is a usable table size. */
export function checkTableBytes(bytes_capacity: number): void {
  if (!Number.isSafeInteger(bytes_capacity) || bytes_capacity % 8 !== 0 ||
      bytes_capacity < TABLE_BYTES_MIN || bytes_capacity > TABLE_BYTES_MAX) {
    throw new HashTableError('HASHMAP_ERR_BAD_CAPACITY',
      `bytes_capacity must be a multiple of 8 in [${TABLE_BYTES_MIN}, ${TABLE_BYTES_MAX}], got ${bytes_capacity}`);
  }
}

/** Throws HashTableError unless the buffer holds a table of a layout version this code reads. */
export function checkFormatted(memory: unknown): void {
  if (!(memory instanceof SharedArrayBuffer)) {
    throw new HashTableError('HASHMAP_ERR_NOT_SHARED', 'a HashTable needs a SharedArrayBuffer');
  }
  if (memory.byteLength < TABLE_BYTES_MIN || memory.byteLength % 8 !== 0) {
    throw new HashTableError('HASHMAP_ERR_NOT_FORMATTED', `buffer of ${memory.byteLength} bytes is not a table`);
  }
  const u32 = new Uint32Array(memory, 0, HEADER_UNITS);
  if (u32[H_MAGIC] !== MAGIC) {
    throw new HashTableError('HASHMAP_ERR_NOT_FORMATTED', 'buffer has no table magic; call createTableMemory()');
  }
  const version = u32[H_LAYOUT_VERSION]!;
  if (version < LAYOUT_VERSION_OLDEST || version > LAYOUT_VERSION || u32[H_HEADER_UNITS] !== HEADER_UNITS ||
      u32[H_SIZE_CLASS_COUNT] !== SIZE_CLASS_COUNT) {
    throw new HashTableError('HASHMAP_ERR_LAYOUT_VERSION',
      `table layout version ${version} is not ${LAYOUT_VERSION_OLDEST}..${LAYOUT_VERSION}`);
  }
  const units_total = memory.byteLength / 4;
  const bump = u32[H_BUMP_UNITS]!;
  if (u32[H_ARENA_END_UNITS] !== units_total || bump < HEADER_UNITS || bump > units_total) {
    throw new HashTableError('HASHMAP_ERR_CORRUPT', 'table header disagrees with the buffer size');
  }
}

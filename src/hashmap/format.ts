// Creating and formatting a table's SharedArrayBuffer.
//
// Formatting writes the header and one minimum slot array, then writes the
// magic last: a buffer whose formatting was interrupted is rejected on attach.

import { allocateZeroed } from './allocator.js';
import { assert } from './errors.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, H_ARENA_END_UNITS, H_BUMP_UNITS, H_DESCRIPTOR_ACTIVE, H_DESCRIPTORS, H_HEADER_UNITS,
  H_LAYOUT_VERSION, H_MAGIC, H_SIZE_CLASS_COUNT, HEADER_UNITS, INDEX_SLOTS_MIN, LAYOUT_VERSION, MAGIC,
  SIZE_CLASS_COUNT, SLOT_BYTES,
} from './layout.js';
import { checkTableBytes, createViews } from './views.js';

/**
 * Allocates a SharedArrayBuffer of `bytes_capacity` (a multiple of 8) and
 * formats an empty table in it. The OS commits its pages only when touched.
 */
export function createTableMemory(bytes_capacity: number): SharedArrayBuffer {
  checkTableBytes(bytes_capacity);
  const memory = new SharedArrayBuffer(bytes_capacity);
  formatTableMemory(memory);
  return memory;
}

/** Formats an all-zero buffer (as from `new SharedArrayBuffer`) as an empty table. */
export function formatTableMemory(memory: SharedArrayBuffer): void {
  checkTableBytes(memory.byteLength);
  const views = createViews(memory);
  const u32 = views.u32;
  assert(u32[H_MAGIC] === 0 && u32[H_BUMP_UNITS] === 0, 'formatTableMemory needs a zeroed buffer');
  u32[H_LAYOUT_VERSION] = LAYOUT_VERSION;
  u32[H_HEADER_UNITS] = HEADER_UNITS;
  u32[H_SIZE_CLASS_COUNT] = SIZE_CLASS_COUNT;
  u32[H_ARENA_END_UNITS] = views.units_total;
  u32[H_BUMP_UNITS] = HEADER_UNITS;
  const index_ref = allocateZeroed(views, INDEX_SLOTS_MIN * SLOT_BYTES);
  assert(index_ref === HEADER_UNITS, 'the first slot array must fit a minimum table');
  u32[H_DESCRIPTORS + D_INDEX_REF] = index_ref;
  u32[H_DESCRIPTORS + D_INDEX_SLOTS] = INDEX_SLOTS_MIN;
  u32[H_DESCRIPTOR_ACTIVE] = 0;
  u32[H_MAGIC] = MAGIC; // last: marks the buffer as a table
}

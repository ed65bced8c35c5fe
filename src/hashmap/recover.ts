// Repair after the writer was killed mid-operation (worker.terminate()).
//
// Every mutation publishes with single u32 stores, so a killed writer leaves a
// valid table except for two things this file fixes:
//   1. An interrupted migration step may have published old[cursor] into the
//      new slot array without yet tombstoning it in old. The same entry ref is
//      then reachable twice (a later delete would free it while old still
//      points at it), so old[cursor] is tombstoned.
//   2. Counters (keys, used slots, tombstones, payload and allocator bytes) may
//      be off by the interrupted operation. They are recounted from the slot
//      arrays and the free lists.
// Blocks allocated but not yet published (or unlinked but not yet freed) at the
// kill are leaked: they show up as stats().bytes_leaked and are never reused.
// Work is O(slots + free blocks); call once when a writer attaches after a crash.

import { blockBytesFor, sumFreeLists } from './allocator.js';
import { ENTRY_HAS_EXPIRY, entryBlockBytes, entryFlags, entryKeyLength, entryValueLength } from './entry.js';
import { HashTableError } from './errors.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, 
  F_BYTES_ALLOCATED, F_BYTES_FREE_LISTED, F_PAYLOAD_BYTES, H_EXPIRING_KEYS, H_INDEX_TOMBSTONES, H_INDEX_USED_SLOTS, H_KEYS,
  H_LAYOUT_VERSION, H_MIGRATE_CURSOR, LAYOUT_VERSION, REF_EMPTY, REF_TOMBSTONE, SLOT_BYTES,
} from './layout.js';
import { descriptorAt } from './migration.js';
import { entryValid, probeRef, slotArrayValid } from './slots.js';
import type { TableViews } from './views.js';

interface SlotCount {
  keys: number;
  expiring_keys: number;
  tombstones: number;
  payload_bytes: number;
  bytes_allocated: number;
}

export function recoverTable(views: TableViews): void {
  const u32 = views.u32;
  const d = descriptorAt(u32);
  const index_ref = u32[d + D_INDEX_REF]!;
  const index_slots = u32[d + D_INDEX_SLOTS]!;
  const old_ref = u32[d + D_OLD_REF]!;
  const old_slots = u32[d + D_OLD_SLOTS]!;
  if (!slotArrayValid(views, index_ref, index_slots) || (old_ref !== 0 && !slotArrayValid(views, old_ref, old_slots))) {
    throw new HashTableError('HASHMAP_ERR_CORRUPT', 'index descriptor points outside the buffer');
  }
  if (old_ref !== 0) repairMigrationStep(views, index_ref, index_slots, old_ref, old_slots);

  const primary = countSlots(views, index_ref, index_slots);
  const old = old_ref !== 0 ? countSlots(views, old_ref, old_slots) : null;
  u32[H_KEYS] = primary.keys + (old?.keys ?? 0);
  u32[H_EXPIRING_KEYS] = primary.expiring_keys + (old?.expiring_keys ?? 0);
  u32[H_INDEX_USED_SLOTS] = primary.keys + primary.tombstones;
  u32[H_INDEX_TOMBSTONES] = primary.tombstones;
  views.f64[F_PAYLOAD_BYTES] = primary.payload_bytes + (old?.payload_bytes ?? 0);
  views.f64[F_BYTES_ALLOCATED] = primary.bytes_allocated + blockBytesFor(index_slots * SLOT_BYTES) +
    (old !== null ? old.bytes_allocated + blockBytesFor(old_slots * SLOT_BYTES) : 0);
  views.f64[F_BYTES_FREE_LISTED] = sumFreeLists(views);
  // A version-1 table is a valid version-2 table (entry.ts); recounting above set its only new field.
  u32[H_LAYOUT_VERSION] = LAYOUT_VERSION;
}

/** Tombstones old[cursor] if the new array already holds the same entry ref. */
function repairMigrationStep(
  views: TableViews, index_ref: number, index_slots: number, old_ref: number, old_slots: number,
): void {
  const u32 = views.u32;
  const cursor = u32[H_MIGRATE_CURSOR]!;
  if (cursor >= old_slots) return;
  const old_slot = old_ref + cursor * 2;
  const ref = u32[old_slot + 1]!;
  if (ref <= REF_TOMBSTONE) return;
  if (probeRef(views, index_ref, index_slots, views.i32[old_slot]!, ref) !== 0) {
    u32[old_slot + 1] = REF_TOMBSTONE;
  }
}

/** Counts one slot array, tombstoning slots whose entry lies outside the buffer. */
function countSlots(views: TableViews, index_ref: number, index_slots: number): SlotCount {
  const u32 = views.u32;
  const count: SlotCount = { keys: 0, expiring_keys: 0, tombstones: 0, payload_bytes: 0, bytes_allocated: 0 };
  for (let i = 0; i < index_slots; i++) {
    const slot = index_ref + i * 2;
    const ref = u32[slot + 1]!;
    if (ref === REF_EMPTY) continue;
    if (ref !== REF_TOMBSTONE && !entryValid(views, ref)) u32[slot + 1] = REF_TOMBSTONE;
    if (u32[slot + 1] === REF_TOMBSTONE) {
      count.tombstones += 1;
      continue;
    }
    const key_bytes = entryKeyLength(u32, ref);
    const value_bytes = entryValueLength(u32, ref);
    count.keys += 1;
    if ((entryFlags(u32, ref) & ENTRY_HAS_EXPIRY) !== 0) count.expiring_keys += 1;
    count.payload_bytes += key_bytes + value_bytes;
    count.bytes_allocated += blockBytesFor(entryBlockBytes(u32, ref));
  }
  return count;
}

// Incremental rebuild of the slot array (Redis-style bounded work).
//
// A rebuild allocates a new slot array, publishes it as the primary index and
// keeps the previous one as "old" until every old slot has been visited:
//   1. allocateZeroed(new); write the inactive descriptor {new, old = current};
//      H_MIGRATE_CURSOR = 0; flip H_DESCRIPTOR_ACTIVE (one store publishes).
//   2. Each put/delete visits MIGRATE_SLOTS_PER_OP old slots from the cursor,
//      step(n) visits n. Migrating live slot i is, in this order:
//        new[j] = old[i] (tag, then ref: publish) ; old[i].ref = TOMBSTONE ;
//        cursor = i + 1.
//      A migrated slot becomes a tombstone, not empty, so the probe chains of
//      keys still in old stay intact.
//   3. When the cursor reaches the end: write the inactive descriptor
//      {new, old = none}; flip; free the old block.
// Meanwhile inserts go to new, lookups check new then old, and updates or
// deletes of a key still in old happen in place in old.
//
// Sizing rule (why the new array cannot fill before migration ends): with O old
// slots and L live keys, the new array has C = max(1024, pow2 >= 2L, O/2) slots.
// At most O/16 ops run before the cursor reaches O, each inserting at most one
// key, and O/16 <= C/8. So new holds at most L + O/16 <= C/2 + C/8 < 3C/4 used
// slots. The put path still checks; if the check ever fails (counters wrong
// because recover() was skipped), it finishes the migration in one call.

import { allocateZeroed, free } from './allocator.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, DESCRIPTOR_UNITS, H_DESCRIPTOR_ACTIVE, H_DESCRIPTORS, H_GROWS,
  H_INDEX_TOMBSTONES, H_INDEX_USED_SLOTS, H_MIGRATE_CURSOR, H_REBUILDS, H_SHRINKS, INDEX_SLOTS_MAX, INDEX_SLOTS_MIN,
  REF_TOMBSTONE, SLOT_BYTES,
} from './layout.js';
import { probeReusable } from './slots.js';
import type { TableViews } from './views.js';

/** Unit address of the active index descriptor. */
export function descriptorAt(u32: Uint32Array): number {
  return H_DESCRIPTORS + (u32[H_DESCRIPTOR_ACTIVE]! & 1) * DESCRIPTOR_UNITS;
}

/** Slot count for a rebuild holding `keys` live keys, replacing `index_slots`. */
export function rebuildSlotsFor(keys: number, index_slots: number): number {
  let slots = INDEX_SLOTS_MIN;
  while (slots < keys * 2 && slots < INDEX_SLOTS_MAX) slots *= 2;
  return Math.max(slots, Math.min(index_slots / 2, INDEX_SLOTS_MAX));
}

/** Publishes a descriptor by writing the inactive copy and flipping the selector. */
function publishDescriptor(u32: Uint32Array, index_ref: number, index_slots: number, old_ref: number, old_slots: number): void {
  const inactive = H_DESCRIPTORS + ((u32[H_DESCRIPTOR_ACTIVE]! & 1) ^ 1) * DESCRIPTOR_UNITS;
  u32[inactive + D_INDEX_REF] = index_ref;
  u32[inactive + D_INDEX_SLOTS] = index_slots;
  u32[inactive + D_OLD_REF] = old_ref;
  u32[inactive + D_OLD_SLOTS] = old_slots;
  u32[H_DESCRIPTOR_ACTIVE] = (u32[H_DESCRIPTOR_ACTIVE]! & 1) ^ 1; // publish
}

/**
 * Starts migrating to a new slot array of `new_slots`. Returns false (and
 * changes nothing) if the arena cannot hold it. Must not be migrating already.
 */
export function startRebuild(views: TableViews, new_slots: number): boolean {
  const u32 = views.u32;
  const d = descriptorAt(u32);
  if (u32[d + D_OLD_REF] !== 0) return false;
  const new_ref = allocateZeroed(views, new_slots * SLOT_BYTES);
  if (new_ref === 0) return false;
  const index_slots = u32[d + D_INDEX_SLOTS]!;
  u32[H_MIGRATE_CURSOR] = 0; // unused while not migrating, so safe before the flip
  publishDescriptor(u32, new_ref, new_slots, u32[d + D_INDEX_REF]!, index_slots);
  u32[H_INDEX_USED_SLOTS] = 0;
  u32[H_INDEX_TOMBSTONES] = 0;
  const counter = new_slots > index_slots ? H_GROWS : new_slots < index_slots ? H_SHRINKS : H_REBUILDS;
  u32[counter] = u32[counter]! + 1;
  return true;
}

/** Visits up to `slots_max` old slots; ends the migration when all are visited. */
export function migrateStep(views: TableViews, slots_max: number): void {
  const u32 = views.u32;
  const i32 = views.i32;
  const d = descriptorAt(u32);
  const old_ref = u32[d + D_OLD_REF]!;
  if (old_ref === 0) return;
  const old_slots = u32[d + D_OLD_SLOTS]!;
  const index_ref = u32[d + D_INDEX_REF]!;
  const index_slots = u32[d + D_INDEX_SLOTS]!;
  let cursor = u32[H_MIGRATE_CURSOR]!;
  const end = Math.min(old_slots, cursor + slots_max);
  while (cursor < end) {
    const old_slot = old_ref + cursor * 2;
    const ref = u32[old_slot + 1]!;
    if (ref > REF_TOMBSTONE) {
      const tag = i32[old_slot]!;
      const slot = probeReusable(views, index_ref, index_slots, tag);
      if (slot === 0) return; // new array full: excluded by the sizing rule; table stays valid
      const counter = u32[slot + 1] === REF_TOMBSTONE ? H_INDEX_TOMBSTONES : H_INDEX_USED_SLOTS;
      i32[slot] = tag;
      u32[slot + 1] = ref; // publish in new
      u32[old_slot + 1] = REF_TOMBSTONE; // retire from old
      u32[counter] = counter === H_INDEX_TOMBSTONES ? u32[counter]! - 1 : u32[counter]! + 1;
    }
    cursor += 1;
    u32[H_MIGRATE_CURSOR] = cursor;
  }
  if (cursor >= old_slots) {
    publishDescriptor(u32, index_ref, index_slots, 0, 0);
    free(views, old_ref, old_slots * SLOT_BYTES);
  }
}

/** Runs the current migration to its end (at most one visit per old slot). */
export function finishMigration(views: TableViews): void {
  const u32 = views.u32;
  const d = descriptorAt(u32);
  if (u32[d + D_OLD_REF] !== 0) migrateStep(views, u32[d + D_OLD_SLOTS]!);
}

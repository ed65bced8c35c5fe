// Active expiry: bounded steps that delete entries whose expiry time has passed.
//
// Like Redis's activeExpireCycle, the caller runs steps while they keep finding expired keys
// and stops when a step finds few (or its time budget is spent). A step walks `slots_max`
// consecutive slots of the primary slot array from the cursor (and the same share of the old
// array while a rebuild runs), so its cost is bounded whatever the table holds. The cursor is a
// primary slot position that wraps; after a rebuild it simply points somewhere else in the new
// array, which only changes the order keys are sampled in.
//
// A delete here is the same sequence as HashTable.delete (tombstone = publish, then free), so
// the crash-consistency contract holds; a slot in the old array is deleted in place, as
// HashTable.delete does for keys not yet migrated.

import { free } from './allocator.js';
import { ENTRY_HAS_EXPIRY, entryBlockBytes, entryExpiry, entryFlags, entryKeyLength, entryValueLength } from './entry.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, F_PAYLOAD_BYTES, H_EXPIRING_KEYS, H_INDEX_TOMBSTONES, H_KEYS,
  INDEX_SLOTS_MIN, REF_TOMBSTONE,
} from './layout.js';
import { descriptorAt, rebuildSlotsFor, startRebuild } from './migration.js';
import { entryValid, slotArrayValid } from './slots.js';
import type { TableViews } from './views.js';

/**
 * Walks `slots` slots of one array from `start`, adding live entries visited to result[1] and
 * expired ones to result[2]. With `found` null it deletes them; otherwise it only records their
 * refs in found[result[2]] (and stops recording when `found` is full).
 */
function expireArray(
  views: TableViews, index_ref: number, index_slots: number, start: number, slots: number, now_ms: number, primary: boolean,
  result: Float64Array, found: Uint32Array | null,
): void {
  if (!slotArrayValid(views, index_ref, index_slots)) return;
  const u32 = views.u32;
  const mask = index_slots - 1;
  const count = Math.min(slots, index_slots);
  for (let k = 0; k < count; k++) {
    const slot = index_ref + ((start + k) & mask) * 2;
    const ref = u32[slot + 1]!;
    if (ref <= REF_TOMBSTONE) continue;
    result[1]! += 1;
    if (!entryValid(views, ref) || (entryFlags(u32, ref) & ENTRY_HAS_EXPIRY) === 0) continue;
    const expiry_ms = entryExpiry(u32, ref);
    if (expiry_ms > now_ms) continue;
    if (found !== null) {
      if (result[2]! < found.length) found[result[2]!] = ref;
      result[2]! += 1;
      continue;
    }
    const payload_bytes = entryKeyLength(u32, ref) + entryValueLength(u32, ref);
    const block_bytes = entryBlockBytes(u32, ref);
    u32[slot + 1] = REF_TOMBSTONE; // publish
    free(views, ref, block_bytes);
    u32[H_KEYS] = u32[H_KEYS]! - 1;
    u32[H_EXPIRING_KEYS] = u32[H_EXPIRING_KEYS]! - 1;
    if (primary) u32[H_INDEX_TOMBSTONES] = u32[H_INDEX_TOMBSTONES]! + 1;
    views.f64[F_PAYLOAD_BYTES] -= payload_bytes;
    result[2]! += 1;
  }
}

/**
 * One step; writes the next cursor to result[0], live entries visited to result[1] and
 * entries deleted (or, with `found`, found expired and listed there) to result[2].
 */
export function expireStep(views: TableViews, cursor: number, slots_max: number, now_ms: number, result: Float64Array, found: Uint32Array | null = null): void {
  const u32 = views.u32;
  const d = descriptorAt(u32);
  const index_ref = u32[d + D_INDEX_REF]!;
  const index_slots = u32[d + D_INDEX_SLOTS]!;
  const old_ref = u32[d + D_OLD_REF]!;
  const start = Math.floor(cursor) >>> 0;
  const slots = Math.max(1, Math.min(Math.floor(slots_max), 0x1000_0000));
  result[1] = 0;
  result[2] = 0;
  expireArray(views, index_ref, index_slots, start, slots, now_ms, true, result, found);
  if (old_ref !== 0) {
    // The old array may be larger (a shrink) or smaller (a growth): walk the same share of it,
    // so one pass of the cursor over the primary covers all of the old one too.
    const old_slots = u32[d + D_OLD_SLOTS]!;
    const scale = index_slots > 0 ? old_slots / index_slots : 1;
    expireArray(views, old_ref, old_slots, Math.floor((start % Math.max(1, index_slots)) * scale), Math.max(1, Math.ceil(slots * scale)), now_ms, false, result, found);
  }
  result[0] = index_slots > 0 ? (start + slots) % index_slots : 0;
  // Shrink a table that expiry left sparse, as HashTable.delete does.
  const keys = u32[H_KEYS]!;
  if (found === null && result[2]! > 0 && old_ref === 0 && index_slots > INDEX_SLOTS_MIN && keys * 8 < index_slots) {
    startRebuild(views, rebuildSlotsFor(keys, index_slots));
  }
}

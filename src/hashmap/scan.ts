// Cursor scan: visits every live entry in bounded steps, safe across migrations.
//
// The cursor is a position in the 32-bit TAG space (tags are fmix32 of the
// caller's hash; see hash.ts), not a slot number: a slot number means nothing
// once a rebuild moves keys to an array of another size, but a tag does not
// change. One step covers the tag range [cursor, next) and, in the primary and
// the old slot array alike, visits each live slot whose tag falls in it. In an
// array of S slots a key with tag t has its home slot at t's high bits and sits
// at or after it, with only non-empty slots (live or tombstone) in between
// (linear probing never leaves an empty slot inside a chain). So the step walks
// from home(lo) through home(hi - 1) and then on until the first empty slot,
// wrapping at the end of the array.
//
// Contract (like Redis dictScan): a key present and unchanged from the first
// step to the last is visited at least once; a key inserted, overwritten or
// deleted in between may or may not be. Within one step a key is in exactly one
// array (a migration step publishes into new, then tombstones old), so it is
// visited once. Each step is synchronous and only reads.

import { homeSlot } from './hash.js';
import { D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, H_KEYS, REF_EMPTY, REF_TOMBSTONE } from './layout.js';
import { descriptorAt } from './migration.js';
import { entryValid, slotArrayValid } from './slots.js';
import type { TableViews } from './views.js';

/** Size of the tag space; a cursor equal to it means the scan is finished. */
export const SCAN_END = 0x1_0000_0000;

/** Visits live slots of one array whose tags lie in [lo, hi). Returns entries visited. */
function scanArray(views: TableViews, index_ref: number, index_slots: number, lo: number, hi: number, visit: (ref: number) => void): number {
  if (!slotArrayValid(views, index_ref, index_slots)) return 0;
  const u32 = views.u32;
  const mask = index_slots - 1;
  const start = homeSlot(lo, index_slots);
  const home_span = homeSlot(hi - 1, index_slots) - start;
  let visited = 0;
  for (let k = 0; k < index_slots; k++) {
    const slot = index_ref + ((start + k) & mask) * 2;
    const ref = u32[slot + 1]!;
    if (ref === REF_EMPTY) {
      if (k >= home_span) break;
      continue;
    }
    if (ref === REF_TOMBSTONE) continue;
    const tag = u32[slot]!;
    if (tag >= lo && tag < hi && entryValid(views, ref)) {
      visit(ref);
      visited++;
    }
  }
  return visited;
}

/**
 * One step from `cursor` (0 to start). Covers a tag range sized so that about
 * `entries_max` entries fall in it, and returns the next cursor (SCAN_END when done).
 */
export function scanStep(views: TableViews, cursor: number, entries_max: number, visit: (ref: number) => void): number {
  if (!(cursor >= 0 && cursor < SCAN_END)) return SCAN_END;
  const u32 = views.u32;
  const ranges = Math.max(1, Math.ceil(u32[H_KEYS]! / Math.max(1, entries_max)));
  const span = Math.max(1, Math.floor(SCAN_END / ranges));
  const lo = Math.floor(cursor);
  const hi = Math.min(SCAN_END, lo + span);
  const d = descriptorAt(u32);
  scanArray(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, lo, hi, visit);
  const old_ref = u32[d + D_OLD_REF]!;
  if (old_ref !== 0) scanArray(views, old_ref, u32[d + D_OLD_SLOTS]!, lo, hi, visit);
  return hi;
}

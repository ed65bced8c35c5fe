// Layout of the one SharedArrayBuffer that holds a whole hash table.
//
// Every offset in shared memory is named here and nowhere else. The buffer is
// addressed in 4-byte "units": a u32 holding a unit address can reach 16 GiB,
// and a unit address is directly an index into the Uint32Array view.
//
//   unit 0                 HEADER_UNITS                   bump            end
//   | header (this file)   | blocks: entries, index arrays | never written |
//
// Header words (u32 unless noted). Byte counters are f64 so they stay exact up
// to 2^53 and are still one store each. A table is published by one u32 store
// at a time; see README.md "Crash consistency" for the ordering rules.

/** 'PKHT' little-endian: identifies a formatted table. */
export const MAGIC = 0x5448_4b50;
/**
 * Bump this when any offset or encoding below changes. Version 2 added entry flags (an
 * optional expiry, a value codec id; entry.ts) and H_EXPIRING_KEYS. A version-1 table is a
 * valid version-2 table (its long headers have zero flag bits, unit 22 was zero), so attach
 * accepts it and the writer's recover() rewrites the version word.
 */
export const LAYOUT_VERSION = 2;
/** Oldest layout version a table may have and still be attached (then upgraded by recover()). */
export const LAYOUT_VERSION_OLDEST = 1;

// --- identity -------------------------------------------------------------
export const H_MAGIC = 0;
export const H_LAYOUT_VERSION = 1;
export const H_HEADER_UNITS = 2; // self-description, checked on attach
export const H_SIZE_CLASS_COUNT = 3; // self-description, checked on attach

// --- arena ----------------------------------------------------------------
export const H_ARENA_END_UNITS = 4; // byteLength / 4 at format time
export const H_BUMP_UNITS = 5; // first never-allocated unit (high-water mark)

// --- index descriptors ----------------------------------------------------
// Two descriptors; H_DESCRIPTOR_ACTIVE (0 or 1) selects the live one. A change
// of index (start or end of a migration) writes the inactive descriptor fully,
// then flips the selector: one u32 store publishes all four fields at once.
export const H_DESCRIPTOR_ACTIVE = 6;
export const H_MIGRATE_CURSOR = 7; // next old slot to migrate
export const H_DESCRIPTORS = 8;
export const DESCRIPTOR_UNITS = 4;
export const D_INDEX_REF = 0; // unit address of the primary slot array
export const D_INDEX_SLOTS = 1; // its capacity (power of two)
export const D_OLD_REF = 2; // slot array being migrated away from, 0 if none
export const D_OLD_SLOTS = 3; // its capacity
// H_DESCRIPTORS + 2 * DESCRIPTOR_UNITS = 16

// --- counters (exact after recover(); see README) --------------------------
export const H_KEYS = 16; // live keys in both slot arrays
export const H_INDEX_USED_SLOTS = 17; // non-empty slots (live + tombstone) of primary
export const H_INDEX_TOMBSTONES = 18; // tombstones in primary
export const H_GROWS = 19; // rebuilds into a larger slot array, ever
export const H_REBUILDS = 20; // rebuilds into a same-size slot array, ever
export const H_SHRINKS = 21; // rebuilds into a smaller slot array, ever
export const H_EXPIRING_KEYS = 22; // live keys with an expiry (entry flag HAS_EXPIRY); version 2
// unit 23 reserved

// f64 counters: index into the Float64Array view (f64 index = unit / 2)
export const F_PAYLOAD_BYTES = 12; // units 24..25: sum of key + value lengths
export const F_BYTES_ALLOCATED = 13; // units 26..27: class sizes of all live blocks
export const F_BYTES_FREE_LISTED = 14; // units 28..29: class sizes of free-listed blocks
export const HEADER_F64_COUNT = 16; // f64 view covers units 0..31
// units 30..31 reserved

// --- allocator free-list heads: one u32 unit address per size class --------
export const H_FREE_HEADS = 32;
/** Size classes: 64 of 4-byte granularity (4..256 B), then 8 per power of two to 2 GiB. */
export const SIZE_CLASS_COUNT = 64 + 8 * 23;
/** First unit after the header; 8-byte aligned. */
export const HEADER_UNITS = (H_FREE_HEADS + SIZE_CLASS_COUNT + 1) & ~1;
export const HEADER_BYTES = HEADER_UNITS * 4;

// --- slots -----------------------------------------------------------------
// A slot is 2 units: [hash tag, entry ref]. The ref alone says what it is.
export const SLOT_UNITS = 2;
export const SLOT_BYTES = 8;
export const REF_EMPTY = 0;
export const REF_TOMBSTONE = 1;

// --- entries ---------------------------------------------------------------
// An entry block: a 4-, 8- or 16-byte header (entry.ts), then key bytes, then value
// bytes. A free block reuses unit 0 as the free-list "next" pointer.
/** The largest entry header: the long form with an expiry. */
export const ENTRY_HEADER_BYTES = 16;

// --- limits ----------------------------------------------------------------
export const KEY_BYTES_MAX = 65535;
export const VALUE_BYTES_MAX = 1024 * 1024 * 1024; // 1 GiB; block max is 2 GiB
export const BLOCK_BYTES_MAX = 2 * 1024 * 1024 * 1024;
export const INDEX_SLOTS_MIN = 1024;
export const INDEX_SLOTS_MAX = BLOCK_BYTES_MAX / SLOT_BYTES; // 2^28
/**
 * 4 GiB. Unit addresses (u32, 4 B units) could reach 16 GiB, but V8 refuses a typed array of
 * more than 2^32 elements, and the table keeps a Uint8Array over its whole buffer.
 */
export const TABLE_BYTES_MAX = 2 ** 32;
/** Header plus one minimum index. */
export const TABLE_BYTES_MIN = HEADER_BYTES + INDEX_SLOTS_MIN * SLOT_BYTES;

// --- load policy -------------------------------------------------------------
/** Rebuild when used (live + tombstone) slots would pass 3/4 of capacity. */
export function slotsUsedMax(index_slots: number): number {
  return (index_slots >>> 2) * 3;
}
/** If the arena cannot hold a new index, keep inserting up to 15/16. */
export function slotsUsedHardMax(index_slots: number): number {
  return index_slots - (index_slots >>> 4);
}
/** Old slots migrated by each put/delete while a migration is running. */
export const MIGRATE_SLOTS_PER_OP = 16;

// HashTable: the operations of an open-addressing hash table whose entire
// state is one SharedArrayBuffer (see README.md for the layout and contracts).
//
// One writer thread mutates a table. Other threads may call the read methods
// (find, valueLength, keyLength, copyValue, stats, keys) on their own HashTable
// over the same buffer, but only while the writer is idle. Read methods never
// write and never throw on odd data; loops are bounded by slot counts.
//
// put/delete first advance a running migration by MIGRATE_SLOTS_PER_OP slots,
// then look in the primary slot array, then in the old one. New keys always go
// to the primary array. Every change is published with single u32 stores in
// the order given in README "Crash consistency".

import { allocate, free } from './allocator.js';
import {
  ENTRY_FLAGS_KNOWN, ENTRY_HAS_EXPIRY, ENTRY_VALUE_CODEC_MAX, ENTRY_VALUE_CODEC_SHIFT, entryBlockBytes, entryBytesFor, entryExpiry,
  entryFlags, entryHeaderBytes, entryKeyLength, entryKeyStart, entryValueLength, writeEntryExpiry, writeEntryHeader,
} from './entry.js';
import { expireStep } from './expiry.js';
import { homeSlot, mix32 } from './hash.js';
import {
  D_INDEX_REF, D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, 
  F_PAYLOAD_BYTES, H_EXPIRING_KEYS, H_INDEX_TOMBSTONES, H_INDEX_USED_SLOTS, H_KEYS, INDEX_SLOTS_MIN, KEY_BYTES_MAX,
  MIGRATE_SLOTS_PER_OP, REF_EMPTY, REF_TOMBSTONE, slotsUsedHardMax, slotsUsedMax, VALUE_BYTES_MAX,
} from './layout.js';
import { descriptorAt, finishMigration, migrateStep, rebuildSlotsFor, startRebuild } from './migration.js';
import { recoverTable } from './recover.js';
import { probeKey, probeReusable } from './slots.js';
import { scanStep } from './scan.js';
import { copyFromShared, copyIntoShared } from './shared-copy.js';
import { readStats, type TableStats } from './stats.js';
import { checkFormatted, createViews, type TableViews } from './views.js';

/** put() results. */
export const PUT_OK = 0;
export const PUT_OUT_OF_MEMORY = 1;
export const PUT_KEY_TOO_LARGE = 2;
export const PUT_VALUE_TOO_LARGE = 3;
/** put() with an expiry that is not a time the table can store (see EXPIRY_MS_MAX). */
export const PUT_BAD_EXPIRY = 4;
/** setExpiry() found no such key. */
export const PUT_NOT_FOUND = 5;
export type PutResult = typeof PUT_OK | typeof PUT_OUT_OF_MEMORY | typeof PUT_KEY_TOO_LARGE | typeof PUT_VALUE_TOO_LARGE |
  typeof PUT_BAD_EXPIRY | typeof PUT_NOT_FOUND;

/** Largest storable expiry: 2^53 - 1 ms (the table stores 64 bits; JS numbers are exact to 2^53). */
export const EXPIRY_MS_MAX = Number.MAX_SAFE_INTEGER;

/** Entry flags for an expiry (0 = none) and a value codec id (0..7). */
function flagsFor(expiry_ms: number, value_codec: number): number {
  return (expiry_ms > 0 ? ENTRY_HAS_EXPIRY : 0) | ((value_codec & ENTRY_VALUE_CODEC_MAX) << ENTRY_VALUE_CODEC_SHIFT);
}

function expiryValid(expiry_ms: number): boolean {
  return Number.isSafeInteger(expiry_ms) && expiry_ms >= 0 && expiry_ms <= EXPIRY_MS_MAX;
}

/** Most hashes one prefetch() call touches: twice that many cache lines still fit in L2. */
export const PREFETCH_OPS_MAX = 512;

/** Copies of at most this many bytes use a loop instead of set(subarray()). */
const COPY_LOOP_BYTES_MAX = 32;

export class HashTable {
  readonly memory: SharedArrayBuffer;
  private readonly views: TableViews;
  private readonly prefetch_refs = new Uint32Array(PREFETCH_OPS_MAX);

  /** Attaches to a formatted buffer; throws HashTableError if it is not one. */
  constructor(memory: SharedArrayBuffer) {
    checkFormatted(memory);
    this.memory = memory;
    this.views = createViews(memory);
  }

  /** Live keys. */
  get keys(): number {
    return this.views.u32[H_KEYS]!;
  }

  /** Live keys that have an expiry (expired or not): active expiry has nothing to do while this is 0. */
  get expiring_keys(): number {
    return this.views.u32[H_EXPIRING_KEYS]!;
  }

  /** Writer only, once after attaching to a buffer whose writer may have been killed. */
  recover(): void {
    recoverTable(this.views);
  }

  /** Entry ref of `key`, or 0 if absent. The ref is valid until the next put/delete. */
  find(hash: number, key: Uint8Array, key_offset: number, key_length: number): number {
    const views = this.views;
    const u32 = views.u32;
    const tag = mix32(hash);
    const d = descriptorAt(u32);
    let slot = probeKey(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, tag, key, key_offset, key_length);
    if (slot > 0) return u32[slot + 1]!;
    const old_ref = u32[d + D_OLD_REF]!;
    if (old_ref === 0) return 0;
    slot = probeKey(views, old_ref, u32[d + D_OLD_SLOTS]!, tag, key, key_offset, key_length);
    return slot > 0 ? u32[slot + 1]! : 0;
  }

  /**
   * Warms the cache for a batch: for each hash in hashes[start..end) it reads the home slot of
   * the primary slot array, then the header of the entry that slot points at. The loads of
   * one phase do not depend on each other, so their cache misses overlap instead of being
   * paid one op at a time (shared/MEASUREMENTS.md: a 1M-key table is bound by memory
   * latency, and phase-splitting a batch doubled GET throughput). Read-only, changes nothing,
   * never throws; the returned number only keeps the loads from being optimised away.
   * At most PREFETCH_OPS_MAX hashes are touched per call.
   */
  prefetch(hashes: Uint32Array, start: number, end: number): number {
    const u32 = this.views.u32;
    const units_total = this.views.units_total;
    const d = descriptorAt(u32);
    const index_ref = u32[d + D_INDEX_REF]!;
    const index_slots = u32[d + D_INDEX_SLOTS]!;
    if (index_slots < 2 || index_ref + index_slots * 2 > units_total) return 0;
    const refs = this.prefetch_refs;
    const count = Math.min(end - start, PREFETCH_OPS_MAX);
    for (let i = 0; i < count; i++) {
      refs[i] = u32[index_ref + 2 * homeSlot(mix32(hashes[start + i]!), index_slots) + 1]!;
    }
    let sink = 0;
    const u8 = this.views.u8;
    for (let i = 0; i < count; i++) {
      const ref = refs[i]!;
      if (ref <= REF_TOMBSTONE || ref + 2 > units_total) continue;
      // The entry's last byte: a value of ~100 B puts the entry across two or three lines.
      const last = entryKeyStart(u32, ref) + entryKeyLength(u32, ref) + entryValueLength(u32, ref) - 1;
      sink += last < u8.length ? u8[last]! : 0;
    }
    return sink;
  }

  /** Value length of entry `ref` (from find), 0 for an invalid ref. */
  valueLength(ref: number): number {
    return ref > REF_TOMBSTONE && entryHeaderBytes(this.views, ref) > 0 ? entryValueLength(this.views.u32, ref) : 0;
  }

  /** Key length of entry `ref` (from find), 0 for an invalid ref. */
  keyLength(ref: number): number {
    return ref > REF_TOMBSTONE && entryHeaderBytes(this.views, ref) > 0 ? entryKeyLength(this.views.u32, ref) : 0;
  }

  /** Absolute expiry (ms since the Unix epoch) of entry `ref`, 0 if it has none or the ref is invalid. */
  expiry(ref: number): number {
    return ref > REF_TOMBSTONE && entryHeaderBytes(this.views, ref) > 0 ? entryExpiry(this.views.u32, ref) : 0;
  }

  /** Value codec id (0 = raw; issue #13) of entry `ref`, 0 for an invalid ref. Stored, never interpreted. */
  valueFlags(ref: number): number {
    if (ref <= REF_TOMBSTONE || entryHeaderBytes(this.views, ref) === 0) return 0;
    return (entryFlags(this.views.u32, ref) >>> ENTRY_VALUE_CODEC_SHIFT) & ENTRY_VALUE_CODEC_MAX;
  }

  /** Copies the value of entry `ref` to target[target_offset..]. Copies nothing for an invalid ref. */
  copyValue(ref: number, target: Uint8Array, target_offset: number): void {
    const views = this.views;
    if (ref <= REF_TOMBSTONE || entryHeaderBytes(views, ref) === 0) return;
    const value_length = entryValueLength(views.u32, ref);
    const start = entryKeyStart(views.u32, ref) + entryKeyLength(views.u32, ref);
    if (start + value_length > views.u8.length || target_offset + value_length > target.length) return;
    const u8 = views.u8;
    if (value_length <= COPY_LOOP_BYTES_MAX) {
      for (let i = 0; i < value_length; i++) target[target_offset + i] = u8[start + i]!;
    } else {
      copyFromShared(u8, start, value_length, target, target_offset);
    }
  }

  /** Copies the key of entry `ref` to target[target_offset..]. Copies nothing for an invalid ref. */
  copyKey(ref: number, target: Uint8Array, target_offset: number): void {
    const views = this.views;
    if (ref <= REF_TOMBSTONE || entryHeaderBytes(views, ref) === 0) return;
    const key_length = entryKeyLength(views.u32, ref);
    const start = entryKeyStart(views.u32, ref);
    if (start + key_length > views.u8.length || target_offset + key_length > target.length) return;
    if (key_length <= COPY_LOOP_BYTES_MAX) {
      for (let i = 0; i < key_length; i++) target[target_offset + i] = views.u8[start + i]!;
    } else {
      copyFromShared(views.u8, start, key_length, target, target_offset);
    }
  }

  /**
   * One bounded step of a read-only scan (see scan.ts): calls `visit(ref)` for about
   * `entries_max` live entries and returns the next cursor; start at 0, done at SCAN_END.
   * Keys present and unchanged for the whole scan are visited at least once, across
   * migrations; `ref` is valid only inside `visit`.
   */
  scan(cursor: number, entries_max: number, visit: (ref: number) => void): number {
    return scanStep(this.views, cursor, entries_max, visit);
  }

  /**
   * Inserts or overwrites. `expiry_ms`: absolute expiry in ms since the Unix epoch, 0 for none
   * (an overwrite replaces the old expiry either way); `value_codec`: 0..7, stored as given.
   * Never throws; on an error result the table is unchanged.
   */
  put(
    hash: number, key: Uint8Array, key_offset: number, key_length: number,
    value: Uint8Array, value_offset: number, value_length: number, expiry_ms = 0, value_codec = 0,
  ): PutResult {
    if (key_length > KEY_BYTES_MAX) return PUT_KEY_TOO_LARGE;
    if (value_length > VALUE_BYTES_MAX) return PUT_VALUE_TOO_LARGE;
    if (!expiryValid(expiry_ms) || !(value_codec >= 0 && value_codec <= ENTRY_VALUE_CODEC_MAX)) return PUT_BAD_EXPIRY;
    const flags = flagsFor(expiry_ms, value_codec);
    const views = this.views;
    const u32 = views.u32;
    migrateStep(views, MIGRATE_SLOTS_PER_OP);
    const tag = mix32(hash);
    const d = descriptorAt(u32);
    const found = probeKey(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, tag, key, key_offset, key_length);
    if (found > 0) return this.overwrite(found, key_length, value, value_offset, value_length, flags, expiry_ms);
    const old_ref = u32[d + D_OLD_REF]!;
    if (old_ref !== 0) {
      const old_found = probeKey(views, old_ref, u32[d + D_OLD_SLOTS]!, tag, key, key_offset, key_length);
      if (old_found > 0) return this.overwrite(old_found, key_length, value, value_offset, value_length, flags, expiry_ms);
    }
    return this.insert(-found, tag, key, key_offset, key_length, value, value_offset, value_length, flags, expiry_ms);
  }

  /**
   * Sets (expiry_ms > 0) or clears (0) the expiry of an existing key, keeping its value.
   * PUT_OK, PUT_NOT_FOUND, PUT_BAD_EXPIRY or PUT_OUT_OF_MEMORY (table unchanged). An entry that
   * already has an expiry gets the new one in place (one u32 pair); otherwise the entry is
   * rewritten in the other header form, so a key whose TTL is cleared pays no extra bytes again.
   */
  setExpiry(hash: number, key: Uint8Array, key_offset: number, key_length: number, expiry_ms: number): PutResult {
    if (!expiryValid(expiry_ms)) return PUT_BAD_EXPIRY;
    const slot = this.slotOf(hash, key, key_offset, key_length);
    if (slot <= 0) return PUT_NOT_FOUND;
    const views = this.views;
    const u32 = views.u32;
    const ref = u32[slot + 1]!;
    const flags_old = entryFlags(u32, ref);
    if (expiry_ms > 0 && (flags_old & ENTRY_HAS_EXPIRY) !== 0) {
      // A kill between the two stores can leave a mixed time; with --data-dir the worker re-applies the logged op.
      writeEntryExpiry(u32, ref, expiry_ms);
      return PUT_OK;
    }
    if (expiry_ms === 0 && (flags_old & ENTRY_HAS_EXPIRY) === 0) return PUT_OK;
    const flags = (flags_old & ENTRY_FLAGS_KNOWN & ~ENTRY_HAS_EXPIRY) | (expiry_ms > 0 ? ENTRY_HAS_EXPIRY : 0);
    const key_start = entryKeyStart(u32, ref);
    const value_length = entryValueLength(u32, ref);
    return this.replace(slot, key_length, views.u8, key_start + key_length, value_length, flags, expiry_ms);
  }

  /**
   * One bounded step of active expiry (expiry.ts): visits up to `slots_max` slots from `cursor`
   * and deletes the entries whose expiry is at or before `now_ms`. Returns the next cursor in
   * `result[0]`, the live entries visited in `result[1]` and those deleted in `result[2]`.
   * Writer only.
   */
  expireStep(cursor: number, slots_max: number, now_ms: number, result: Float64Array): void {
    expireStep(this.views, cursor, slots_max, now_ms, result, null);
  }

  /**
   * Read-only twin of expireStep: lists the refs of expired entries in `found` (at most its
   * length; result[2] counts all) instead of deleting them, so the caller can log their deletes
   * first and then delete them by key. Refs are valid until the next put/delete.
   */
  findExpired(cursor: number, slots_max: number, now_ms: number, result: Float64Array, found: Uint32Array): void {
    expireStep(this.views, cursor, slots_max, now_ms, result, found);
  }

  /** Slot (> 0) holding `key` in the primary or the old array, or <= 0 if absent. Advances a migration first. */
  private slotOf(hash: number, key: Uint8Array, key_offset: number, key_length: number): number {
    const views = this.views;
    const u32 = views.u32;
    migrateStep(views, MIGRATE_SLOTS_PER_OP);
    const tag = mix32(hash);
    const d = descriptorAt(u32);
    const found = probeKey(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, tag, key, key_offset, key_length);
    if (found > 0) return found;
    const old_ref = u32[d + D_OLD_REF]!;
    if (old_ref === 0) return 0;
    return probeKey(views, old_ref, u32[d + D_OLD_SLOTS]!, tag, key, key_offset, key_length);
  }

  /** Removes `key`. Returns true if it existed. */
  delete(hash: number, key: Uint8Array, key_offset: number, key_length: number): boolean {
    const views = this.views;
    const u32 = views.u32;
    migrateStep(views, MIGRATE_SLOTS_PER_OP);
    const tag = mix32(hash);
    const d = descriptorAt(u32);
    let slot = probeKey(views, u32[d + D_INDEX_REF]!, u32[d + D_INDEX_SLOTS]!, tag, key, key_offset, key_length);
    const in_primary = slot > 0;
    const old_ref = u32[d + D_OLD_REF]!;
    if (!in_primary && old_ref !== 0) {
      slot = probeKey(views, old_ref, u32[d + D_OLD_SLOTS]!, tag, key, key_offset, key_length);
    }
    if (slot <= 0) return false;
    const ref = u32[slot + 1]!;
    const key_bytes = entryKeyLength(u32, ref);
    const value_bytes = entryValueLength(u32, ref);
    const payload_bytes = key_bytes + value_bytes;
    const expiring = (entryFlags(u32, ref) & ENTRY_HAS_EXPIRY) !== 0;
    const block_bytes = entryBlockBytes(u32, ref);
    u32[slot + 1] = REF_TOMBSTONE; // publish
    free(views, ref, block_bytes);
    if (expiring) u32[H_EXPIRING_KEYS] = u32[H_EXPIRING_KEYS]! - 1;
    const keys = u32[H_KEYS]! - 1;
    u32[H_KEYS] = keys;
    if (in_primary) u32[H_INDEX_TOMBSTONES] = u32[H_INDEX_TOMBSTONES]! + 1;
    views.f64[F_PAYLOAD_BYTES] -= payload_bytes;
    // Shrink a sparse table (fewer than 1/8 live). Halves at most per rebuild.
    const index_slots = u32[d + D_INDEX_SLOTS]!;
    if (old_ref === 0 && index_slots > INDEX_SLOTS_MIN && keys * 8 < index_slots) {
      startRebuild(views, rebuildSlotsFor(keys, index_slots));
    }
    return true;
  }

  /** Advances a running migration by up to `slots_max` old slots (writer only). */
  step(slots_max: number): void {
    if (!(slots_max > 0)) return;
    migrateStep(this.views, Math.min(Math.floor(slots_max), 0xffff_ffff));
  }

  stats(): TableStats {
    return readStats(this.views);
  }

  /** New value for the key in `slot`: in place if length and flags are unchanged, else a new block. */
  private overwrite(
    slot: number, key_length: number, value: Uint8Array, value_offset: number, value_length: number, flags: number, expiry_ms: number,
  ): PutResult {
    const views = this.views;
    const u32 = views.u32;
    const ref = u32[slot + 1]!;
    const value_length_old = entryValueLength(u32, ref);
    const key_start_old = entryKeyStart(u32, ref);
    if (value_length_old === value_length && entryFlags(u32, ref) === flags) {
      // A kill between the expiry and the value stores leaves one of them new: with --data-dir
      // the worker re-applies the logged op before serving (docs/PERSISTENCE.md).
      if ((flags & ENTRY_HAS_EXPIRY) !== 0) writeEntryExpiry(u32, ref, expiry_ms);
      // One TypedArray.prototype.set call (copyIntoShared ends in one): a kill cannot tear the value.
      copyIntoShared(views.u8, key_start_old + key_length, value, value_offset, value_length);
      return PUT_OK;
    }
    return this.replace(slot, key_length, value, value_offset, value_length, flags, expiry_ms);
  }

  /**
   * Swaps the entry in `slot` for a new block with the same key and the given value, flags and
   * expiry (the value may lie in the old block: it is copied before the old block is freed).
   */
  private replace(
    slot: number, key_length: number, value: Uint8Array, value_offset: number, value_length: number, flags: number, expiry_ms: number,
  ): PutResult {
    const views = this.views;
    const u32 = views.u32;
    const ref = u32[slot + 1]!;
    const value_length_old = entryValueLength(u32, ref);
    const expiring_old = (entryFlags(u32, ref) & ENTRY_HAS_EXPIRY) !== 0;
    const block_bytes_old = entryBlockBytes(u32, ref);
    const ref_new = allocate(views, entryBytesFor(key_length, value_length, flags));
    if (ref_new === 0) return PUT_OUT_OF_MEMORY;
    // The key bytes are copied from the old entry (it is the same key).
    this.writeEntry(ref_new, views.u8, entryKeyStart(u32, ref), key_length, value, value_offset, value_length, flags, expiry_ms);
    u32[slot + 1] = ref_new; // publish
    free(views, ref, block_bytes_old);
    views.f64[F_PAYLOAD_BYTES] += value_length - value_length_old;
    const expiring = (flags & ENTRY_HAS_EXPIRY) !== 0;
    if (expiring !== expiring_old) u32[H_EXPIRING_KEYS] = u32[H_EXPIRING_KEYS]! + (expiring ? 1 : -1);
    return PUT_OK;
  }

  /**
   * Inserts a key known to be absent. `reusable` is the primary-array slot
   * probeKey offered (0 if none). Makes room first: a rebuild when the primary
   * array would pass 3/4 used; if the arena cannot hold a new array, inserts
   * continue up to 15/16 used, then PUT_OUT_OF_MEMORY.
   */
  private insert(
    reusable: number, tag: number, key: Uint8Array, key_offset: number, key_length: number,
    value: Uint8Array, value_offset: number, value_length: number, flags: number, expiry_ms: number,
  ): PutResult {
    const views = this.views;
    const u32 = views.u32;
    let slot = reusable;
    if (slot === 0 || u32[slot + 1] === REF_EMPTY) {
      const d = descriptorAt(u32);
      const index_slots = u32[d + D_INDEX_SLOTS]!;
      const used = u32[H_INDEX_USED_SLOTS]!;
      if (slot === 0 || used + 1 > slotsUsedMax(index_slots)) {
        // Excluded by the sizing rule (see migration.ts) unless counters are stale.
        if (u32[d + D_OLD_REF] !== 0) finishMigration(views);
        if (startRebuild(views, rebuildSlotsFor(u32[H_KEYS]! + 1, index_slots))) {
          const d_new = descriptorAt(u32);
          slot = probeReusable(views, u32[d_new + D_INDEX_REF]!, u32[d_new + D_INDEX_SLOTS]!, tag);
        } else if (used + 1 > slotsUsedHardMax(index_slots)) {
          return PUT_OUT_OF_MEMORY;
        }
        if (slot === 0) return PUT_OUT_OF_MEMORY;
      }
    }
    const ref = allocate(views, entryBytesFor(key_length, value_length, flags));
    if (ref === 0) return PUT_OUT_OF_MEMORY;
    this.writeEntry(ref, key, key_offset, key_length, value, value_offset, value_length, flags, expiry_ms);
    const counter = u32[slot + 1] === REF_TOMBSTONE ? H_INDEX_TOMBSTONES : H_INDEX_USED_SLOTS;
    views.i32[slot] = tag;
    u32[slot + 1] = ref; // publish
    u32[counter] = counter === H_INDEX_TOMBSTONES ? u32[counter]! - 1 : u32[counter]! + 1;
    u32[H_KEYS] = u32[H_KEYS]! + 1;
    if ((flags & ENTRY_HAS_EXPIRY) !== 0) u32[H_EXPIRING_KEYS] = u32[H_EXPIRING_KEYS]! + 1;
    views.f64[F_PAYLOAD_BYTES] += key_length + value_length;
    return PUT_OK;
  }

  /** Fills a fresh, unpublished block: header (with its expiry, if flagged), key bytes, value bytes. */
  private writeEntry(
    ref: number, key: Uint8Array, key_offset: number, key_length: number,
    value: Uint8Array, value_offset: number, value_length: number, flags: number, expiry_ms: number,
  ): void {
    const u8 = this.views.u8;
    writeEntryHeader(this.views.u32, ref, key_length, value_length, flags, expiry_ms);
    const start = entryKeyStart(this.views.u32, ref);
    copyIntoTable(u8, start, key, key_offset, key_length);
    copyIntoTable(u8, start + key_length, value, value_offset, value_length);
  }
}

/** Copies source[source_offset..+length] into the table's memory at table_u8[target_offset..]. */
function copyIntoTable(table_u8: Uint8Array, target_offset: number, source: Uint8Array, source_offset: number, length: number): void {
  if (length <= COPY_LOOP_BYTES_MAX) {
    for (let i = 0; i < length; i++) table_u8[target_offset + i] = source[source_offset + i]!;
  } else {
    copyIntoShared(table_u8, target_offset, source, source_offset, length);
  }
}


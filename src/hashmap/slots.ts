// Slot arrays: linear probing over [hash tag, entry ref] pairs.
//
// A slot array is a block of `index_slots` (power of two) slots of 2 units.
// ref 0 = empty (ends a probe chain), ref 1 = tombstone (chain continues),
// anything else = unit address of an entry block. Lookups compare the stored
// tag before touching the entry's key bytes.
//
// These functions only read; callers write slots. Every loop
// is bounded by the slot count, and every entry address is checked against the
// buffer, so a reader on another thread cannot throw or spin on odd data.

import { entryHeaderBytes, entryKeyLength, entryKeyStart, entryValueLength } from './entry.js';
import { homeSlot } from './hash.js';
import {
  HEADER_UNITS, KEY_BYTES_MAX, REF_EMPTY, REF_TOMBSTONE, VALUE_BYTES_MAX,
} from './layout.js';
import type { TableViews } from './views.js';

/** True if a slot array of `index_slots` at `index_ref` lies inside the buffer. */
export function slotArrayValid(views: TableViews, index_ref: number, index_slots: number): boolean {
  return index_ref >= HEADER_UNITS && index_slots >= 2 && (index_slots & (index_slots - 1)) === 0 &&
    index_ref + index_slots * 2 <= views.units_total;
}

/** True if `ref` is an entry whose header and bytes lie inside the buffer. */
export function entryValid(views: TableViews, ref: number): boolean {
  if (ref < HEADER_UNITS) return false;
  const header_bytes = entryHeaderBytes(views, ref);
  if (header_bytes === 0) return false;
  const key_bytes = entryKeyLength(views.u32, ref);
  const value_bytes = entryValueLength(views.u32, ref);
  return key_bytes <= KEY_BYTES_MAX && value_bytes <= VALUE_BYTES_MAX &&
    ref * 4 + header_bytes + key_bytes + value_bytes <= views.u8.length;
}

/** True if entry `ref` holds exactly key[key_offset .. key_offset + key_length). */
export function entryKeyEquals(
  views: TableViews, ref: number, key: Uint8Array, key_offset: number, key_length: number,
): boolean {
  const u32 = views.u32;
  if (entryHeaderBytes(views, ref) === 0 || entryKeyLength(u32, ref) !== key_length) return false;
  const start = entryKeyStart(u32, ref);
  if (start + key_length + entryValueLength(u32, ref) > views.u8.length) return false;
  const u8 = views.u8;
  for (let i = 0; i < key_length; i++) {
    if (u8[start + i] !== key[key_offset + i]) return false;
  }
  return true;
}

/**
 * Looks `key` up in one slot array. Returns:
 *   > 0  the unit address of the slot holding the key;
 *   < 0  not found, and minus the unit address of the first reusable slot
 *        (tombstone or the empty slot that ended the chain);
 *   0    not found and no reusable slot (array full), or invalid array.
 */
export function probeKey(
  views: TableViews, index_ref: number, index_slots: number, tag: number,
  key: Uint8Array, key_offset: number, key_length: number,
): number {
  if (!slotArrayValid(views, index_ref, index_slots)) return 0;
  const u32 = views.u32;
  const i32 = views.i32;
  const mask = index_slots - 1;
  let i = homeSlot(tag, index_slots);
  let reusable = 0;
  for (let probes = 0; probes < index_slots; probes++) {
    const slot = index_ref + i * 2;
    const ref = u32[slot + 1]!;
    if (ref === REF_EMPTY) return reusable === 0 ? -slot : -reusable;
    if (ref === REF_TOMBSTONE) {
      if (reusable === 0) reusable = slot;
    } else if (i32[slot] === tag && entryKeyEquals(views, ref, key, key_offset, key_length)) {
      return slot;
    }
    i = (i + 1) & mask;
  }
  return -reusable;
}

/** First empty or tombstone slot on `tag`'s chain, or 0 if the array is full. */
export function probeReusable(views: TableViews, index_ref: number, index_slots: number, tag: number): number {
  const u32 = views.u32;
  const mask = index_slots - 1;
  let i = homeSlot(tag, index_slots);
  for (let probes = 0; probes < index_slots; probes++) {
    const slot = index_ref + i * 2;
    if (u32[slot + 1]! <= REF_TOMBSTONE) return slot;
    i = (i + 1) & mask;
  }
  return 0;
}

/** Slot on `tag`'s chain whose ref is exactly `ref`, or 0. Used by recover(). */
export function probeRef(views: TableViews, index_ref: number, index_slots: number, tag: number, ref: number): number {
  const u32 = views.u32;
  const mask = index_slots - 1;
  let i = homeSlot(tag, index_slots);
  for (let probes = 0; probes < index_slots; probes++) {
    const slot = index_ref + i * 2;
    const slot_ref = u32[slot + 1]!;
    if (slot_ref === REF_EMPTY) return 0;
    if (slot_ref === ref) return slot;
    i = (i + 1) & mask;
  }
  return 0;
}

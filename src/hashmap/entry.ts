// Entry headers: the lengths in front of an entry's key and value bytes.
//
// Most entries are small, so the header has two forms. A short header is one
// u32 (bit 31 clear): key length in bits 0..10, value length in bits 11..30 —
// for keys up to 2047 B and values under 1 MiB. A long header is two u32s:
// bit 31 set plus the key length (up to 65535) in unit 0, the value length in
// unit 1. For a 16 B key and 100 B value the short form makes the block 120 B
// instead of 124 B, 3% of a 1M-key table. Free blocks reuse unit 0 as their
// free-list pointer, so nothing here is read from a block that is not live.

import type { TableViews } from './views.js';

export const ENTRY_SHORT_KEY_BYTES_MAX = 0x7ff;
export const ENTRY_SHORT_VALUE_BYTES_MAX = 0xfffff;
const LONG_FORM = 0x8000_0000;
const SHORT_VALUE_SHIFT = 11;

/** Header bytes an entry with these lengths gets: 4 or 8. */
export function entryHeaderBytesFor(key_length: number, value_length: number): number {
  return key_length <= ENTRY_SHORT_KEY_BYTES_MAX && value_length <= ENTRY_SHORT_VALUE_BYTES_MAX ? 4 : 8;
}

/** Block bytes an entry needs before size-class rounding. */
export function entryBytesFor(key_length: number, value_length: number): number {
  return entryHeaderBytesFor(key_length, value_length) + key_length + value_length;
}

/** Writes the header of a fresh, unpublished block. */
export function writeEntryHeader(u32: Uint32Array, ref: number, key_length: number, value_length: number): void {
  if (entryHeaderBytesFor(key_length, value_length) === 4) {
    u32[ref] = (value_length << SHORT_VALUE_SHIFT) | key_length;
  } else {
    u32[ref + 1] = value_length;
    u32[ref] = (LONG_FORM | key_length) >>> 0;
  }
}

/** Header bytes of the entry at `ref`, or 0 if its header does not fit in the buffer. */
export function entryHeaderBytes(views: TableViews, ref: number): number {
  if (ref + 1 > views.units_total) return 0;
  if (views.u32[ref]! < LONG_FORM) return 4;
  return ref + 2 <= views.units_total ? 8 : 0;
}

/** Key length of the entry at `ref`; the caller has checked entryHeaderBytes(ref) > 0. */
export function entryKeyLength(u32: Uint32Array, ref: number): number {
  const word = u32[ref]!;
  return word < LONG_FORM ? word & ENTRY_SHORT_KEY_BYTES_MAX : word & 0xffff;
}

/** Value length of the entry at `ref`; the caller has checked entryHeaderBytes(ref) > 0. */
export function entryValueLength(u32: Uint32Array, ref: number): number {
  const word = u32[ref]!;
  return word < LONG_FORM ? word >>> SHORT_VALUE_SHIFT : u32[ref + 1]!;
}

/** Byte offset of the entry's key (its value follows the key). */
export function entryKeyStart(u32: Uint32Array, ref: number): number {
  return ref * 4 + (u32[ref]! < LONG_FORM ? 4 : 8);
}

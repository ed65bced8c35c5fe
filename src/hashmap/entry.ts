// Entry headers: the lengths (and optional metadata) in front of an entry's key and value bytes.
//
// Most entries are small and have no metadata, so the header has two forms. A short header is
// one u32 (bit 31 clear): key length in bits 0..10, value length in bits 11..30 — for keys up to
// 2047 B and values under 1 MiB, without metadata. A long header is two u32s: unit 0 holds
// bit 31, the key length (up to 65535) in bits 0..15 and the entry flags in bits 16..30; unit 1
// holds the value length. For a 16 B key and 100 B value the short form makes the block 120 B
// instead of 124 B, 3% of a 1M-key table, so keys without a TTL pay nothing for the flags.
//
// Entry flags (layout version 2; version 1 long headers have bits 16..30 all zero, which reads
// as "no metadata", so a version-1 table is a valid version-2 table):
//   bit 16      HAS_EXPIRY: units 2 and 3 hold the absolute expiry time in ms since the Unix
//               epoch (low u32, then high u32), and the key starts after them.
//   bits 17..19 value codec id (0 = raw bytes), kept for value compression (issue #13); the
//               table stores and returns it and never interprets it.
//   bits 20..30 reserved, zero.
// An entry with any flag set always uses the long form. Free blocks reuse unit 0 as their
// free-list pointer, so nothing here is read from a block that is not live.

import type { TableViews } from './views.js';

export const ENTRY_SHORT_KEY_BYTES_MAX = 0x7ff;
export const ENTRY_SHORT_VALUE_BYTES_MAX = 0xfffff;
const LONG_FORM = 0x8000_0000;
const SHORT_VALUE_SHIFT = 11;
const FLAGS_SHIFT = 16;
/** Entry flag: an absolute expiry time (ms) follows the long header. */
export const ENTRY_HAS_EXPIRY = 1;
/** Entry flags bits 1..3 (header bits 17..19): the value codec id. */
export const ENTRY_VALUE_CODEC_SHIFT = 1;
export const ENTRY_VALUE_CODEC_MAX = 7;
/** Flags a table may store; the rest are reserved. */
export const ENTRY_FLAGS_KNOWN = ENTRY_HAS_EXPIRY | (ENTRY_VALUE_CODEC_MAX << ENTRY_VALUE_CODEC_SHIFT);
const U32_SPAN = 0x1_0000_0000;

/** Header bytes an entry with these lengths and flags gets: 4, 8 or 16. */
export function entryHeaderBytesFor(key_length: number, value_length: number, flags = 0): number {
  if (flags !== 0) return (flags & ENTRY_HAS_EXPIRY) !== 0 ? 16 : 8;
  return key_length <= ENTRY_SHORT_KEY_BYTES_MAX && value_length <= ENTRY_SHORT_VALUE_BYTES_MAX ? 4 : 8;
}

/** Block bytes an entry needs before size-class rounding. */
export function entryBytesFor(key_length: number, value_length: number, flags = 0): number {
  return entryHeaderBytesFor(key_length, value_length, flags) + key_length + value_length;
}

/**
 * Writes the header of a fresh, unpublished block. `expiry_ms` is stored only when `flags` has
 * ENTRY_HAS_EXPIRY.
 */
export function writeEntryHeader(u32: Uint32Array, ref: number, key_length: number, value_length: number, flags = 0, expiry_ms = 0): void {
  if (entryHeaderBytesFor(key_length, value_length, flags) === 4) {
    u32[ref] = (value_length << SHORT_VALUE_SHIFT) | key_length;
    return;
  }
  u32[ref + 1] = value_length;
  if ((flags & ENTRY_HAS_EXPIRY) !== 0) writeEntryExpiry(u32, ref, expiry_ms);
  u32[ref] = (LONG_FORM | (flags << FLAGS_SHIFT) | key_length) >>> 0;
}

/** Overwrites the expiry of an entry that has ENTRY_HAS_EXPIRY. */
export function writeEntryExpiry(u32: Uint32Array, ref: number, expiry_ms: number): void {
  u32[ref + 2] = expiry_ms % U32_SPAN;
  u32[ref + 3] = Math.floor(expiry_ms / U32_SPAN);
}

/** Header bytes of the entry at `ref`, or 0 if its header does not fit in the buffer. */
export function entryHeaderBytes(views: TableViews, ref: number): number {
  if (ref + 1 > views.units_total) return 0;
  const word = views.u32[ref]!;
  if (word < LONG_FORM) return 4;
  const bytes = (word & (ENTRY_HAS_EXPIRY << FLAGS_SHIFT)) !== 0 ? 16 : 8;
  return ref + bytes / 4 <= views.units_total ? bytes : 0;
}

/** Entry flags of the entry at `ref` (0 for a short header); the caller has checked entryHeaderBytes(ref) > 0. */
export function entryFlags(u32: Uint32Array, ref: number): number {
  const word = u32[ref]!;
  return word < LONG_FORM ? 0 : (word >>> FLAGS_SHIFT) & 0x7fff;
}

/** Absolute expiry (ms since the epoch) of the entry at `ref`, or 0 if it has none. */
export function entryExpiry(u32: Uint32Array, ref: number): number {
  const word = u32[ref]!;
  if (word < LONG_FORM || (word & (ENTRY_HAS_EXPIRY << FLAGS_SHIFT)) === 0) return 0;
  return u32[ref + 3]! * U32_SPAN + u32[ref + 2]!;
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
  const word = u32[ref]!;
  if (word < LONG_FORM) return ref * 4 + 4;
  return ref * 4 + ((word & (ENTRY_HAS_EXPIRY << FLAGS_SHIFT)) !== 0 ? 16 : 8);
}

/** Block bytes (before size-class rounding) of the live entry at `ref`. */
export function entryBlockBytes(u32: Uint32Array, ref: number): number {
  return entryBytesFor(entryKeyLength(u32, ref), entryValueLength(u32, ref), entryFlags(u32, ref));
}

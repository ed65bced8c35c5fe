// Size-class allocator living inside the table's SharedArrayBuffer.
//
// Blocks come from a bump pointer (H_BUMP_UNITS, only ever grows) or from one
// segregated free list per size class. Classes have 4-byte granularity up to
// 256 B, then 8 classes per power of two, so a block wastes at most 12.5% of
// its size. A freed block goes on its own class's list; there is no splitting
// or coalescing (see README "Limits").
//
// Crash consistency: every change is published by one u32 store.
//   push: block[0] = head; head = block      (killed between: block leaked)
//   pop:  head = block[0]                     (killed after: block leaked)
//   bump: bump = bump + units                 (killed after: block leaked)
// Memory above the bump pointer has never been written, so it is still zero.
//
// Accounting (f64 header counters): F_BYTES_ALLOCATED is the sum of class sizes
// of blocks handed out and not yet freed; F_BYTES_FREE_LISTED of blocks on free
// lists. Both are repaired by recover() after a crash.

import {
  BLOCK_BYTES_MAX, F_BYTES_ALLOCATED, F_BYTES_FREE_LISTED, H_BUMP_UNITS, H_FREE_HEADS, HEADER_UNITS,
  SIZE_CLASS_COUNT,
} from './layout.js';
import type { TableViews } from './views.js';

/** Size class of a block of `block_bytes` (1 .. BLOCK_BYTES_MAX). */
export function sizeClassOf(block_bytes: number): number {
  if (block_bytes <= 256) return ((block_bytes + 3) >>> 2) - 1;
  const power = 31 - Math.clz32(block_bytes - 1); // 2^power < block_bytes <= 2^(power+1)
  return 64 + ((power - 8) << 3) + ((block_bytes - 1 - 2 ** power) >>> (power - 3));
}

/** Bytes of a block of size class `size_class`. */
export function sizeClassBytes(size_class: number): number {
  if (size_class < 64) return (size_class + 1) * 4;
  const power = 8 + ((size_class - 64) >>> 3);
  return 2 ** power + ((size_class & 7) + 1) * 2 ** (power - 3);
}

/** Bytes a request of `block_bytes` really takes. */
export function blockBytesFor(block_bytes: number): number {
  return sizeClassBytes(sizeClassOf(block_bytes));
}

/**
 * Allocates a block of at least `block_bytes`. Returns its unit address, or 0
 * if the arena is exhausted and the class's free list is empty. Contents are
 * arbitrary (see allocateZeroed).
 */
export function allocate(views: TableViews, block_bytes: number): number {
  if (block_bytes > BLOCK_BYTES_MAX) return 0;
  const u32 = views.u32;
  const size_class = sizeClassOf(block_bytes);
  const class_bytes = sizeClassBytes(size_class);
  const head_at = H_FREE_HEADS + size_class;
  const head = u32[head_at]!;
  const bump = u32[H_BUMP_UNITS]!;
  if (head !== 0) {
    if (head >= HEADER_UNITS && head < bump) {
      const next = u32[head]!;
      // A bad link (only possible after memory corruption) drops the rest of the list.
      u32[head_at] = next >= HEADER_UNITS && next < bump ? next : 0; // publish pop
      views.f64[F_BYTES_FREE_LISTED] -= class_bytes;
      views.f64[F_BYTES_ALLOCATED] += class_bytes;
      return head;
    }
    u32[head_at] = 0;
  }
  const class_units = class_bytes / 4;
  if (bump + class_units > views.units_total) return 0;
  u32[H_BUMP_UNITS] = bump + class_units; // publish
  views.f64[F_BYTES_ALLOCATED] += class_bytes;
  return bump;
}

/** Like allocate, but the block is all zero bytes (free-list blocks are cleared). */
export function allocateZeroed(views: TableViews, block_bytes: number): number {
  const bump = views.u32[H_BUMP_UNITS]!;
  const ref = allocate(views, block_bytes);
  if (ref !== 0 && ref < bump) {
    views.u32.fill(0, ref, ref + sizeClassBytes(sizeClassOf(block_bytes)) / 4);
  }
  return ref;
}

/** Returns a block of `block_bytes` (as passed to allocate) to its free list. */
export function free(views: TableViews, ref: number, block_bytes: number): void {
  const u32 = views.u32;
  const size_class = sizeClassOf(block_bytes);
  const class_bytes = sizeClassBytes(size_class);
  const head_at = H_FREE_HEADS + size_class;
  u32[ref] = u32[head_at]!;
  u32[head_at] = ref; // publish push
  views.f64[F_BYTES_ALLOCATED] -= class_bytes;
  views.f64[F_BYTES_FREE_LISTED] += class_bytes;
}

/**
 * Walks every free list, cutting any list at a link that points outside the
 * arena or loops. Returns the free-listed bytes. Work is bounded by the arena
 * size in units. Used by recover().
 */
export function sumFreeLists(views: TableViews): number {
  const u32 = views.u32;
  const bump = u32[H_BUMP_UNITS]!;
  let bytes_free_listed = 0;
  for (let size_class = 0; size_class < SIZE_CLASS_COUNT; size_class++) {
    const class_bytes = sizeClassBytes(size_class);
    const blocks_max = Math.floor((bump - HEADER_UNITS) / (class_bytes / 4));
    let link_at = H_FREE_HEADS + size_class;
    let blocks = 0;
    for (;;) {
      const ref = u32[link_at]!;
      if (ref === 0) break;
      if (ref < HEADER_UNITS || ref + class_bytes / 4 > bump || blocks >= blocks_max) {
        u32[link_at] = 0; // cut: the rest is leaked, not reused
        break;
      }
      blocks += 1;
      bytes_free_listed += class_bytes;
      link_at = ref;
    }
  }
  return bytes_free_listed;
}

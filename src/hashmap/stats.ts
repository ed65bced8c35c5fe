// Snapshot of a table's memory accounting, read from the header.
//
// Names carry their unit. Byte relations (exact in normal operation, and again
// after recover() following a crash):
//   bytes_reserved = bytes_header + bytes_used + bytes_free_listed + bytes_leaked
//   bytes_used     = class sizes of all entry blocks + slot-array blocks

import {
  D_INDEX_SLOTS, D_OLD_REF, D_OLD_SLOTS, F_BYTES_ALLOCATED, F_BYTES_FREE_LISTED, F_PAYLOAD_BYTES, H_BUMP_UNITS,
  H_EXPIRING_KEYS, H_GROWS, H_INDEX_TOMBSTONES, H_INDEX_USED_SLOTS, H_KEYS, H_MIGRATE_CURSOR, H_REBUILDS, H_SHRINKS, HEADER_BYTES,
} from './layout.js';
import { descriptorAt } from './migration.js';
import type { TableViews } from './views.js';

export interface TableStats {
  /** Live keys. */
  keys: number;
  /** Live keys that have an expiry (expired or not). */
  expiring_keys: number;
  /** Sum of key and value lengths of live keys. */
  payload_bytes: number;
  /** Bytes of live blocks (entries and slot arrays), counted at their size class. */
  bytes_used: number;
  /** Bytes of freed blocks waiting on a size-class free list. */
  bytes_free_listed: number;
  /** Bytes of blocks lost to a crash between allocation and publication (0 normally). */
  bytes_leaked: number;
  /** Fixed header at the start of the buffer. */
  bytes_header: number;
  /** Bump high-water mark: bytes ever handed out, header included. */
  bytes_reserved: number;
  /** Size of the SharedArrayBuffer. */
  bytes_capacity: number;
  /** Slots of the primary slot array. */
  index_slots: number;
  /** Non-empty (live + tombstone) slots of the primary slot array. */
  index_slots_used: number;
  /** Tombstones in the primary slot array. */
  index_tombstones: number;
  /** True while an old slot array is being migrated. */
  migrating: boolean;
  /** Slots of the old slot array (0 when not migrating). */
  migration_slots: number;
  /** Old slots already visited (0 when not migrating). */
  migration_cursor: number;
  /** Rebuilds ever started, by kind. */
  index_grows: number;
  index_rebuilds: number;
  index_shrinks: number;
}

export function readStats(views: TableViews): TableStats {
  const u32 = views.u32;
  const f64 = views.f64;
  const d = descriptorAt(u32);
  const migrating = u32[d + D_OLD_REF] !== 0;
  const bytes_reserved = u32[H_BUMP_UNITS]! * 4;
  const bytes_used = f64[F_BYTES_ALLOCATED]!;
  const bytes_free_listed = f64[F_BYTES_FREE_LISTED]!;
  return {
    keys: u32[H_KEYS]!,
    expiring_keys: u32[H_EXPIRING_KEYS]!,
    payload_bytes: f64[F_PAYLOAD_BYTES]!,
    bytes_used,
    bytes_free_listed,
    bytes_leaked: bytes_reserved - HEADER_BYTES - bytes_used - bytes_free_listed,
    bytes_header: HEADER_BYTES,
    bytes_reserved,
    bytes_capacity: views.u8.length,
    index_slots: u32[d + D_INDEX_SLOTS]!,
    index_slots_used: u32[H_INDEX_USED_SLOTS]!,
    index_tombstones: u32[H_INDEX_TOMBSTONES]!,
    migrating,
    migration_slots: migrating ? u32[d + D_OLD_SLOTS]! : 0,
    migration_cursor: migrating ? u32[H_MIGRATE_CURSOR]! : 0,
    index_grows: u32[H_GROWS]!,
    index_rebuilds: u32[H_REBUILDS]!,
    index_shrinks: u32[H_SHRINKS]!,
  };
}

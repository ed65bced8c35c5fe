// Public surface of the SharedArrayBuffer hash table (see README.md).

export { createTableMemory, formatTableMemory } from './format.js';
export {
  HashTable, PREFETCH_OPS_MAX, PUT_OK, PUT_OUT_OF_MEMORY, PUT_KEY_TOO_LARGE, PUT_VALUE_TOO_LARGE, PUT_BAD_EXPIRY, PUT_NOT_FOUND, EXPIRY_MS_MAX,
  type PutResult,
} from './table.js';
export type { TableStats } from './stats.js';
export { SCAN_END } from './scan.js';
export { HashTableError, type HashTableErrorCode } from './errors.js';
export { blockBytesFor, sizeClassBytes, sizeClassOf } from './allocator.js';
export {
  ENTRY_HEADER_BYTES, HEADER_BYTES, INDEX_SLOTS_MIN, KEY_BYTES_MAX, SLOT_BYTES, TABLE_BYTES_MAX, TABLE_BYTES_MIN,
  VALUE_BYTES_MAX,
} from './layout.js';

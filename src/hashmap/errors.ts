// Errors of the hash table, each with a stable `code` callers can branch on.
//
// Only attach/format problems throw. Table operations report failure through
// return values (PUT_OUT_OF_MEMORY, ...) and never throw on full or odd memory.

export type HashTableErrorCode =
  | 'HASHMAP_ERR_BAD_CAPACITY'
  | 'HASHMAP_ERR_NOT_SHARED'
  | 'HASHMAP_ERR_NOT_FORMATTED'
  | 'HASHMAP_ERR_LAYOUT_VERSION'
  | 'HASHMAP_ERR_CORRUPT'
  | 'HASHMAP_ERR_INVARIANT';

export class HashTableError extends Error {
  readonly code: HashTableErrorCode;

  constructor(code: HashTableErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'HashTableError';
    this.code = code;
  }
}

/** Invariant check: throws HASHMAP_ERR_INVARIANT when `condition` is false. */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new HashTableError('HASHMAP_ERR_INVARIANT', message);
}

/**
 * Errors of the persistence layer. Each carries a stable `code` so the CLI and tests can tell
 * "the data directory is damaged" from "this data directory belongs to another setup"
 * without parsing text; messages name the file and, for damage, the byte offset.
 */

export const PersistenceErrorCode = {
  /** A record in the middle of a file fails its checksum; start with --repair to drop it. */
  CORRUPT: 'PIKV_ERR_DATA_CORRUPT',
  /** The manifest or a file header says another format version, worker count or partition. */
  MISMATCH: 'PIKV_ERR_DATA_MISMATCH',
  /** Replaying the data does not fit in --max-memory. */
  OUT_OF_MEMORY: 'PIKV_ERR_DATA_OUT_OF_MEMORY',
  /** The directory cannot be created, read or written. */
  IO: 'PIKV_ERR_DATA_IO',
} as const;
export type PersistenceErrorCodeName = (typeof PersistenceErrorCode)[keyof typeof PersistenceErrorCode];

export class PersistenceError extends Error {
  readonly code: PersistenceErrorCodeName;
  constructor(code: PersistenceErrorCodeName, message: string) {
    super(message);
    this.name = 'PersistenceError';
    this.code = code;
  }
}

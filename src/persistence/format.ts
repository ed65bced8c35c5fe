/**
 * On-disk format, version 4 (reads 1 to 3): every offset and name of a data directory is here.
 *
 * A data directory holds MANIFEST (JSON: format version and worker count) and, per partition
 * p of a node with W workers, files named by generation g (zero-padded):
 *   w{W}-p{p}-g{g}.log       append-only log of the writes since snapshot g began
 *   w{W}-p{p}-g{g}.snap      snapshot, complete (renamed into place only once fsynced)
 *   w{W}-p{p}-g{g}.snap.tmp  snapshot being written; never read, removed on start
 * State of a partition = newest snapshot s (none: empty), then every log with g >= s in order.
 *
 * Every file starts with a 32-byte header, then records. All integers little-endian.
 *   file header:  [0] 8 B magic "PIKVLOG\0" / "PIKVSNP\0"  [8] u32 format version
 *                 [12] u32 workers  [16] u32 partition  [20] u32 generation  [24] u32 0
 *                 [28] u32 CRC32C of bytes 0..28
 *   record:       [0] u32 payload bytes  [4] u8 type  [5] u8 0  [6] u16 0  [8] u32 count
 *                 [12] u32 CRC32C of header bytes 0..12 then the payload  [16] payload
 *   BATCH payload: `count` ops, each [0] u8 op (2 PUT, 3 DELETE, 12 EXPIRE, 13 PERSIST)
 *                 [1] u8 flags (OPF_*; 0 in version 1; codec bits from version 3) [2] u16 key bytes [4] u32 value bytes
 *                 [8] u32 murmur3 hash of the key [12] (if OPF_HAS_EXPIRY) u32 expiry ms low,
 *                 u32 high [..] key [..] value
 *   ABORT payload: `count` u32 op indices of the BATCH record right before it whose PUT (or
 *                 EXPIRE/PERSIST) failed with OUT_OF_MEMORY after being logged: replay skips them.
 *   BATCH_DEFLATE payload (version 4, snapshots only): [0] u32 bytes of the BATCH payload it
 *                 holds, then that payload deflated (zlib format, RFC 1950: its Adler-32 is checked
 *                 too); `count` as the BATCH's. Read exactly as that BATCH.
 *   SNAPSHOT_END:  no payload; `count` = entries in the snapshot. Last record of a snapshot.
 * One BATCH record is one request packet (group commit): one write, one checksum.
 */

/**
 * Version written into new file headers. Version 2 gave BATCH ops a flags byte (below) and the
 * EXPIRE and PERSIST ops; a version-1 file has that byte zero everywhere, so it reads as
 * version 2 with no metadata. Version 3 puts a PUT's value codec id in flag bits 2..4
 * (OPF_VALUE_CODEC_*); those bits are zero in versions 1 and 2, which read as raw values.
 * Version 4 adds the BATCH_DEFLATE record, which compaction writes into snapshots. All four are
 * read, nothing needs migrating; a version-3 node refuses version-4 files (no downgrade).
 */
export const FORMAT_VERSION = 4;
/** Oldest file format version still read. */
export const FORMAT_VERSION_OLDEST = 1;
export const MANIFEST_NAME = 'MANIFEST';

export const FILE_HEADER_BYTES = 32;
export const FH_MAGIC = 0;
export const FH_MAGIC_BYTES = 8;
export const FH_VERSION = 8;
export const FH_WORKERS = 12;
export const FH_PARTITION = 16;
export const FH_GENERATION = 20;
export const FH_RESERVED = 24;
export const FH_CRC = 28;
export const LOG_MAGIC = 'PIKVLOG\0';
export const SNAPSHOT_MAGIC = 'PIKVSNP\0';

export const RECORD_HEADER_BYTES = 16;
export const R_PAYLOAD_BYTES = 0;
export const R_TYPE = 4;
export const R_RESERVED = 5; // 3 bytes, zero
export const R_COUNT = 8;
export const R_CRC = 12;
export const RECORD_BATCH = 1;
export const RECORD_ABORT = 2;
export const RECORD_SNAPSHOT_END = 3;
export const RECORD_BATCH_DEFLATE = 4;
/** BATCH_DEFLATE: the u32 raw length before the deflated bytes. */
export const DEFLATE_RAW_BYTES_FIELD = 4;

export const OP_HEADER_BYTES = 12;
export const O_OP = 0;
/** Op flags (version 2; zero in version 1): OPF_*. */
export const O_FLAGS = 1;
export const O_KEY_BYTES = 2;
export const O_VALUE_BYTES = 4;
export const O_HASH = 8;
/** Op codes in BATCH records: the protocol's own (src/protocol/constants.ts). */
export const OP_PUT = 2;
export const OP_DELETE = 3;
/** Sets the key's expiry (OPF_HAS_EXPIRY always set); a key that is absent stays absent. */
export const OP_EXPIRE = 12;
/** Clears the key's expiry. */
export const OP_PERSIST = 13;
/** Op flag: 8 bytes follow the op header, before the key: the absolute expiry in ms since the epoch (u32 low, u32 high). */
export const OPF_HAS_EXPIRY = 1;
/** Op flag on a PUT: keep the key's current expiry (Redis KEEPTTL); applied against the state replay has reached. */
export const OPF_KEEP_EXPIRY = 2;
export const OP_EXPIRY_BYTES = 8;
/** Op flag bits 2..4 on a PUT (version 3): the value's codec id (src/protocol/value-codec.ts; 0 raw). */
export const OPF_VALUE_CODEC_SHIFT = 2;
export const OPF_VALUE_CODEC_MAX = 7;
/** Flags this code reads; anything else makes the op unreadable (a newer format). */
export const OPF_KNOWN = OPF_HAS_EXPIRY | OPF_KEEP_EXPIRY | (OPF_VALUE_CODEC_MAX << OPF_VALUE_CODEC_SHIFT);

/** Op flags for a PUT's value codec id. */
export function valueCodecFlags(value_codec: number): number {
  return (value_codec & OPF_VALUE_CODEC_MAX) << OPF_VALUE_CODEC_SHIFT;
}

/** Largest record payload accepted when reading: a packet of the largest value plus headroom. */
export const RECORD_PAYLOAD_BYTES_MAX = 0x7fff_0000;

export type FileKind = 'log' | 'snap' | 'snap.tmp';

export interface FileName {
  workers: number;
  partition: number;
  generation: number;
  kind: FileKind;
}

export function fileName(workers: number, partition: number, generation: number, kind: FileKind): string {
  return `w${workers}-p${partition}-g${String(generation).padStart(8, '0')}.${kind}`;
}

const FILE_NAME_PATTERN = /^w(\d+)-p(\d+)-g(\d+)\.(log|snap|snap\.tmp)$/;

/** Parses a data file's name, or null for anything else in the directory. */
export function parseFileName(name: string): FileName | null {
  const match = FILE_NAME_PATTERN.exec(name);
  if (match === null) return null;
  return { workers: Number(match[1]), partition: Number(match[2]), generation: Number(match[3]), kind: match[4] as FileKind };
}

/** Little-endian u32 helpers on plain byte arrays (no DataView per call). */
export function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = (value >>> 24) & 0xff;
}

/**
 * The bytes of an Op.SCAN request (the op's key) and of its answer (the op's value), shared by
 * the partition worker, the node that answers a peer, and the node that asks
 * (docs/PROTOCOL.md, "SCAN").
 *
 * Request, 20 bytes little-endian: u32 partition, u32 count (entries to aim for), f64 cursor
 * (a position in the partition's 32-bit tag space, 0 to start; src/hashmap/scan.ts), u32 flags.
 *
 * Answer: f64 next cursor (SCAN_END = 2^32 when the partition is done), u32 partitions (how many
 * the answering node has), u32 entries, then per entry: u32 key hash, and unless HASHES_ONLY,
 * u32 key length and the key bytes. With COUNT: no entries; the count is in `entries`.
 */

export const SCAN_REQUEST_BYTES = 20;
export const SCAN_ANSWER_HEADER_BYTES = 16;
/** The end of one partition's tag space (hashmap/scan.ts SCAN_END). */
export const SCAN_TAG_END = 0x1_0000_0000;
/** Entries one step aims for at most (a COUNT beyond it is lowered to it). */
export const SCAN_COUNT_MAX = 10_000;

export const ScanFlag = {
  /** Only keys this node is the primary of (every key once in a cluster). */
  PRIMARY_ONLY: 1,
  /** Hashes without key bytes. */
  HASHES_ONLY: 2,
  /** The whole node: no entries, `entries` is how many keys it holds (PRIMARY_ONLY applies). */
  COUNT: 4,
} as const;

export interface ScanRequest {
  partition: number;
  count: number;
  cursor: number;
  flags: number;
}

export function encodeScanRequest(request: ScanRequest): Uint8Array {
  const bytes = new Uint8Array(SCAN_REQUEST_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request.partition, true);
  view.setUint32(4, request.count, true);
  view.setFloat64(8, request.cursor, true);
  view.setUint32(16, request.flags, true);
  return bytes;
}

/** Null when the bytes are not a valid request. */
export function decodeScanRequest(bytes: Uint8Array, offset = 0, length = bytes.length - offset): ScanRequest | null {
  if (length !== SCAN_REQUEST_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, SCAN_REQUEST_BYTES);
  const request = { partition: view.getUint32(0, true), count: view.getUint32(4, true), cursor: view.getFloat64(8, true), flags: view.getUint32(16, true) };
  if (!Number.isInteger(request.cursor) || request.cursor < 0 || request.cursor > SCAN_TAG_END || request.count < 1) return null;
  request.count = Math.min(request.count, SCAN_COUNT_MAX);
  return request;
}

export interface ScanAnswer {
  next_cursor: number;
  partitions: number;
  /** With COUNT: the count; else the entries' length. */
  entries: number;
  hashes: number[];
  /** Empty with HASHES_ONLY or COUNT. */
  keys: Uint8Array[];
}

export function encodeScanAnswer(answer: ScanAnswer): Uint8Array {
  let bytes = SCAN_ANSWER_HEADER_BYTES + 4 * answer.hashes.length;
  for (const key of answer.keys) bytes += 4 + key.length;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  view.setFloat64(0, answer.next_cursor, true);
  view.setUint32(8, answer.partitions, true);
  view.setUint32(12, answer.entries, true);
  let offset = SCAN_ANSWER_HEADER_BYTES;
  for (let i = 0; i < answer.hashes.length; i++) {
    view.setUint32(offset, answer.hashes[i]!, true);
    offset += 4;
    const key = answer.keys[i];
    if (key === undefined) continue;
    view.setUint32(offset, key.length, true);
    out.set(key, offset + 4);
    offset += 4 + key.length;
  }
  return out;
}

/** Throws a RangeError when the bytes do not hold what they say. `flags`: those of the request. */
export function decodeScanAnswer(bytes: Uint8Array, flags: number): ScanAnswer {
  if (bytes.length < SCAN_ANSWER_HEADER_BYTES) throw new RangeError(`a SCAN answer has at least ${SCAN_ANSWER_HEADER_BYTES} bytes, not ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const answer: ScanAnswer = { next_cursor: view.getFloat64(0, true), partitions: view.getUint32(8, true), entries: view.getUint32(12, true), hashes: [], keys: [] };
  if ((flags & ScanFlag.COUNT) !== 0) return answer;
  let offset = SCAN_ANSWER_HEADER_BYTES;
  for (let i = 0; i < answer.entries; i++) {
    if (offset + 4 > bytes.length) throw new RangeError('a SCAN answer ends inside an entry');
    answer.hashes.push(view.getUint32(offset, true));
    offset += 4;
    if ((flags & ScanFlag.HASHES_ONLY) !== 0) continue;
    if (offset + 4 > bytes.length) throw new RangeError('a SCAN answer ends inside an entry');
    const length = view.getUint32(offset, true);
    if (offset + 4 + length > bytes.length) throw new RangeError('a SCAN answer ends inside a key');
    answer.keys.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return answer;
}

/**
 * Writes a response frame (docs/PROTOCOL.md, "Response") straight into one Buffer.
 *
 * The shape is fixed, so the CBOR is written by hand: a 5-entry map with text keys (6 with
 * the value codec column `vc`, for requests that announced codecs), the
 * status bytes as a byte string, the value lengths as an RFC 8746 uint32-LE typed array
 * (tag 70), and the values as one byte string whose bytes the caller copies in place. This
 * saves cbor-x's general encoder and, more importantly, a second copy of every value: the
 * values go from the workers' reply packets into the frame directly.
 * test/protocol.test.ts checks the bytes against cbor-x's own encoding.
 */
import { PROTOCOL_VERSION } from './constants.js';

const MAJOR_UNSIGNED = 0x00;
const MAJOR_BYTES = 0x40;
const MAP_OF_5 = 0xa5;
const MAP_OF_6 = 0xa6;
const TAG_UINT32_LE_ARRAY = 70;
/** "v", "id", "st", "vl", "vals" as CBOR text strings. */
const KEY_V = Buffer.from([0x61, 0x76]);
const KEY_ID = Buffer.from([0x62, 0x69, 0x64]);
const KEY_ST = Buffer.from([0x62, 0x73, 0x74]);
const KEY_VL = Buffer.from([0x62, 0x76, 0x6c]);
const KEY_VALS = Buffer.from([0x64, 0x76, 0x61, 0x6c, 0x73]);
/** "vc": the optional value codec column, only for requests that announced codecs (`ac`). */
const KEY_VC = Buffer.from([0x62, 0x76, 0x63]);

function headBytes(value: number): number {
  if (value < 24) return 1;
  if (value < 0x100) return 2;
  if (value < 0x10000) return 3;
  if (value < 0x100000000) return 5;
  return 9;
}

function writeHead(target: Buffer, offset: number, major: number, value: number): number {
  if (value < 24) {
    target[offset] = major | value;
    return offset + 1;
  }
  if (value < 0x100) {
    target[offset] = major | 24;
    target[offset + 1] = value;
    return offset + 2;
  }
  if (value < 0x10000) {
    target[offset] = major | 25;
    target.writeUInt16BE(value, offset + 1);
    return offset + 3;
  }
  if (value < 0x100000000) {
    target[offset] = major | 26;
    target.writeUInt32BE(value, offset + 1);
    return offset + 5;
  }
  target[offset] = major | 27;
  target.writeBigUInt64BE(BigInt(value), offset + 1);
  return offset + 9;
}

/** Bytes of a whole response frame for `op_count` ops carrying `values_bytes` of values (and a `vc` column if `with_codec`). */
export function responseFrameBytes(id: number, op_count: number, values_bytes: number, with_codec = false): number {
  return (
    (with_codec ? KEY_VC.length + headBytes(op_count) + op_count : 0) +
    1 + KEY_V.length + 1 +
    KEY_ID.length + headBytes(id) +
    KEY_ST.length + headBytes(op_count) + op_count +
    KEY_VL.length + 2 + headBytes(4 * op_count) + 4 * op_count +
    KEY_VALS.length + headBytes(values_bytes) + values_bytes
  );
}

/**
 * Writes everything but the values' bytes into `target` (sized by responseFrameBytes) and
 * returns the offset at which the caller must copy the values, in op order.
 */
export function writeResponseHead(target: Buffer, id: number, status: Uint8Array, value_lengths: Uint32Array, values_bytes: number, value_codec: Uint8Array | null = null): number {
  const op_count = status.length;
  let offset = 0;
  target[offset++] = value_codec === null ? MAP_OF_5 : MAP_OF_6;
  offset += KEY_V.copy(target, offset);
  target[offset++] = MAJOR_UNSIGNED | PROTOCOL_VERSION;
  offset += KEY_ID.copy(target, offset);
  offset = writeHead(target, offset, MAJOR_UNSIGNED, id);
  offset += KEY_ST.copy(target, offset);
  offset = writeHead(target, offset, MAJOR_BYTES, op_count);
  target.set(status, offset);
  offset += op_count;
  offset += KEY_VL.copy(target, offset);
  target[offset++] = 0xd8; // tag, one-byte number follows
  target[offset++] = TAG_UINT32_LE_ARRAY;
  offset = writeHead(target, offset, MAJOR_BYTES, 4 * op_count);
  for (let i = 0; i < op_count; i++, offset += 4) target.writeUInt32LE(value_lengths[i]!, offset);
  if (value_codec !== null) {
    if (value_codec.length !== op_count) throw new Error(`response 'vc' has ${value_codec.length} entries for ${op_count} ops`);
    offset += KEY_VC.copy(target, offset);
    offset = writeHead(target, offset, MAJOR_BYTES, op_count);
    target.set(value_codec, offset);
    offset += op_count;
  }
  offset += KEY_VALS.copy(target, offset);
  return writeHead(target, offset, MAJOR_BYTES, values_bytes);
}

/**
 * Ops a PikvClient has queued (single-op calls and batch()) until its next flush, as columns, and
 * how a run of them becomes one request frame's columns. One typed queue instead of seven
 * parallel arrays passed around positionally.
 */
import { EXPIRY_KEEP } from '../protocol/constants.js';
import type { RequestBatch } from '../protocol/codec.js';
import type { Bytes, OpSink } from './ops.js';

/** Queued-op markers for expiries sent as absolute `xp` values (a ttl column entry). */
export const EXPIRY_KEEP_TTL = -1;
export const EXPIRY_NOW = -2;

export function byteLength(bytes: Bytes): number {
  return typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
}

function writeBytes(bytes: Bytes, target: Buffer, offset: number): number {
  if (typeof bytes === 'string') return target.write(bytes, offset);
  target.set(bytes, offset);
  return bytes.length;
}

export class OpQueue {
  readonly ops: number[] = [];
  readonly keys: Bytes[] = [];
  readonly values: (Bytes | null)[] = [];
  /** Per op: 0 no expiry, > 0 a time to live in ms (wire `tl`), EXPIRY_KEEP_TTL or EXPIRY_NOW (wire `xp`). */
  readonly ttls: number[] = [];
  /** Per op: the value codec id of a PUT's (already encoded) value; 0 raw. */
  readonly codecs: number[] = [];
  /** Who gets each op's result, and at which position of its batch. */
  readonly sinks: OpSink[] = [];
  readonly positions: number[] = [];

  get length(): number {
    return this.ops.length;
  }

  push(op: number, key: Bytes, value: Bytes | null, codec: number, sink: OpSink, position: number, ttl: number): void {
    this.ops.push(op);
    this.ttls.push(ttl);
    this.keys.push(key);
    this.values.push(value);
    this.codecs.push(codec);
    this.sinks.push(sink);
    this.positions.push(position);
  }
}

/**
 * The request for ops [start, end) of `queued`, with id `id` and `accept_codecs`. Keys and values
 * are copied into one buffer each; the codec and expiry columns go only into frames that need them.
 */
export function requestOf(queued: OpQueue, start: number, end: number, id: number, accept_codecs: number): RequestBatch {
  const { ops, keys, values, ttls, codecs } = queued;
  const count = end - start;
  const op = new Uint8Array(count);
  const key_lengths = new Uint32Array(count);
  const value_lengths = new Uint32Array(count);
  let key_bytes = 0;
  let value_bytes = 0;
  for (let i = 0; i < count; i++) {
    op[i] = ops[start + i]!;
    const key_length = byteLength(keys[start + i]!);
    key_lengths[i] = key_length;
    key_bytes += key_length;
    const value = values[start + i]!;
    if (value !== null) {
      const value_length = byteLength(value);
      value_lengths[i] = value_length;
      value_bytes += value_length;
    }
  }
  const key_buffer = Buffer.allocUnsafe(key_bytes);
  const value_buffer = Buffer.allocUnsafe(value_bytes);
  let key_offset = 0;
  let value_offset = 0;
  for (let i = 0; i < count; i++) {
    key_offset += writeBytes(keys[start + i]!, key_buffer, key_offset);
    const value = values[start + i]!;
    if (value !== null) value_offset += writeBytes(value, value_buffer, value_offset);
  }
  const request: RequestBatch = { id, op, key_lengths, value_lengths, keys: key_buffer, values: value_buffer, accept_codecs };
  for (let i = start; i < end; i++) {
    if (codecs[i] === 0) continue;
    request.value_codec = Uint8Array.from(codecs.slice(start, end));
    break;
  }
  for (let i = start; i < end; i++) {
    if (ttls[i] === 0) continue;
    const tl = new Float64Array(count);
    const xp = new Float64Array(count);
    let relative = false;
    let absolute = false;
    for (let j = 0; j < count; j++) {
      const ttl = ttls[start + j]!;
      if (ttl > 0) {
        tl[j] = ttl;
        relative = true;
      } else if (ttl !== 0) {
        xp[j] = ttl === EXPIRY_KEEP_TTL ? EXPIRY_KEEP : 1; // 1 ms after the epoch: already past
        absolute = true;
      }
    }
    if (relative) request.ttl = tl;
    if (absolute) request.expiry = xp;
    break;
  }
  return request;
}

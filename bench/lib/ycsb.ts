/**
 * Op streams for the workloads, in one neutral form (op codes plus key indices) that the
 * encoders below turn into pikv frames, client-library calls or RESP chunks, so every system
 * gets exactly the same ops. YCSB core workloads: A = 50% read / 50% update, B = 95/5,
 * C = read only; an update writes the whole value.
 */
import { Op, WireCodec, type BatchOp, type ColumnBatch } from '../../src/index.js';
import { makeKey } from './keys.js';
import { encodeCommand } from './redis-resp.js';
import { prng } from './keys.js';
import type { KeyChooser } from './zipf.js';

export const YCSB_READ_SHARE: Readonly<Record<string, number>> = { A: 0.5, B: 0.95, C: 1 };

export interface OpBatch {
  /** Op.GET or Op.PUT per op. */
  ops: Uint8Array;
  key_indices: Uint32Array;
}

export interface StreamSpec {
  batch_ops: number;
  batch_count: number;
  /** Fraction of GETs; the rest are PUTs. */
  read_share: number;
  choose: KeyChooser;
  seed: number;
}

export function makeBatches(spec: StreamSpec): OpBatch[] {
  const random = prng(spec.seed ^ 0x5bd1e995);
  const batches: OpBatch[] = [];
  for (let b = 0; b < spec.batch_count; b++) {
    const ops = new Uint8Array(spec.batch_ops);
    const key_indices = new Uint32Array(spec.batch_ops);
    for (let i = 0; i < spec.batch_ops; i++) {
      ops[i] = spec.read_share >= 1 || random() < spec.read_share ? Op.GET : Op.PUT;
      key_indices[i] = spec.choose();
    }
    batches.push({ ops, key_indices });
  }
  return batches;
}

/** Enough batches to touch about `ops_target` ops, bounded by `bytes_max` of payload. */
export function batchCountFor(batch_ops: number, ops_target: number, op_bytes: number, bytes_max: number): number {
  const by_ops = Math.ceil(ops_target / batch_ops);
  const by_bytes = Math.floor(bytes_max / Math.max(1, batch_ops * op_bytes));
  return Math.max(1, Math.min(by_ops, by_bytes));
}

export interface KeySpec {
  key_bytes: number;
  /** Key prefix other than the default "key:", e.g. for the value sweep's own key space. */
  prefix?: string;
}

export function keyOf(index: number, spec: KeySpec): Buffer {
  const key = makeKey(index, spec.key_bytes);
  if (spec.prefix !== undefined) key.write(spec.prefix, 0, 'latin1');
  return key;
}

export function toColumnBatch(batch: OpBatch, keys: KeySpec, value: Buffer): ColumnBatch {
  const count = batch.ops.length;
  let puts = 0;
  for (let i = 0; i < count; i++) if (batch.ops[i] === Op.PUT) puts++;
  const key_buffer = Buffer.allocUnsafe(count * keys.key_bytes);
  const values = Buffer.allocUnsafe(puts * value.length);
  const value_lengths = new Uint32Array(count);
  let value_offset = 0;
  for (let i = 0; i < count; i++) {
    keyOf(batch.key_indices[i]!, keys).copy(key_buffer, i * keys.key_bytes);
    if (batch.ops[i] === Op.PUT) {
      value.copy(values, value_offset);
      value_offset += value.length;
      value_lengths[i] = value.length;
    }
  }
  return { op: batch.ops, key_lengths: new Uint32Array(count).fill(keys.key_bytes), value_lengths, keys: key_buffer, values };
}

export function toPikvFrame(codec: WireCodec, batch: OpBatch, keys: KeySpec, value: Buffer, id: number): Buffer {
  return codec.encodeRequest({ id, ...toColumnBatch(batch, keys, value) });
}

export function toBatchOps(batch: OpBatch, keys: KeySpec, value: Buffer): BatchOp[] {
  const list: BatchOp[] = [];
  for (let i = 0; i < batch.ops.length; i++) {
    const key = keyOf(batch.key_indices[i]!, keys);
    list.push(batch.ops[i] === Op.PUT ? { op: 'put', key, value } : { op: 'get', key });
  }
  return list;
}

/** A pipelined chunk: one GET or SET per op. */
export function toRespPipeline(batch: OpBatch, keys: KeySpec, value: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < batch.ops.length; i++) {
    const key = keyOf(batch.key_indices[i]!, keys);
    parts.push(batch.ops[i] === Op.PUT ? encodeCommand(['SET', key, value]) : encodeCommand(['GET', key]));
  }
  return Buffer.concat(parts);
}

/** One MGET (all GETs) or one MSET (all PUTs) per batch: the homogeneous-batch form. */
export function toRespMulti(batch: OpBatch, keys: KeySpec, value: Buffer): Buffer {
  const is_put = batch.ops[0] === Op.PUT;
  const parts: (string | Buffer)[] = [is_put ? 'MSET' : 'MGET'];
  for (let i = 0; i < batch.ops.length; i++) {
    if ((batch.ops[i] === Op.PUT) !== is_put) throw new Error('MGET/MSET need a homogeneous batch');
    parts.push(keyOf(batch.key_indices[i]!, keys));
    if (is_put) parts.push(value);
  }
  return encodeCommand(parts);
}

/**
 * Builds columnar batches (op codes, key and value lengths, concatenated keys and values)
 * without an object per op. One builder is reused batch after batch: batchColumns() encodes
 * the batch before it returns, so the builder may be reset and refilled right away.
 */
import { Op } from '../protocol/constants.js';
import type { ColumnBatch } from './client.js';
import type { Bytes } from './ops.js';

export class ColumnBuilder {
  private op: Uint8Array;
  private key_lengths: Uint32Array;
  private value_lengths: Uint32Array;
  private keys: Buffer;
  private values: Buffer;
  private key_bytes = 0;
  private value_bytes = 0;
  private op_count = 0;

  constructor(ops_max: number, bytes_initial = 1024 * 1024) {
    this.op = new Uint8Array(ops_max);
    this.key_lengths = new Uint32Array(ops_max);
    this.value_lengths = new Uint32Array(ops_max);
    this.keys = Buffer.allocUnsafe(bytes_initial);
    this.values = Buffer.allocUnsafe(bytes_initial);
  }

  get count(): number {
    return this.op_count;
  }

  get full(): boolean {
    return this.op_count === this.op.length;
  }

  put(key: Bytes, value: Bytes): void {
    this.add(Op.PUT, key, value);
  }

  get(key: Bytes): void {
    this.add(Op.GET, key, null);
  }

  delete(key: Bytes): void {
    this.add(Op.DELETE, key, null);
  }

  add(op: number, key: Bytes, value: Bytes | null): void {
    if (this.full) throw new RangeError(`ColumnBuilder holds at most ${this.op.length} ops`);
    const index = this.op_count++;
    this.op[index] = op;
    const key_length = this.append('keys', key);
    this.key_lengths[index] = key_length;
    this.key_bytes += key_length;
    const value_length = value === null ? 0 : this.append('values', value);
    this.value_lengths[index] = value_length;
    this.value_bytes += value_length;
  }

  /** Views of what was added; valid until the next add() or reset(). */
  build(): ColumnBatch {
    return {
      op: this.op.subarray(0, this.op_count),
      key_lengths: this.key_lengths.subarray(0, this.op_count),
      value_lengths: this.value_lengths.subarray(0, this.op_count),
      keys: this.keys.subarray(0, this.key_bytes),
      values: this.values.subarray(0, this.value_bytes),
    };
  }

  reset(): void {
    this.op_count = 0;
    this.key_bytes = 0;
    this.value_bytes = 0;
  }

  private append(column: 'keys' | 'values', bytes: Bytes): number {
    const used = column === 'keys' ? this.key_bytes : this.value_bytes;
    const length = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
    let target = this[column];
    if (used + length > target.length) {
      const grown = Buffer.allocUnsafe(Math.max(target.length * 2, used + length));
      target.copy(grown, 0, 0, used);
      this[column] = grown;
      target = grown;
    }
    if (typeof bytes === 'string') target.write(bytes, used);
    else target.set(bytes, used);
    return length;
  }
}

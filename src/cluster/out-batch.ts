/**
 * Ops on their way to one peer, collected during one event-loop turn and sent as one frame.
 *
 * Each op remembers the client request and op index it answers (or null for data-move ops
 * nobody waits for), so the peer's reply settles every op of every request by index, the
 * same way a partition's reply does (server/pending-request.ts). Keys and values are copied
 * in, so the client's frame may be dropped. Bounded: a batch holds at most OUT_BATCH_OPS_MAX
 * ops and about OUT_BATCH_BYTES_MAX bytes; the caller starts a new one when it is full.
 */
import type { ColumnBatch } from '../client/client.js';
import { Status } from '../protocol/constants.js';
import { OpRef } from '../engine/op-ref.js';
import type { PendingRequest } from '../engine/pending-request.js';

export const OUT_BATCH_OPS_MAX = 8192;

/** Something waiting for a replication stream to get this far (replicator.ts Commit). */
export interface StreamCommit {
  /** The destination applied it. */
  acked(): void;
  /** The stream was given up (its destination left every copy set); see Replicator.plan. */
  abandoned(): void;
}
export const OUT_BATCH_BYTES_MAX = 4 * 1024 * 1024;
const BYTES_INITIAL = 4096;

export class OutBatch {
  op_count = 0;
  readonly owners: (PendingRequest | null)[] = [];
  readonly indices: number[] = [];
  /** Times each op was already refused with STALE_RING and sent again (forwarder.ts). */
  readonly attempts: number[] = [];
  /**
   * Replication stream only (replicator.ts): the commits whose last write to this stream is in
   * this batch; each is told once when the destination has applied the batch and every one before it.
   */
  readonly commits: StreamCommit[] = [];
  /**
   * Replication stream only: the highest commit id with a write in this batch (0: none), sent as
   * `ci`. Set per write, not per commit: a packet's writes can span two batches, and a backup must
   * not drop the first batch's ops from its replay log while that commit is open (replay-log.ts).
   */
  commit_id_max = 0;
  private op = new Uint8Array(64);
  /** Absolute expiry per op (OpRef.expiry_ms); sent as `xp` only when some op has one. */
  private expiry = new Float64Array(64);
  private expiring_ops = 0;
  /** Value codec id per op (OpRef.value_codec), carried as is; sent as `vc` only when some op has one. */
  private value_codec = new Uint8Array(64);
  private encoded_ops = 0;
  private key_lengths = new Uint32Array(64);
  private value_lengths = new Uint32Array(64);
  private keys: Buffer = Buffer.allocUnsafe(BYTES_INITIAL);
  private values: Buffer = Buffer.allocUnsafe(BYTES_INITIAL);
  private key_bytes = 0;
  private value_bytes = 0;

  get full(): boolean {
    return this.op_count >= OUT_BATCH_OPS_MAX || this.key_bytes + this.value_bytes >= OUT_BATCH_BYTES_MAX;
  }

  get bytes(): number {
    return this.key_bytes + this.value_bytes;
  }

  /** Appends one op, copying its bytes (the OpRef and its frame may change or go after this). */
  add(ref: OpRef): void {
    const { op, keys, key_offset, key_length, values, value_offset, value_length } = ref;
    if (this.op_count === this.op.length) this.growColumns();
    const i = this.op_count++;
    this.op[i] = op;
    this.expiry[i] = ref.expiry_ms;
    if (ref.expiry_ms !== 0) this.expiring_ops++;
    this.value_codec[i] = ref.value_codec;
    if (ref.value_codec !== 0) this.encoded_ops++;
    this.key_lengths[i] = key_length;
    this.value_lengths[i] = value_length;
    this.keys = ensure(this.keys, this.key_bytes + key_length, this.key_bytes);
    this.keys.set(keys.subarray(key_offset, key_offset + key_length), this.key_bytes);
    this.key_bytes += key_length;
    if (value_length > 0) {
      this.values = ensure(this.values, this.value_bytes + value_length, this.value_bytes);
      this.values.set(values.subarray(value_offset, value_offset + value_length), this.value_bytes);
      this.value_bytes += value_length;
    }
    this.owners.push(ref.request);
    this.indices.push(ref.index);
    this.attempts.push(ref.attempt);
  }

  /**
   * Calls `visit` with each op in order, as one reused OpRef whose keys and values point into
   * this batch's columns (hash 0: callers that need it compute it).
   */
  eachOp(visit: (ref: OpRef) => void): void {
    const columns = this.columns();
    const ref = new OpRef();
    let key_offset = 0;
    let value_offset = 0;
    for (let i = 0; i < this.op_count; i++) {
      const key_length = columns.key_lengths[i]!;
      const value_length = columns.value_lengths[i]!;
      ref.set(this.owners[i]!, this.indices[i]!, columns.op[i]!, 0, columns.keys, key_offset, key_length, columns.values, value_offset, value_length, this.attempts[i]!);
      ref.expiry_ms = this.expiry[i]!;
      ref.value_codec = this.value_codec[i]!;
      visit(ref);
      key_offset += key_length;
      value_offset += value_length;
    }
  }

  columns(): ColumnBatch {
    const columns: ColumnBatch = {
      op: this.op.subarray(0, this.op_count),
      key_lengths: this.key_lengths.subarray(0, this.op_count),
      value_lengths: this.value_lengths.subarray(0, this.op_count),
      keys: this.keys.subarray(0, this.key_bytes),
      values: this.values.subarray(0, this.value_bytes),
    };
    if (this.expiring_ops > 0) columns.expiry = this.expiry.subarray(0, this.op_count);
    if (this.encoded_ops > 0) columns.value_codec = this.value_codec.subarray(0, this.op_count);
    return columns;
  }

  private growColumns(): void {
    const length = this.op.length * 2;
    const op = new Uint8Array(length);
    op.set(this.op);
    const expiry = new Float64Array(length);
    expiry.set(this.expiry);
    this.expiry = expiry;
    const value_codec = new Uint8Array(length);
    value_codec.set(this.value_codec);
    this.value_codec = value_codec;
    const key_lengths = new Uint32Array(length);
    key_lengths.set(this.key_lengths);
    const value_lengths = new Uint32Array(length);
    value_lengths.set(this.value_lengths);
    this.op = op;
    this.key_lengths = key_lengths;
    this.value_lengths = value_lengths;
  }
}

function ensure(buffer: Buffer, needed: number, used: number): Buffer {
  if (needed <= buffer.length) return buffer;
  const grown = Buffer.allocUnsafe(Math.max(needed, buffer.length * 2));
  buffer.copy(grown, 0, 0, used);
  return grown;
}

/**
 * Settles every waiting op of `batch` from a peer's reply, by index. Returns how many ops
 * nobody waits for (data-move ops) failed, so a stream can notice a failed transfer.
 */
export function settleBatch(batch: OutBatch, status: Uint8Array, value_lengths: Uint32Array, values: Uint8Array, held: Uint8Array | null = null, value_codec: Uint8Array | undefined = undefined): number {
  if (status.length !== batch.op_count) {
    failBatch(batch, Status.INTERNAL);
    return batch.op_count;
  }
  const source = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  let source_owner: PendingRequest | null = null;
  let source_index = 0;
  let offset = 0;
  let unowned_failures = 0;
  for (let i = 0; i < batch.op_count; i++) {
    const owner = batch.owners[i]!;
    const code = status[i]!;
    const length = value_lengths[i]!;
    if (held !== null && held[i] === 1) {
      // The caller settles this op later (it is being sent again).
    } else if (owner === null) {
      if (code !== Status.OK && code !== Status.NOT_FOUND) unowned_failures++;
    } else if (code === Status.OK && length > 0) {
      if (owner !== source_owner) {
        source_owner = owner;
        source_index = owner.addSource(source);
      }
      // As the owner stored it: the dispatcher of this node decodes it if its client did not ask for codecs.
      owner.settleValue(batch.indices[i]!, source_index, offset, length, value_codec?.[i] ?? 0);
    } else {
      owner.settle(batch.indices[i]!, code);
    }
    offset += length;
  }
  return unowned_failures;
}

/** Settles every waiting op of `batch` with one status (the peer is down, or did not answer). */
export function failBatch(batch: OutBatch, status: number): void {
  for (let i = 0; i < batch.op_count; i++) batch.owners[i]?.settle(batch.indices[i]!, status);
}

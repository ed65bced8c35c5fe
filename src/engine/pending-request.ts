/**
 * One client request between being read off a socket and being answered.
 *
 * Its ops are spread over partitions and settle in any order; results are kept by op index so
 * the response lists them in request order. Values stay where the workers put them (their
 * reply buffers) until the last op settles, then are copied once into the response.
 */
import { Status } from '../protocol/constants.js';

/** Values this short are copied with a loop: cheaper than a native call (see copy-bytes.ts). */
const COPY_LOOP_BYTES_MAX = 32;

export type RequestDone = (request: PendingRequest) => void;

/**
 * Who pays for the values a request collects: the connection it came in on counts them
 * against its send budget as they are found, before the response exists.
 */
export interface ResponseBudget {
  response_bytes_found: number;
}

export class PendingRequest {
  readonly id: number;
  readonly op_count: number;
  /** Bytes of the frame this request came in, counted against the node's in-flight budget. */
  readonly frame_bytes: number;
  readonly status: Uint8Array;
  readonly value_length: Uint32Array;
  private readonly source_index: Uint32Array;
  private readonly source_offset: Uint32Array;
  private readonly sources: Buffer[] = [];
  private ops_unsettled: number;
  /** Holds on the answer (replication, src/cluster/replicator.ts): it leaves only when every op settled and no hold is left. */
  private holds = 0;
  private readonly value_bytes_max: number;
  private readonly done: RequestDone;
  /**
   * Set when the client has gone: ops not yet handed to a worker are dropped
   * (Partition.flush), and ops that still settle are discarded, not answered.
   */
  cancelled = false;
  /** Value bytes found for this request so far; also added to budget as they are found. */
  value_bytes_found = 0;
  budget: ResponseBudget | null = null;
  /** GETs in this request, for the connection's estimate of what its answers will weigh. */
  gets = 0;
  /**
   * Set when the connection answered (or dropped) this request. Not the same as `settled`: a
   * request whose ops all settled can still wait, for its copies (a hold) or for a value to be
   * decoded for a plain reader, and until it is answered its connection must keep counting it.
   */
  answered = false;
  /**
   * Codec id of each result value as stored (protocol/value-codec.ts); null while every value
   * is raw, which is nearly always, so plain requests allocate nothing for it.
   */
  value_codec: Uint8Array | null = null;

  constructor(id: number, op_count: number, frame_bytes: number, value_bytes_max: number, done: RequestDone) {
    this.id = id;
    this.op_count = op_count;
    this.frame_bytes = frame_bytes;
    this.status = new Uint8Array(op_count);
    this.value_length = new Uint32Array(op_count);
    this.source_index = new Uint32Array(op_count);
    this.source_offset = new Uint32Array(op_count);
    this.ops_unsettled = op_count;
    this.value_bytes_max = value_bytes_max;
    this.done = done;
  }

  get settled(): boolean {
    return this.ops_unsettled === 0;
  }

  /** Registers a buffer that values will be copied from; returns its index for settleValue. */
  addSource(source: Buffer): number {
    if (this.cancelled) return 0;
    this.sources.push(source);
    return this.sources.length - 1;
  }

  settle(op_index: number, status: number): void {
    this.status[op_index] = status;
    this.ops_unsettled--;
    if (this.ops_unsettled < 0) throw new Error(`request ${this.id}: op ${op_index} settled after every op had settled`);
    if (this.ops_unsettled === 0 && this.holds === 0) this.done(this);
  }

  /**
   * Keeps the answer back until release(): a write settled here is not acknowledged before its
   * copies are (docs/REPLICATION.md, R1). Take the hold before the op settles.
   */
  hold(): void {
    this.holds++;
  }

  /** A hold keeps the answer back (replication); false once every hold was released. */
  get held(): boolean {
    return this.holds > 0;
  }

  release(): void {
    this.holds--;
    if (this.holds < 0) throw new Error(`request ${this.id}: released more holds than it took`);
    if (this.holds === 0 && this.ops_unsettled === 0) this.done(this);
  }

  /**
   * The node may no longer vouch for what it did (its lease fence ran out before the answer
   * left, docs/REPLICATION.md R2): every op that reports an outcome becomes `status`, whose
   * meaning is "may or may not have been applied". Refusals, and ops that are not data ops
   * (RING, status), stay as they are.
   */
  failOutcomes(status: number, is_data_op: (index: number) => boolean): void {
    for (let i = 0; i < this.op_count; i++) {
      const code = this.status[i];
      if (!is_data_op(i)) continue;
      if (code !== Status.OK && code !== Status.NOT_FOUND) continue;
      const length = this.value_length[i]!;
      this.value_bytes_found -= length;
      if (this.budget !== null) this.budget.response_bytes_found -= length;
      this.value_length[i] = 0;
      if (this.value_codec !== null) this.value_codec[i] = 0;
      this.status[i] = status;
    }
  }

  /** Replaces a settled op's result while the answer is held (a copy failed: the outcome is unknown). */
  override(op_index: number, status: number): void {
    if (this.holds === 0) throw new Error(`request ${this.id}: override of op ${op_index} without a hold`);
    const length = this.value_length[op_index]!;
    this.value_bytes_found -= length;
    if (this.budget !== null) this.budget.response_bytes_found -= length;
    this.value_length[op_index] = 0;
    if (this.value_codec !== null) this.value_codec[op_index] = 0;
    this.status[op_index] = status;
  }

  settleValue(op_index: number, source_index: number, offset: number, length: number, value_codec = 0): void {
    if (value_codec !== 0) (this.value_codec ??= new Uint8Array(this.op_count))[op_index] = value_codec;
    this.value_length[op_index] = length;
    this.value_bytes_found += length;
    if (this.budget !== null) this.budget.response_bytes_found += length;
    this.source_index[op_index] = source_index;
    this.source_offset[op_index] = offset;
    this.settle(op_index, Status.OK);
  }

  /** The value bytes op `op_index` settled with, as a view into its source (empty when none). */
  valueView(op_index: number): Uint8Array {
    const length = this.value_length[op_index]!;
    if (length === 0 || this.cancelled) return new Uint8Array(0);
    const offset = this.source_offset[op_index]!;
    return this.sources[this.source_index[op_index]!]!.subarray(offset, offset + length);
  }

  /**
   * After every op settled: op `op_index`'s value becomes `value` (decoded bytes, codec 0), or,
   * with `value` null, the op fails with `status` (a value that does not decode). Keeps the
   * budget's count of value bytes true.
   */
  replaceValue(op_index: number, value: Buffer | null, status: number = Status.OK): void {
    if (this.ops_unsettled !== 0) throw new Error(`request ${this.id}: replaceValue before every op settled`);
    const old_length = this.value_length[op_index]!;
    const new_length = value === null ? 0 : value.length;
    this.value_bytes_found += new_length - old_length;
    if (this.budget !== null) this.budget.response_bytes_found += new_length - old_length;
    this.value_length[op_index] = new_length;
    if (this.value_codec !== null) this.value_codec[op_index] = 0;
    if (value === null) {
      this.status[op_index] = status;
      return;
    }
    if (this.cancelled) return;
    this.sources.push(value);
    this.source_index[op_index] = this.sources.length - 1;
    this.source_offset[op_index] = 0;
  }

  /**
   * The client is gone: stop paying for this request. Its budget no longer counts it, its
   * queued ops are skipped, and its sources are released now rather than when the last op
   * settles (a worker may still hold some of them for a while).
   */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    if (this.budget !== null) this.budget.response_bytes_found -= this.value_bytes_found;
    this.budget = null;
    this.sources.length = 0;
  }

  /** Checks the invariant the dispatcher relies on: an empty request completes at once. */
  completeIfEmpty(): void {
    if (this.op_count === 0) this.done(this);
  }

  /**
   * Applies the response size limit and returns the total bytes of values to send. Values
   * are kept in op order while they fit; an op whose value would not fit becomes
   * RESPONSE_TOO_LARGE (later, smaller ones may still fit), so which ops fail does not
   * depend on which partition answered first. Call once, when settled.
   */
  limitValues(): number {
    let total = 0;
    for (let i = 0; i < this.op_count; i++) {
      const length = this.value_length[i]!;
      if (total + length <= this.value_bytes_max) {
        total += length;
      } else {
        this.value_length[i] = 0;
        this.status[i] = Status.RESPONSE_TOO_LARGE;
        if (this.value_codec !== null) this.value_codec[i] = 0;
      }
    }
    return total;
  }

  /**
   * Copies one op's value into target[offset..] and returns its length. After limitValues().
   * For front ends that frame each value on its own (RESP's bulk strings).
   */
  copyValue(op_index: number, target: Buffer, offset: number): number {
    const length = this.value_length[op_index]!;
    if (length === 0) return 0;
    const source_offset = this.source_offset[op_index]!;
    const source = this.sources[this.source_index[op_index]!]!;
    if (length <= COPY_LOOP_BYTES_MAX) {
      for (let j = 0; j < length; j++) target[offset + j] = source[source_offset + j]!;
    } else {
      source.copy(target, offset, source_offset, source_offset + length);
    }
    return length;
  }

  /** Copies the values, in op order, into target[offset..]. After limitValues(). */
  copyValues(target: Buffer, offset: number): void {
    let position = offset;
    for (let i = 0; i < this.op_count; i++) {
      position += this.copyValue(i, target, position);
    }
  }
}

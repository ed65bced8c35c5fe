/**
 * What one socket read asked for: the reply plan of each command, in order, and the ops they
 * need, packed into RequestBatches for the dispatcher. Pipelining becomes batching: every
 * command of one read goes into one batch (a second one only past batch_ops_max ops), and
 * the replies are rendered into one write once every batch of the group is answered.
 */
import type { RequestBatch } from '../../protocol/codec.js';
import { Op } from '../../protocol/constants.js';
import type { PendingRequest } from '../../engine/pending-request.js';

/** How a command's reply is made from its ops' results (render.ts). */
export const ReplyKind = {
  /** Bytes known when the command was read. */
  FIXED: 0,
  /** One GET: the value, nil when NOT_FOUND. */
  GET: 1,
  /** PUTs (SET, MSET): +OK, or the first op's error. */
  OK: 2,
  /** DELETEs (DEL, UNLINK): how many found a key. */
  DELETED: 3,
  /** GETs (EXISTS): how many found a key. */
  EXISTING: 4,
  /** GETs (MGET): an array of values and nils. */
  VALUES: 5,
  /** Read when the reply is rendered, after the commands before it have run. */
  DBSIZE: 6,
  INFO: 7,
  /** One TTL op (TTL): seconds left, -1 without an expiry, -2 without a key. */
  TTL_SECONDS: 8,
  /** One TTL op (PTTL): ms left, -1, -2. */
  TTL_MS: 9,
  /** One PUT_NX (SET NX): +OK if it wrote (the key was absent: NOT_FOUND), nil if not. */
  SET_IF_ABSENT: 10,
  /** One PUT_XX (SET XX): +OK if it wrote (the key existed: OK), nil if not. */
  SET_IF_PRESENT: 11,
  /** One PUT_NX (SETNX): 1 if it wrote, 0 if not. */
  SETNX: 12,
  /** A reply the node computes asynchronously (SCAN, KEYS, DBSIZE in a cluster, FLUSHALL): `fixed` once it is known. */
  ASYNC: 13,
} as const;
export type ReplyKindCode = (typeof ReplyKind)[keyof typeof ReplyKind];

/** What an INFO or DBSIZE reply is counted as before it is rendered (a full INFO is about 1.5 KiB). */
const LATE_REPLY_BYTES_ESTIMATE = 4096;

export interface ReplyPlan {
  kind: ReplyKindCode;
  /** Index of the group's batch that holds this command's ops, and where they start. */
  batch: number;
  first_op: number;
  op_count: number;
  /** FIXED only. */
  fixed: Buffer | null;
  /** INFO only: the sections asked for. */
  sections: string[] | null;
  /** ASYNC only: makes the reply; started once the group's batches are submitted, so it runs after them. */
  task?: () => Promise<Buffer>;
}

/** Ops of one batch, as views of the parser's buffer until build() copies them. */
class BatchBuilder {
  private readonly ops: number[] = [];
  private readonly keys: Buffer[] = [];
  /** PUT values by op index; undefined for ops without a value. */
  private readonly values: (Buffer | undefined)[] = [];
  /** Absolute expiry per op (wire `xp`): 0 none, EXPIRY_KEEP on a PUT. */
  private readonly expiries: number[] = [];
  private expiring = 0;
  private key_bytes = 0;
  private value_bytes = 0;
  gets = 0;

  get op_count(): number {
    return this.ops.length;
  }

  add(op: number, key: Buffer, value?: Buffer, expiry_ms = 0): void {
    this.ops.push(op);
    this.expiries.push(expiry_ms);
    if (expiry_ms !== 0) this.expiring++;
    this.keys.push(key);
    this.values.push(value);
    this.key_bytes += key.length;
    if (value !== undefined) this.value_bytes += value.length;
    if (op === Op.GET || op === Op.PUT_GET || op === Op.PUT_NX_GET || op === Op.PUT_XX_GET || op === Op.GET_DELETE || op === Op.GET_EXPIRE) this.gets++;
  }

  /** The batch, with keys and values copied out of the parser's buffer (which the next read reuses). */
  build(id: number): { batch: RequestBatch; bytes: number } {
    const count = this.ops.length;
    const op = new Uint8Array(count);
    const key_lengths = new Uint32Array(count);
    const value_lengths = new Uint32Array(count);
    const keys = Buffer.allocUnsafe(this.key_bytes);
    const values = Buffer.allocUnsafe(this.value_bytes);
    let key_offset = 0;
    let value_offset = 0;
    for (let i = 0; i < count; i++) {
      op[i] = this.ops[i]!;
      const key = this.keys[i]!;
      key.copy(keys, key_offset);
      key_offset += key.length;
      key_lengths[i] = key.length;
      const value = this.values[i];
      if (value !== undefined) {
        value.copy(values, value_offset);
        value_offset += value.length;
        value_lengths[i] = value.length;
      }
    }
    const batch: RequestBatch = { id, op, key_lengths, value_lengths, keys, values };
    if (this.expiring > 0) batch.expiry = Float64Array.from(this.expiries);
    return { batch, bytes: this.key_bytes + this.value_bytes };
  }
}

export class ReadGroup {
  readonly plans: ReplyPlan[] = [];
  /** One answered request per batch, set as each is submitted. */
  readonly requests: PendingRequest[] = [];
  /** Batches not yet answered; the group is rendered when this reaches 0. */
  unsettled = 0;
  /** Close the connection once this group's replies are written (QUIT, a protocol error). */
  close_after = false;
  /** Close without writing anything more (an HTTP request on the RESP port). */
  drop = false;
  /**
   * Bytes of the replies known without the engine (FIXED) or estimated (INFO). A read of small
   * commands can ask for far larger replies (COMMAND DOCS: 14 bytes in, 6 KiB out), so the
   * connection stops taking commands into a group past a bound (RespConnection.readCommands).
   */
  local_reply_bytes = 0;
  private readonly builders: BatchBuilder[] = [];
  private readonly batch_ops_max: number;

  constructor(batch_ops_max: number) {
    this.batch_ops_max = batch_ops_max;
  }

  get batch_count(): number {
    return this.builders.length;
  }

  fixed(reply: Buffer): void {
    this.local_reply_bytes += reply.length;
    this.plans.push({ kind: ReplyKind.FIXED, batch: 0, first_op: 0, op_count: 0, fixed: reply, sections: null });
  }

  /** A reply computed when rendered (DBSIZE, INFO). */
  late(kind: typeof ReplyKind.DBSIZE | typeof ReplyKind.INFO, sections: string[] | null = null): void {
    this.local_reply_bytes += LATE_REPLY_BYTES_ESTIMATE;
    this.plans.push({ kind, batch: 0, first_op: 0, op_count: 0, fixed: null, sections });
  }

  /** A reply computed asynchronously by `task` (ReplyKind.ASYNC); it must resolve to a whole RESP reply, errors included. */
  later(task: () => Promise<Buffer>): void {
    this.local_reply_bytes += LATE_REPLY_BYTES_ESTIMATE;
    this.async_count++;
    this.plans.push({ kind: ReplyKind.ASYNC, batch: 0, first_op: 0, op_count: 0, fixed: null, sections: null, task });
  }

  /** ASYNC plans in this group. */
  async_count = 0;

  /**
   * One command's ops, all with the same op code and expiry: keys[i] (with values[i] for PUTs). They go
   * into the current batch, or a new one if they would take it past batch_ops_max; the caller
   * has checked that one command's ops fit in one batch.
   */
  ops(kind: ReplyKindCode, op: number, keys: Buffer[], values?: Buffer[], expiry_ms = 0): void {
    let builder = this.builders[this.builders.length - 1];
    if (builder === undefined || builder.op_count + keys.length > this.batch_ops_max) {
      builder = new BatchBuilder();
      this.builders.push(builder);
    }
    const first_op = builder.op_count;
    for (let i = 0; i < keys.length; i++) builder.add(op, keys[i]!, values?.[i], expiry_ms);
    this.plans.push({ kind, batch: this.builders.length - 1, first_op, op_count: keys.length, fixed: null, sections: null });
  }

  /** Builds batch `index` (ids come from the connection, for logs). */
  build(index: number, id: number): { batch: RequestBatch; bytes: number; gets: number } {
    const builder = this.builders[index]!;
    return { ...builder.build(id), gets: builder.gets };
  }
}

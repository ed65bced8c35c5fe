/**
 * What a client call turns into: queued ops and the sinks that receive their results.
 *
 * get/put/delete each get a one-op sink that resolves or rejects a promise; batch() gets one
 * sink that collects results by position. Either way the transport only ever sees ops with a
 * (sink, position) pair, so a frame can carry ops from many calls.
 */
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError, statusName, type ErrorCodeName } from '../protocol/errors.js';
import type { RequestBatch } from '../protocol/codec.js';

export type Bytes = string | Uint8Array;

/**
 * One op of a batch() call. The conditional ones (docs/PROTOCOL.md, "Conditional ops") answer
 * whether the key existed before: OK (with its old value for get_and_put and get_and_delete)
 * or NOT_FOUND. put_if_absent wrote when NOT_FOUND, put_if_present when OK.
 */
export type BatchOp =
  | { op: 'get'; key: Bytes }
  | { op: 'put'; key: Bytes; value: Bytes; ttl_ms?: number }
  | { op: 'delete'; key: Bytes }
  | { op: 'ping' }
  | { op: 'put_if_absent' | 'put_if_present' | 'get_and_put'; key: Bytes; value: Bytes; ttl_ms?: number }
  | { op: 'get_and_delete'; key: Bytes };

/** The result of one batch op. `value` is set for a GET hit. */
export interface OpResult {
  /** 'OK', 'NOT_FOUND', or an error code such as 'KEY_TOO_LARGE' (see ErrorCode). */
  code: 'OK' | ErrorCodeName;
  value?: Uint8Array;
}

export interface OpSink {
  settle(position: number, status: number, value: Uint8Array | undefined): void;
  fail(error: PikvError): void;
}

export const OP_CODES: Readonly<Record<BatchOp['op'], number>> = {
  get: Op.GET, put: Op.PUT, delete: Op.DELETE, ping: Op.PING,
  put_if_absent: Op.PUT_NX, put_if_present: Op.PUT_XX, get_and_put: Op.PUT_GET, get_and_delete: Op.GET_DELETE,
};

/** Resolves one get/put/delete/ping/stats call. */
export class SingleSink<T> implements OpSink {
  private settled = false;
  constructor(
    private readonly map: (status: number, value: Uint8Array | undefined) => T,
    private readonly resolve: (result: T) => void,
    private readonly reject: (error: PikvError) => void,
  ) {}

  settle(_position: number, status: number, value: Uint8Array | undefined): void {
    if (this.settled) return;
    this.settled = true;
    try {
      this.resolve(this.map(status, value));
    } catch (error) {
      this.reject(error as PikvError);
    }
  }

  fail(error: PikvError): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(error);
  }
}

const VALUELESS_RESULTS = new Map<number, OpResult>();

function valuelessResult(status: number): OpResult {
  let result = VALUELESS_RESULTS.get(status);
  if (result === undefined) {
    result = Object.freeze({ code: statusName(status) });
    VALUELESS_RESULTS.set(status, result);
  }
  return result;
}

/** Collects a batch() call's results in order; rejects once if any of its frames fails whole. */
export class BatchSink implements OpSink {
  private readonly results: OpResult[];
  private unsettled: number;
  private done = false;
  constructor(
    count: number,
    private readonly resolve: (results: OpResult[]) => void,
    private readonly reject: (error: PikvError) => void,
  ) {
    this.results = new Array<OpResult>(count);
    this.unsettled = count;
    if (count === 0) this.finish();
  }

  settle(position: number, status: number, value: Uint8Array | undefined): void {
    if (this.done) return;
    // Value-less results are shared frozen objects: a batch of puts allocates no result objects.
    this.results[position] = value === undefined ? valuelessResult(status) : { code: statusName(status), value };
    if (--this.unsettled === 0) this.finish();
  }

  fail(error: PikvError): void {
    if (this.done) return;
    this.done = true;
    this.reject(error);
  }

  private finish(): void {
    this.done = true;
    this.resolve(this.results);
  }
}

export function getResult(status: number, value: Uint8Array | undefined): Uint8Array | undefined {
  if (status === Status.OK) return value ?? new Uint8Array(0);
  if (status === Status.NOT_FOUND) return undefined;
  throw new PikvError(statusError(status));
}

/** TTL result: remaining ms, null when the key has no expiry, undefined when there is no key. */
export function ttlResult(status: number, value: Uint8Array | undefined): number | null | undefined {
  if (status === Status.NOT_FOUND) return undefined;
  if (status !== Status.OK) throw new PikvError(statusError(status));
  if (value === undefined || value.length === 0) return null;
  if (value.length !== 8) throw new PikvError(ErrorCode.BAD_RESPONSE, `a TTL result has 8 bytes, not ${value.length}`);
  return new DataView(value.buffer, value.byteOffset, 8).getFloat64(0, true);
}

/**
 * A time to live in ms as a client sends it: a whole number of ms >= 1, at most 2^53 - 1 - now.
 * Throws BAD_ARGUMENT otherwise.
 */
export function checkTtl(ttl_ms: unknown): number {
  if (typeof ttl_ms !== 'number' || !Number.isSafeInteger(ttl_ms) || ttl_ms < 1 || ttl_ms > Number.MAX_SAFE_INTEGER - Date.now()) {
    throw new PikvError(ErrorCode.BAD_ARGUMENT, `ttl_ms must be a whole number of milliseconds >= 1, got ${String(ttl_ms)}`);
  }
  return ttl_ms;
}

export function putResult(status: number): void {
  if (status !== Status.OK) throw new PikvError(statusError(status));
}

export function deleteResult(status: number): boolean {
  if (status === Status.OK) return true;
  if (status === Status.NOT_FOUND) return false;
  throw new PikvError(statusError(status));
}

function statusError(status: number): ErrorCodeName {
  const name = statusName(status);
  return name === 'OK' ? ErrorCode.INTERNAL : name;
}

export function checkBytes(value: unknown, what: string): Bytes {
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  throw new PikvError(ErrorCode.BAD_ARGUMENT, `${what} must be a string or a Uint8Array`);
}

/** A batch already laid out the way the wire wants it (see docs/PROTOCOL.md); the client picks the id. */
export type ColumnBatch = Omit<RequestBatch, 'id' | 'peer'>;

/** Per-op status bytes (Status) and result values, as the server sent them. */
export interface ColumnResults {
  status: Uint8Array;
  value_lengths: Uint32Array;
  values: Uint8Array;
  /** Codec id of each result value as stored, when the batch set `accept_codecs` and some value is encoded. */
  value_codec?: Uint8Array | undefined;
}

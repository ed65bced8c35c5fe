/**
 * CBOR framing of pikv batches (protocol version 1; see docs/PROTOCOL.md).
 *
 * A batch is columnar: one byte string of op codes, one typed array of key lengths, one of
 * value lengths, and all keys and all values each concatenated into one byte string. CBOR
 * then costs a handful of tokens per batch instead of a map per op, which is what kept a
 * per-op-object prototype at ~1M ops/s (shared/MEASUREMENTS.md).
 *
 * cbor-x keeps mutable encoder state for speed; that state lives in this class and nowhere
 * else. Decoded byte strings are views into the frame they came from: copy them before that
 * frame's memory is reused.
 */
import { Decoder, Encoder } from 'cbor-x';
import { Field, PROTOCOL_VERSION, REQUEST_ID_MAX, STREAM_RECORD_VERSION } from './constants.js';
import { ErrorCode, PikvError, type ErrorCodeName } from './errors.js';
import { readRequestMap } from './request-reader.js';

/** A request as the client builds it and the server receives it. */
export interface RequestBatch {
  id: number;
  /** One op code per op. */
  op: Uint8Array;
  /** Key length per op, in bytes. */
  key_lengths: Uint32Array | Uint16Array;
  /** Value length per op, in bytes; zero for every op but PUT. */
  value_lengths: Uint32Array;
  keys: Uint8Array;
  values: Uint8Array;
  /** Wire field `re`: the sender's ring epoch; set on ring-aware and forwarded requests (docs/CLUSTER.md). */
  ring_epoch?: number | undefined;
  /** Wire field `mg`: a replication or data-move stream frame; honoured only on authenticated peer connections. */
  migrate?: boolean | undefined;
  /** Not on the wire: set by the server when the request came over an authenticated peer connection. */
  peer?: boolean | undefined;
  /** Wire field `ra`: this request's GETs may be served by any in-sync copy (docs/REPLICATION.md). */
  read_any?: boolean | undefined;
  /** Not on the wire: the node id that peer proved in its handshake (a replication stream's sender). */
  peer_id?: string | undefined;
  /** Wire field `xp`: absolute expiry per op, ms since the Unix epoch (0 none, -1 keep on PUT). */
  expiry?: Float64Array | undefined;
  /** Wire field `tl`: time to live per op in ms (0 none), turned into an absolute expiry by the receiving node. */
  ttl?: Float64Array | undefined;
  /** Wire field `sv`: the stream record version of an `mg` frame (STREAM_RECORD_VERSION); absent = 1. */
  stream_version?: number | undefined;
  /** Wire field `vc`: the value codec id per op (value-codec.ts; 0 raw); only PUTs may have one. */
  value_codec?: Uint8Array | undefined;
  /** Wire field `ac`: bit mask of value codecs the sender decodes; GET results may come back encoded with them. */
  accept_codecs?: number | undefined;
  /** Wire field `ci` (`mg` frames): the highest commit id whose writes the frame holds (docs/REPLICATION.md R7). */
  commit_id?: number | undefined;
  /** Wire field `cw` (`mg` frames): the sender's commit watermark: every commit up to it is on every copy. */
  commit_watermark?: number | undefined;
}

/** A successful response: one status byte and one (possibly empty) value per op, in request order. */
export interface ResponseBatch {
  id: number;
  status: Uint8Array;
  value_lengths: Uint32Array;
  values: Uint8Array;
  /** Wire field `vc`: the codec id of each result value; absent = all raw (only sent to requests with `ac`). */
  value_codec?: Uint8Array | undefined;
}

/** A response that rejects the whole request. `id` is null when the request's id could not be read. */
export interface ErrorResponse {
  id: number | null;
  code: string;
  message: string;
}

const CBOR_OPTIONS = { tagUint8Array: false, useRecords: false, mapsAsObjects: true, pack: false } as const;
const EMPTY_BYTES = new Uint8Array(0);

/** Thrown by decodeRequest; `id` is set when the id was readable, so the reply can carry it. */
export class RequestDecodeError extends PikvError {
  readonly request_id: number | null;
  constructor(code: ErrorCodeName, message: string, request_id: number | null) {
    super(code, message);
    this.request_id = request_id;
  }
}

/**
 * A request id as a number, or null if `value` is not a valid one. CBOR libraries write ids of
 * 2^32 and up as 8-byte integers, which cbor-x reads as BigInt; others (cbor-x included) may
 * write them as floats. Both are accepted while the value is a safe integer.
 */
function readRequestId(value: unknown): number | null {
  const id = typeof value === 'bigint' && value >= 0n && value <= BigInt(REQUEST_ID_MAX) ? Number(value) : value;
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= REQUEST_ID_MAX ? id : null;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function sumOf(lengths: Uint32Array | Uint16Array): number {
  let total = 0;
  for (let i = 0; i < lengths.length; i++) total += lengths[i]!;
  return total;
}

export class WireCodec {
  private readonly encoder = new Encoder(CBOR_OPTIONS);
  private readonly decoder = new Decoder(CBOR_OPTIONS);

  encodeRequest(batch: RequestBatch): Buffer {
    const map: Record<string, unknown> = {
      [Field.VERSION]: PROTOCOL_VERSION,
      [Field.ID]: batch.id,
      [Field.OP]: batch.op,
      [Field.KEY_LENGTHS]: batch.key_lengths,
      [Field.VALUE_LENGTHS]: batch.value_lengths,
      [Field.KEYS]: batch.keys,
      [Field.VALUES]: batch.values,
    };
    if (batch.ring_epoch !== undefined) map[Field.RING_EPOCH] = batch.ring_epoch;
    if (batch.migrate === true) map[Field.MIGRATE] = true;
    if (batch.read_any === true) map[Field.READ_ANY] = true;
    if (batch.expiry !== undefined) map[Field.EXPIRY] = batch.expiry;
    if (batch.ttl !== undefined) map[Field.TTL] = batch.ttl;
    if (batch.stream_version !== undefined) map[Field.STREAM_VERSION] = batch.stream_version;
    if (batch.value_codec !== undefined) map[Field.VALUE_CODEC] = batch.value_codec;
    if (batch.accept_codecs !== undefined && batch.accept_codecs !== 0) map[Field.ACCEPT_CODECS] = batch.accept_codecs;
    if (batch.commit_id !== undefined && batch.commit_id !== 0) map[Field.COMMIT_ID] = batch.commit_id;
    if (batch.commit_watermark !== undefined && batch.commit_watermark !== 0) map[Field.COMMIT_WATERMARK] = batch.commit_watermark;
    return this.encoder.encode(map);
  }

  /**
   * Decodes and structurally validates one request frame. Per-op limits (key and value size,
   * op codes) are not checked here: they fail single ops, not the whole request.
   */
  decodeRequest(frame: Uint8Array, ops_max: number): RequestBatch {
    // Cheap pre-check: a request is a CBOR map (major type 5). Rejecting anything else before
    // cbor-x runs keeps absurd top-level array/string headers away from the decoder.
    const first = frame.length > 0 ? frame[0]! : 0;
    if (frame.length === 0 || first >> 5 !== 5) {
      throw new RequestDecodeError(ErrorCode.BAD_REQUEST, 'a request must be a CBOR map', null);
    }
    let decoded: unknown = Buffer.isBuffer(frame) ? readRequestMap(frame) : null;
    if (decoded === null) {
      try {
        decoded = this.decoder.decode(frame);
      } catch (error) {
        throw new RequestDecodeError(ErrorCode.BAD_FRAME, `frame is not valid CBOR: ${(error as Error).message}`, null);
      }
    }
    if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded) || isBytes(decoded)) {
      throw new RequestDecodeError(ErrorCode.BAD_REQUEST, 'a request must be a CBOR map', null);
    }
    const map = decoded as Record<string, unknown>;
    const id = readRequestId(map[Field.ID]);
    if (id === null) {
      throw new RequestDecodeError(ErrorCode.BAD_REQUEST, `'id' must be an integer from 0 to ${REQUEST_ID_MAX}`, null);
    }
    const fail = (code: ErrorCodeName, message: string): never => {
      throw new RequestDecodeError(code, message, id);
    };
    if (map[Field.VERSION] !== PROTOCOL_VERSION) {
      fail(ErrorCode.UNSUPPORTED_VERSION, `'v' must be ${PROTOCOL_VERSION}`);
    }
    const op = map[Field.OP];
    const key_lengths = map[Field.KEY_LENGTHS];
    const keys = map[Field.KEYS];
    if (!isBytes(op)) return fail(ErrorCode.BAD_REQUEST, "'op' must be a byte string");
    if (op.length > ops_max) fail(ErrorCode.TOO_MANY_OPS, `request has ${op.length} ops; the limit is ${ops_max}`);
    if (!(key_lengths instanceof Uint32Array || key_lengths instanceof Uint16Array)) {
      return fail(ErrorCode.BAD_REQUEST, "'kl' must be a uint32 (tag 70) or uint16 (tag 69) typed array");
    }
    if (!isBytes(keys)) return fail(ErrorCode.BAD_REQUEST, "'keys' must be a byte string");
    if (key_lengths.length !== op.length) fail(ErrorCode.BAD_REQUEST, "'kl' must have one entry per op");
    if (sumOf(key_lengths) !== keys.length) fail(ErrorCode.BAD_REQUEST, "the sum of 'kl' must equal the length of 'keys'");

    // 'vl' and 'vals' may be left out together when no op carries a value.
    let value_lengths = map[Field.VALUE_LENGTHS];
    let values = map[Field.VALUES];
    if (value_lengths === undefined && values === undefined) {
      value_lengths = new Uint32Array(op.length);
      values = EMPTY_BYTES;
    }
    if (!(value_lengths instanceof Uint32Array)) return fail(ErrorCode.BAD_REQUEST, "'vl' must be a uint32 typed array (tag 70)");
    if (!isBytes(values)) return fail(ErrorCode.BAD_REQUEST, "'vals' must be a byte string");
    if (value_lengths.length !== op.length) fail(ErrorCode.BAD_REQUEST, "'vl' must have one entry per op");
    if (sumOf(value_lengths) !== values.length) fail(ErrorCode.BAD_REQUEST, "the sum of 'vl' must equal the length of 'vals'");
    const ring_epoch = map[Field.RING_EPOCH];
    if (ring_epoch !== undefined && !(typeof ring_epoch === 'number' && Number.isSafeInteger(ring_epoch) && ring_epoch >= 0)) {
      fail(ErrorCode.BAD_REQUEST, "'re' must be a non-negative integer (the ring epoch)");
    }
    const expiry = map[Field.EXPIRY];
    const ttl = map[Field.TTL];
    const stream_version = map[Field.STREAM_VERSION];
    if (expiry !== undefined && !(expiry instanceof Float64Array && expiry.length === op.length)) {
      fail(ErrorCode.BAD_REQUEST, "'xp' must be a float64 typed array (tag 86) with one entry per op");
    }
    if (ttl !== undefined && !(ttl instanceof Float64Array && ttl.length === op.length)) {
      fail(ErrorCode.BAD_REQUEST, "'tl' must be a float64 typed array (tag 86) with one entry per op");
    }
    if (stream_version !== undefined && !(typeof stream_version === 'number' && Number.isInteger(stream_version) && stream_version >= 1 && stream_version <= STREAM_RECORD_VERSION)) {
      fail(ErrorCode.UNSUPPORTED_VERSION, `'sv' (stream record version) must be 1..${STREAM_RECORD_VERSION}; this node cannot keep the metadata of version ${String(stream_version)}`);
    }
    const value_codec = map[Field.VALUE_CODEC];
    const accept_codecs = map[Field.ACCEPT_CODECS];
    if (value_codec !== undefined && !(isBytes(value_codec) && value_codec.length === op.length)) {
      fail(ErrorCode.BAD_REQUEST, "'vc' must be a byte string with one byte per op (the value codec id)");
    }
    if (accept_codecs !== undefined && !(typeof accept_codecs === 'number' && Number.isInteger(accept_codecs) && accept_codecs >= 0 && accept_codecs <= 0xff)) {
      fail(ErrorCode.BAD_REQUEST, "'ac' must be an unsigned int from 0 to 255 (a bit mask of value codec ids)");
    }
    const commit_id = map[Field.COMMIT_ID];
    const commit_watermark = map[Field.COMMIT_WATERMARK];
    if (commit_id !== undefined && !(typeof commit_id === 'number' && Number.isSafeInteger(commit_id) && commit_id >= 0)) {
      fail(ErrorCode.BAD_REQUEST, "'ci' must be a non-negative integer (a commit id)");
    }
    if (commit_watermark !== undefined && !(typeof commit_watermark === 'number' && Number.isSafeInteger(commit_watermark) && commit_watermark >= 0)) {
      fail(ErrorCode.BAD_REQUEST, "'cw' must be a non-negative integer (a commit watermark)");
    }
    if (ring_epoch === undefined && map[Field.MIGRATE] === undefined && map[Field.READ_ANY] === undefined && expiry === undefined && ttl === undefined
      && value_codec === undefined && accept_codecs === undefined) {
      return { id, op, key_lengths, value_lengths, keys, values };
    }
    const batch: RequestBatch = { id, op, key_lengths, value_lengths, keys, values, ring_epoch: ring_epoch as number | undefined, migrate: map[Field.MIGRATE] === true, read_any: map[Field.READ_ANY] === true };
    if (expiry !== undefined) batch.expiry = expiry as Float64Array;
    if (ttl !== undefined) batch.ttl = ttl as Float64Array;
    if (stream_version !== undefined) batch.stream_version = stream_version as number;
    if (value_codec !== undefined) batch.value_codec = value_codec as Uint8Array;
    if (accept_codecs !== undefined) batch.accept_codecs = accept_codecs as number;
    if (commit_id !== undefined) batch.commit_id = commit_id as number;
    if (commit_watermark !== undefined) batch.commit_watermark = commit_watermark as number;
    return batch;
  }

  encodeResponse(response: ResponseBatch): Buffer {
    const map: Record<string, unknown> = {
      [Field.VERSION]: PROTOCOL_VERSION,
      [Field.ID]: response.id,
      [Field.STATUS]: response.status,
      [Field.VALUE_LENGTHS]: response.value_lengths,
      [Field.VALUES]: response.values,
    };
    if (response.value_codec !== undefined) map[Field.VALUE_CODEC] = response.value_codec;
    return this.encoder.encode(map);
  }

  encodeError(error: ErrorResponse): Buffer {
    return this.encoder.encode({
      [Field.VERSION]: PROTOCOL_VERSION,
      [Field.ID]: error.id,
      [Field.ERROR]: error.code,
      [Field.MESSAGE]: error.message,
    });
  }

  /** Client side: a response, or an error response; throws PikvError(BAD_RESPONSE) on anything else. */
  decodeResponse(frame: Uint8Array): ResponseBatch | ErrorResponse {
    let decoded: unknown;
    try {
      decoded = this.decoder.decode(frame);
    } catch (error) {
      throw new PikvError(ErrorCode.BAD_RESPONSE, `response is not valid CBOR: ${(error as Error).message}`);
    }
    if (decoded === null || typeof decoded !== 'object') throw new PikvError(ErrorCode.BAD_RESPONSE, 'response is not a map');
    const map = decoded as Record<string, unknown>;
    const id = readRequestId(map[Field.ID]);
    const code = map[Field.ERROR];
    if (typeof code === 'string') {
      return { id, code, message: String(map[Field.MESSAGE] ?? '') };
    }
    const status = map[Field.STATUS];
    const value_lengths = map[Field.VALUE_LENGTHS];
    const values = map[Field.VALUES];
    if (id === null || !isBytes(status) || !(value_lengths instanceof Uint32Array) || !isBytes(values)) {
      throw new PikvError(ErrorCode.BAD_RESPONSE, 'response lacks id, st, vl or vals');
    }
    if (value_lengths.length !== status.length || sumOf(value_lengths) !== values.length) {
      throw new PikvError(ErrorCode.BAD_RESPONSE, 'response value lengths do not match its values');
    }
    const value_codec = map[Field.VALUE_CODEC];
    if (value_codec === undefined) return { id, status, value_lengths, values };
    if (!isBytes(value_codec) || value_codec.length !== status.length) throw new PikvError(ErrorCode.BAD_RESPONSE, "response 'vc' must have one byte per op");
    return { id, status, value_lengths, values, value_codec };
  }

  /** Encodes any value (used for the STATS op's result, itself a CBOR map). */
  encodeValue(value: unknown): Buffer {
    return this.encoder.encode(value);
  }

  decodeValue(bytes: Uint8Array): unknown {
    return this.decoder.decode(bytes);
  }
}

export function isErrorResponse(response: ResponseBatch | ErrorResponse): response is ErrorResponse {
  return (response as ErrorResponse).code !== undefined;
}

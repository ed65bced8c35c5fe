/**
 * The pikv client: a typed, promise-based, auto-batching connection to one node.
 *
 * Calls made in the same tick are sent as one frame (flushed in a microtask), split into
 * frames of at most `batch_ops_max` ops. Every frame has a timeout. After close() or a lost
 * connection every pending and later call rejects with a code (CLIENT_CLOSED,
 * CONNECTION_LOST); writes are never retried behind the caller's back.
 */
import WebSocket from 'ws';
import { Op, REQUEST_ID_MAX, Status } from '../protocol/constants.js';
import { isErrorResponse, WireCodec, type ResponseBatch } from '../protocol/codec.js';
import { ErrorCode, PikvError, type ErrorCodeName } from '../protocol/errors.js';
import { ERROR_HEADER, PeerHandshake } from '../protocol/auth.js';
import { DEFAULTS, type ClientOptions } from './options.js';
import { CompressPool, compressColumns, defaultCompressThreads } from './compress-pool.js';
import { looksCompressible, VALUE_CODECS_KNOWN_MASK } from '../protocol/value-codec.js';
import { byteLength, EXPIRY_KEEP_TTL, EXPIRY_NOW, OpQueue, requestOf } from './op-queue.js';
import {
  BatchSink, OP_CODES, SingleSink, checkBytes, checkTtl, deleteResult, getResult, putResult, ttlResult,
  type BatchOp, type Bytes, type ColumnBatch, type ColumnResults, type OpResult, type OpSink,
} from './ops.js';

/** An op that waits for an earlier op's value to be compressed, so per-key order is kept. */
interface WaitingOp {
  op: number;
  key: Bytes;
  value: Bytes | null;
  codec: number;
  sink: OpSink;
  position: number;
  ttl: number;
  /** False while its value is in the pool. */
  ready: boolean;
}

/** A frame of auto-batched calls: each op reports to its own sink. */
interface OpsFrame {
  kind: 'ops';
  op_count: number;
  sinks: OpSink[];
  positions: number[];
  timer: NodeJS.Timeout;
}

/** A frame from batchColumns(): the response goes back whole. */
interface ColumnsFrame {
  kind: 'columns';
  op_count: number;
  resolve: (results: ColumnResults) => void;
  reject: (error: PikvError) => void;
  timer: NodeJS.Timeout;
}

type FrameInFlight = OpsFrame | ColumnsFrame;

export type { ColumnBatch, ColumnResults } from './ops.js';


/** Options of PikvClient.put. */
export interface PutOptions {
  /** Time to live in ms (>= 1), counted by the node from when it receives the put. */
  ttl_ms?: number;
  /** Keep the key's current expiry (Redis KEEPTTL). */
  keep_ttl?: boolean;
}


export class PikvClient {
  readonly url: string;
  private readonly ws: WebSocket;
  private readonly options: Required<ClientOptions>;
  private readonly codec = new WireCodec();
  private readonly inflight = new Map<number, FrameInFlight>();
  private next_id = 1;
  private failure: PikvError | null = null;
  private closed: Promise<void> | null = null;
  // The ops queued in this tick, column by column.
  /** Ops waiting for the next flush (op-queue.ts). */
  private queued = new OpQueue();
  private flush_scheduled = false;
  private ops_pending = 0;
  /** Compression of large PUT values; null when compress_min_bytes is 0 (reads then decode inline). */
  private readonly compressor: CompressPool | null;
  /** Decodes large compressed results even when this client does not compress. */
  private readonly decoder: CompressPool;
  /**
   * Ops behind a value being compressed, in call order: they go into the queue only once
   * every op before them has, so ops on one key are still sent in the order they were made.
   */
  private waiting: WaitingOp[] = [];

  /** Use connect(); the constructor takes an already open socket. */
  constructor(url: string, ws: WebSocket, options: Required<ClientOptions>) {
    this.url = url;
    this.ws = ws;
    this.options = options;
    const threads = options.compress_threads === 0 ? defaultCompressThreads() : options.compress_threads;
    this.decoder = new CompressPool(threads);
    this.compressor = options.compress_min_bytes > 0 && options.peer === null ? this.decoder : null;
    ws.on('message', (data: Buffer, is_binary: boolean) => this.onMessage(data, is_binary));
    ws.on('close', (code: number, reason: Buffer) => {
      const detail = reason.length > 0 ? `${code} ${reason.toString()}` : String(code);
      this.failAll(new PikvError(ErrorCode.CONNECTION_LOST, `connection to ${url} closed (${detail})`));
    });
    ws.on('error', (error) => this.failAll(new PikvError(ErrorCode.CONNECTION_LOST, `connection to ${url} failed: ${error.message}`)));
  }

  /** Why this client can no longer be used (closed, or its connection was lost), or null while open. */
  get failed(): PikvError | null {
    return this.failure;
  }

  /** Threads the compression pool runs now: 0 before the first large value and after close(). */
  get compress_threads_running(): number {
    return this.decoder.threads_running;
  }

  /** The value of `key`, or undefined when absent. Values are views into the response frame. */
  get(key: Bytes): Promise<Uint8Array | undefined> {
    return this.single(Op.GET, key, null, getResult);
  }

  /**
   * Sets `key`. `ttl_ms`: the key expires that many ms after the node receives the put (the
   * node's clock decides; docs/PROTOCOL.md, "Expiry"); `keep_ttl`: keep the key's current
   * expiry (Redis KEEPTTL). Without either, a put clears any expiry, as Redis's SET does.
   */
  put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<void> {
    return this.putLike(Op.PUT, key, value, options, putResult);
  }

  /**
   * Sets `key` only if it does not exist (Redis SET NX), atomically on the key's node. Resolves
   * true if it was written. Options as put().
   */
  putIfAbsent(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<boolean> {
    return this.putLike(Op.PUT_NX, key, value, options, (status) => !deleteResult(status));
  }

  /** Sets `key` only if it exists (Redis SET XX), atomically. Resolves true if it was written. */
  putIfPresent(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<boolean> {
    return this.putLike(Op.PUT_XX, key, value, options, deleteResult);
  }

  /** Sets `key` and resolves its value before, or undefined (Redis SET ... GET, GETSET), atomically. */
  getAndPut(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<Uint8Array | undefined> {
    return this.putLike(Op.PUT_GET, key, value, options, getResult);
  }

  /** Deletes `key` and resolves the value it had, or undefined (Redis GETDEL), atomically. */
  getAndDelete(key: Bytes): Promise<Uint8Array | undefined> {
    return this.single(Op.GET_DELETE, key, null, getResult);
  }

  /**
   * Resolves `key`'s value (undefined when absent) and, if it exists, makes it expire `ttl_ms`
   * from now (0 or less: deletes it), or removes its expiry when `ttl_ms` is null (Redis GETEX
   * PX / PERSIST), atomically.
   */
  getAndExpire(key: Bytes, ttl_ms: number | null): Promise<Uint8Array | undefined> {
    let ttl = 0;
    try {
      if (ttl_ms !== null) {
        if (typeof ttl_ms !== 'number' || !Number.isSafeInteger(ttl_ms)) throw new PikvError(ErrorCode.BAD_ARGUMENT, `ttl_ms must be a whole number or null, got ${String(ttl_ms)}`);
        ttl = ttl_ms <= 0 ? EXPIRY_NOW : checkTtl(ttl_ms);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.single(Op.GET_EXPIRE, key, null, getResult, ttl);
  }

  /** A PUT-like op with put()'s options. */
  private putLike<T>(op: number, key: Bytes, value: Bytes, options: PutOptions, map: (status: number, value: Uint8Array | undefined) => T): Promise<T> {
    let ttl = 0;
    try {
      if (options.ttl_ms !== undefined && options.keep_ttl === true) throw new PikvError(ErrorCode.BAD_ARGUMENT, 'give ttl_ms or keep_ttl, not both');
      if (options.ttl_ms !== undefined) ttl = checkTtl(options.ttl_ms);
      else if (options.keep_ttl === true) ttl = EXPIRY_KEEP_TTL;
      checkBytes(value, 'value');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.single(op, key, value, map, ttl);
  }

  /** Remaining time to live in ms; null when the key has no expiry; undefined when there is no such key. */
  ttl(key: Bytes): Promise<number | null | undefined> {
    return this.single(Op.TTL, key, null, ttlResult);
  }

  /**
   * Makes `key` expire `ttl_ms` from now (the node's clock); 0 or less deletes it now, as
   * Redis's EXPIRE does. Resolves true if the key existed.
   */
  expire(key: Bytes, ttl_ms: number): Promise<boolean> {
    let ttl: number;
    try {
      if (typeof ttl_ms !== 'number' || !Number.isSafeInteger(ttl_ms)) throw new PikvError(ErrorCode.BAD_ARGUMENT, `ttl_ms must be a whole number, got ${String(ttl_ms)}`);
      ttl = ttl_ms <= 0 ? EXPIRY_NOW : checkTtl(ttl_ms);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.single(Op.EXPIRE, key, null, deleteResult, ttl);
  }

  /** Removes the key's expiry. Resolves true if it had one (false: no such key, or no expiry). */
  persist(key: Bytes): Promise<boolean> {
    return this.single(Op.PERSIST, key, null, deleteResult);
  }

  /** Resolves true if the key existed. */
  delete(key: Bytes): Promise<boolean> {
    return this.single(Op.DELETE, key, null, deleteResult);
  }

  /** Round trip to the server's main thread. */
  ping(): Promise<void> {
    return this.single(Op.PING, '', null, putResult);
  }

  /** The node's statistics (see docs/PROTOCOL.md, STATS). */
  stats(): Promise<Record<string, unknown>> {
    return this.single(Op.STATS, '', null, (status, value) => {
      putResult(status);
      return this.codec.decodeValue(value ?? new Uint8Array(0)) as Record<string, unknown>;
    });
  }

  /**
   * Many ops, results in order. Per-op failures come back as result codes; the promise rejects
   * only when a whole frame fails (request error, timeout, lost connection, closed client).
   */
  batch(ops: readonly BatchOp[]): Promise<OpResult[]> {
    return new Promise<OpResult[]>((resolve, reject) => {
      const refused = this.refusal(ops.length);
      if (refused !== null) return reject(refused);
      // Validate everything before queueing anything, so a bad op never leaves half a batch sent.
      for (const item of ops) {
        if (!(item.op in OP_CODES)) return reject(new PikvError(ErrorCode.BAD_ARGUMENT, `unknown op ${JSON.stringify(item.op)}`));
        if (item.op !== 'ping') checkBytes(item.key, 'key');
        if ('value' in item) {
          checkBytes(item.value, 'value');
          if (item.ttl_ms !== undefined) {
            try {
              checkTtl(item.ttl_ms);
            } catch (error) {
              return reject(error);
            }
          }
        }
      }
      const sink = new BatchSink(ops.length, resolve, reject);
      for (let i = 0; i < ops.length; i++) {
        const item = ops[i]!;
        this.enqueue(OP_CODES[item.op], item.op === 'ping' ? '' : item.key, 'value' in item ? item.value : null, sink, i, 'value' in item ? item.ttl_ms ?? 0 : 0);
      }
    });
  }

  /**
   * Sends a pre-built columnar batch as one frame, with no per-op objects on either side:
   * the fastest way to move many ops (used by `pikv load` and the benchmarks). It is not
   * split, so keep it within the server's batch_ops_max. Ops queued by earlier calls are sent
   * first, so per-key order is kept.
   */
  batchColumns(batch: ColumnBatch): Promise<ColumnResults> {
    return new Promise<ColumnResults>((resolve, reject) => {
      const op_count = batch.op.length;
      const refused = this.refusal(op_count);
      if (refused !== null) return reject(refused);
      if (batch.key_lengths.length !== op_count || batch.value_lengths.length !== op_count) {
        return reject(new PikvError(ErrorCode.BAD_ARGUMENT, 'key_lengths and value_lengths need one entry per op'));
      }
      this.flush();
      const id = this.nextId();
      this.ops_pending += op_count;
      this.inflight.set(id, { kind: 'columns', op_count, resolve, reject, timer: this.frameTimer(id) });
      this.ws.send(this.codec.encodeRequest({ id, ...batch }), { binary: true });
    });
  }

  /** Closes the connection; pending and later calls reject with CLIENT_CLOSED. */
  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.failAll(new PikvError(ErrorCode.CLIENT_CLOSED));
    // The pool's threads stop too: a closed client leaves nothing running.
    const pool_closed = this.decoder.close();
    const socket_closed = new Promise<void>((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => this.ws.terminate(), 1000).unref();
    });
    this.closed = Promise.all([socket_closed, pool_closed]).then(() => undefined);
    return this.closed;
  }

  private single<T>(op: number, key: Bytes, value: Bytes | null, map: (status: number, value: Uint8Array | undefined) => T, ttl = 0): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const refused = this.refusal(1);
      if (refused !== null) return reject(refused);
      try {
        checkBytes(key, 'key');
      } catch (error) {
        return reject(error);
      }
      this.enqueue(op, key, value, new SingleSink(map, resolve, reject), 0, ttl);
    });
  }

  private refusal(op_count: number): PikvError | null {
    if (this.failure !== null) return this.failure;
    if (this.ops_pending + op_count > this.options.pending_ops_max) {
      return new PikvError(ErrorCode.CLIENT_OVERLOADED, `${this.ops_pending} ops pending; the limit is ${this.options.pending_ops_max}`);
    }
    return null;
  }

  private enqueue(op: number, key: Bytes, value: Bytes | null, sink: OpSink, position: number, ttl = 0): void {
    this.ops_pending++;
    const compressor = this.compressor;
    let bytes: Uint8Array | null = null;
    if (compressor !== null && value !== null && op === Op.PUT && byteLength(value) >= this.options.compress_min_bytes) {
      bytes = typeof value === 'string' ? Buffer.from(value) : value;
      // The sample runs here (a few us for 4 KiB): an incompressible value never pays a thread
      // hop and a copy into the pool (measured: random 4 KiB PUTs ran at 0.19x with it).
      if (!looksCompressible(bytes)) bytes = null;
    }
    if (bytes === null && this.waiting.length === 0) {
      this.enqueueNow(op, key, value, 0, sink, position, ttl);
      return;
    }
    const waiting: WaitingOp = { op, key, value, codec: 0, sink, position, ttl, ready: bytes === null };
    this.waiting.push(waiting);
    if (bytes === null || compressor === null) return;
    const queue = this.waiting;
    void compressor.encode(bytes).then((encoded) => {
      if (encoded !== null) {
        waiting.value = encoded;
        waiting.codec = compressor.codec;
      }
      waiting.ready = true;
      // failAll() replaced the list: these ops were already failed.
      if (queue === this.waiting) this.drainWaiting();
    });
  }

  /** Moves the ops at the head of the waiting list whose values are ready into the queue. */
  private drainWaiting(): void {
    let taken = 0;
    while (taken < this.waiting.length && this.waiting[taken]!.ready) {
      const item = this.waiting[taken++]!;
      this.enqueueNow(item.op, item.key, item.value, item.codec, item.sink, item.position, item.ttl);
    }
    if (taken > 0) this.waiting.splice(0, taken);
  }

  private enqueueNow(op: number, key: Bytes, value: Bytes | null, codec: number, sink: OpSink, position: number, ttl: number): void {
    this.queued.push(op, key, value, codec, sink, position, ttl);
    if (this.queued.length >= this.options.batch_ops_max) {
      this.flush();
    } else if (!this.flush_scheduled) {
      this.flush_scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /**
   * The plain bytes of a result value a node returned stored with `codec` (a batchColumns()
   * reply's `value_codec`, for batches that set `accept_codecs`): decoded inline when small,
   * in the pool when large. Rejects with VALUE_CORRUPT when it does not decode.
   */
  decodeResult(codec: number, bytes: Uint8Array): Promise<Uint8Array> {
    return codec === 0 ? Promise.resolve(bytes) : this.decoder.decode(codec, bytes);
  }

  /**
   * A copy of `batch` whose PUT values of at least compress_min_bytes are compressed in the
   * pool, all at once, with `value_codec` set where that paid (the same rule as put()). For
   * batchColumns() callers such as `pikv load`; a batch with nothing to compress comes back as is.
   */
  compressColumns(batch: ColumnBatch): Promise<ColumnBatch> {
    return compressColumns(batch, this.compressor, this.options.compress_min_bytes);
  }

  private flush(): void {
    this.flush_scheduled = false;
    const queued = this.queued;
    if (queued.length === 0) return;
    this.queued = new OpQueue();
    for (let start = 0; start < queued.length; start += this.options.batch_ops_max) {
      this.sendFrame(queued, start, Math.min(queued.length, start + this.options.batch_ops_max));
    }
  }

  private sendFrame(queued: OpQueue, start: number, end: number): void {
    const id = this.nextId();
    // The usual frame is the whole queue: take its arrays as they are instead of copying them.
    const whole = start === 0 && end === queued.length;
    const sinks = whole ? queued.sinks : queued.sinks.slice(start, end);
    const positions = whole ? queued.positions : queued.positions.slice(start, end);
    this.inflight.set(id, { kind: 'ops', op_count: end - start, sinks, positions, timer: this.frameTimer(id) });
    // `ac`: this client decodes every codec it knows, so compressed values come back as stored.
    this.ws.send(this.codec.encodeRequest(requestOf(queued, start, end, id, VALUE_CODECS_KNOWN_MASK)), { binary: true });
  }

  private nextId(): number {
    const id = this.next_id;
    this.next_id = this.next_id >= REQUEST_ID_MAX ? 1 : this.next_id + 1;
    return id;
  }

  private frameTimer(id: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const error = new PikvError(ErrorCode.TIMEOUT, `no response within ${this.options.request_timeout_ms} ms`);
      if (!this.options.reset_on_timeout) {
        this.failFrame(id, error);
        return;
      }
      this.failAll(error);
      this.ws.terminate();
    }, this.options.request_timeout_ms);
    timer.unref();
    return timer;
  }

  private onMessage(data: Buffer, is_binary: boolean): void {
    if (!is_binary) return;
    let response;
    try {
      response = this.codec.decodeResponse(data);
    } catch (error) {
      this.failAll(error as PikvError);
      this.ws.terminate();
      return;
    }
    if (isErrorResponse(response)) {
      const error = new PikvError(response.code as ErrorCodeName, response.message);
      if (response.id !== null) this.failFrame(response.id, error);
      return;
    }
    this.settleFrame(response);
  }

  private settleFrame(response: ResponseBatch): void {
    const frame = this.inflight.get(response.id);
    if (frame === undefined) return; // timed out already
    this.inflight.delete(response.id);
    clearTimeout(frame.timer);
    const count = frame.op_count;
    this.ops_pending -= count;
    if (response.status.length !== count) {
      this.rejectFrame(frame, new PikvError(ErrorCode.BAD_RESPONSE, `response has ${response.status.length} results for ${count} ops`));
      return;
    }
    if (frame.kind === 'columns') {
      frame.resolve({ status: response.status, value_lengths: response.value_lengths, values: response.values, value_codec: response.value_codec });
      return;
    }
    let offset = 0;
    const value_codec = response.value_codec;
    for (let i = 0; i < count; i++) {
      const length = response.value_lengths[i]!;
      const value = length > 0 ? response.values.subarray(offset, offset + length) : undefined;
      offset += length;
      const codec = value_codec === undefined ? 0 : value_codec[i]!;
      if (codec === 0 || value === undefined || response.status[i] !== Status.OK) {
        frame.sinks[i]!.settle(frame.positions[i]!, response.status[i]!, value);
        continue;
      }
      // Stored compressed: decoded here (in the pool when large) before the caller sees it.
      const sink = frame.sinks[i]!;
      const position = frame.positions[i]!;
      this.decoder.decode(codec, value).then(
        (plain) => sink.settle(position, Status.OK, plain),
        (error: PikvError) => sink.settle(position, error.code === ErrorCode.VALUE_CORRUPT ? Status.VALUE_CORRUPT : Status.INTERNAL, undefined),
      );
    }
  }

  private failFrame(id: number, error: PikvError): void {
    const frame = this.inflight.get(id);
    if (frame === undefined) return;
    this.inflight.delete(id);
    clearTimeout(frame.timer);
    this.ops_pending -= frame.op_count;
    this.rejectFrame(frame, error);
  }

  private rejectFrame(frame: FrameInFlight, error: PikvError): void {
    if (frame.kind === 'columns') frame.reject(error);
    else for (const sink of frame.sinks) sink.fail(error);
  }

  private failAll(error: PikvError): void {
    if (this.failure === null) this.failure = error;
    for (const id of [...this.inflight.keys()]) this.failFrame(id, this.failure);
    const sinks = this.queued.sinks;
    const waiting = this.waiting;
    this.waiting = [];
    this.queued = new OpQueue();
    this.ops_pending = 0;
    for (const sink of sinks) sink.fail(this.failure);
    for (const item of waiting) item.sink.fail(this.failure);
  }
}

/** Opens a connection to a pikv node, e.g. connect('ws://127.0.0.1:7070'). */
/** A zero masking key (ClientOptions.random_mask). */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

export function connect(url: string, options: ClientOptions = {}): Promise<PikvClient> {
  const merged: Required<ClientOptions> = { ...DEFAULTS, ...options };
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    let handshake: PeerHandshake | null = null;
    try {
      const headers: Record<string, string> = { ...merged.headers };
      if (merged.token !== '') headers['x-pikv-client-token'] = merged.token;
      if (merged.keepalive_ms > 0) headers['x-pikv-keepalive-ms'] = String(merged.keepalive_ms);
      if (merged.peer !== null) {
        handshake = new PeerHandshake(merged.peer);
        Object.assign(headers, handshake.headers);
      }
      ws = new WebSocket(url, {
        perMessageDeflate: false, maxPayload: 0, headers, ...(merged.ca !== '' ? { ca: merged.ca } : {}), ...(merged.random_mask ? {} : { generateMask: zeroMask }),
      });
    } catch (error) {
      return reject(error instanceof PikvError ? error : new PikvError(ErrorCode.CONNECT_FAILED, `cannot connect to ${url}: ${(error as Error).message}`));
    }
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new PikvError(ErrorCode.CONNECT_FAILED, `could not connect to ${url} within ${merged.connect_timeout_ms} ms`));
    }, merged.connect_timeout_ms);
    /** The client proof, sent as the first frame once open (peer connections only). */
    let proof: string | null = null;
    if (handshake !== null) {
      const peer_handshake = handshake;
      // 'upgrade' comes before ws attaches its frame parser to the socket: refusing here means
      // not one byte the server sent after its 101 is read, let alone acted on.
      ws.once('upgrade', (response) => {
        try {
          proof = peer_handshake.accept(response, url);
        } catch (error) {
          clearTimeout(timer);
          ws.on('error', () => {}); // terminate() reports the abort as an error; it is ours
          ws.terminate();
          reject(error);
        }
      });
    }
    ws.once('open', () => {
      clearTimeout(timer);
      // Sent before any request can be: the node reads nothing else from a peer until this.
      if (proof !== null) ws.send(proof);
      resolve(new PikvClient(url, ws, merged));
    });
    ws.once('error', (error) => {
      clearTimeout(timer);
      reject(new PikvError(ErrorCode.CONNECT_FAILED, `cannot connect to ${url}: ${error.message}`));
    });
    // A node refuses a wrong client token, or a peer of another protocol version, in the handshake.
    ws.once('unexpected-response', (request, response) => {
      clearTimeout(timer);
      const status = response.statusCode ?? 0;
      const raw_code = response.headers[ERROR_HEADER];
      const code = Array.isArray(raw_code) ? raw_code[0] : raw_code;
      request.destroy();
      if (code === ErrorCode.PEER_VERSION_MISMATCH) {
        reject(new PikvError(ErrorCode.PEER_VERSION_MISMATCH, `${url} refused the connection (HTTP ${status} PEER_VERSION_MISMATCH): it speaks peer protocol ${String(response.headers['x-pikv-peer-version'] ?? 'unknown')}`));
      } else if (status === 401) {
        reject(new PikvError(ErrorCode.AUTH_FAILED, `${url} refused the connection (401 ${code ?? 'AUTH_FAILED'}): wrong or missing client token, or no cluster secret there`));
      } else {
        reject(new PikvError(ErrorCode.CONNECT_FAILED, `cannot connect to ${url}: HTTP ${status}`));
      }
    });
  });
}

export type { BatchOp, Bytes, OpResult, ClientOptions };

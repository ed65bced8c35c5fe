/**
 * Routes the ops of one decoded request: to partition queues, to the main thread's fast read
 * path, or straight to a result (ping, stats, per-op limit errors).
 *
 * Every key goes to partition murmur3_x86_32(key, KEY_HASH_SEED) mod workers. Each partition
 * executes its queue in order and the dispatcher appends a request's ops before it reads the
 * next frame, so ops on one key from one connection run in the order they were sent.
 *
 * Fast path: a small request of GETs, PUTs and DELETEs whose partitions are all idle is executed
 * here on the shared tables, saving the ~60-90 us round trip to a sleeping worker
 * (shared/MEASUREMENTS.md). "Idle" means nothing queued for or executing in that partition, so
 * every earlier op from any connection has been applied; the main thread then takes the table's
 * ownership word (engine/table-owner.ts), so the worker and it are never in the table at once.
 * Writes take this path only where they need nothing but the table (Partition.main_thread_writable:
 * no --data-dir log, no cluster capture).
 */
import { EXPIRY_KEEP, Op, Status, isConditionalOp, isPutOp } from '../protocol/constants.js';
import { EXPIRY_MS_MAX } from '../hashmap/index.js';
import type { RequestBatch } from '../protocol/codec.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import type { Partition } from '../engine/partition.js';
import { PendingRequest, type RequestDone } from '../engine/pending-request.js';
import type { OpRouter } from '../engine/op-router.js';
import { OpRef } from '../engine/op-ref.js';
import type { RequestMetrics } from './metrics/request-metrics.js';
import { isKnownValueCodec } from '../protocol/value-codec.js';
import type { Decoded } from './codec-pool.js';

/** Decodes a stored compressed value for a client that cannot (node/codec-pool.ts). */
export interface ValueDecoder {
  decode(codec: number, bytes: Uint8Array, bytes_max: number): Promise<Decoded>;
}

/** Requests of at most this many data ops may take the main-thread path. */
const FAST_PATH_OPS_MAX = 16;
/**
 * The fast path's values buffer is kept between requests up to this size. A fresh large Buffer
 * costs far more than the copy into it: measured on this machine, a new 1 MiB Buffer plus the
 * copy took 7.7-8 ms against 0.07-0.09 ms into a kept one (page faults on fresh memory, and
 * external-memory GCs that free it). The fast path answers before it returns, so one buffer serves every request.
 */
const FAST_VALUES_KEPT_BYTES_MAX = 16 * 1024 * 1024;

/** How a submitted request is answered. */
export interface SubmitOptions {
  /** The request came from another node (forwarded or replicated ops), counted apart in the metrics. */
  peer?: boolean;
  /**
   * `done` copies every value out of the request before it returns (the WebSocket connection
   * does; RESP and HTTP may render later, behind earlier answers). Only then may the fast path
   * put the values in its kept buffer, which the next request overwrites.
   */
  values_copied_in_done?: boolean;
}
const NO_SUBMIT_OPTIONS: SubmitOptions = {};

/** What the dispatcher needs to know about the node's clock (node/clock.ts). */
export interface ClockState {
  readonly synced: boolean;
}

const CLOCK_TRUSTED: ClockState = { synced: true };
/** resolveExpiry's answers that are not an expiry. */
const EXPIRY_INVALID = -2;
const EXPIRY_CLOCK_UNSYNCED = -3;

export interface DispatchLimits {
  key_bytes_max: number;
  value_bytes_max: number;
  response_bytes_max: number;
  test_hooks: boolean;
}


export class Dispatcher {
  private readonly partitions: Partition[];
  private readonly limits: DispatchLimits;
  private readonly statsValue: () => Buffer;
  private readonly router: OpRouter | null;
  /** router.routes, read once: a node is clustered or not for its whole life. */
  private readonly routing: boolean;
  private readonly touched: Uint8Array;
  /** The one op view passed down for every op in turn (engine/op-ref.ts). */
  private readonly ref = new OpRef();
  private readonly fast_hashes = new Uint32Array(FAST_PATH_OPS_MAX);
  private readonly fast_refs = new Uint32Array(FAST_PATH_OPS_MAX);
  /** fastReads' values, reused: their request is answered (copied into its frame) before fastReads returns. */
  private fast_values = Buffer.allocUnsafe(0);
  private readonly fast_key_offsets = new Uint32Array(FAST_PATH_OPS_MAX);
  /** Partitions whose table the fast path holds now (1 = held), and their list. */
  private readonly fast_owned: Uint8Array;
  private readonly fast_owned_list: number[] = [];

  private flush_scheduled = false;
  /**
   * Packets go out once per event-loop turn, after every frame that turn read has been
   * routed: one message per worker per turn instead of one per request. Waking a worker
   * costs the main thread ~6 us of postMessage plus, on a busy 2-core box, often its CPU.
   */
  private readonly flushTouched = (): void => {
    this.flush_scheduled = false;
    for (let p = 0; p < this.partitions.length; p++) {
      if (this.touched[p] === 0) continue;
      this.touched[p] = 0;
      this.partitions[p]!.flush();
    }
  };

  /** Ops and latency, counted once per answered request; null with --metrics off (metrics/request-metrics.ts). */
  private readonly metrics: RequestMetrics | null;
  private readonly clock: ClockState;
  /**
   * Decodes compressed GET results for requests that did not announce their codec (`ac`): RESP,
   * HTTP, old clients. Set by the server; without one (engine tests) nothing stored is encoded.
   */
  value_decoder: ValueDecoder | null = null;

  constructor(partitions: Partition[], limits: DispatchLimits, statsValue: () => Buffer, router: OpRouter | null = null, metrics: RequestMetrics | null = null, clock: ClockState = CLOCK_TRUSTED) {
    this.clock = clock;
    this.partitions = partitions;
    this.metrics = metrics;
    this.router = router;
    this.routing = router !== null && router.routes;
    this.limits = limits;
    this.statsValue = statsValue;
    this.touched = new Uint8Array(partitions.length);
    this.fast_owned = new Uint8Array(partitions.length);
  }

  /** See SubmitOptions. */
  submit(batch: RequestBatch, frame_bytes: number, done: RequestDone, options: SubmitOptions = NO_SUBMIT_OPTIONS): PendingRequest {
    const peer = options.peer === true;
    const op_count = batch.op.length;
    const router = this.router;
    const metrics = this.metrics;
    const routing = this.routing;
    const started_ms = metrics === null ? 0 : performance.now();
    // Checked when the answer leaves, not only when ops are routed: an op taken just before
    // the lease fence ran out must not be reported done after it (docs/REPLICATION.md R2).
    // The metrics count the outcome the client gets, so after that check.
    const deliver: RequestDone = metrics === null ? done : (request) => {
      metrics.record(batch.op, request.status, peer, (performance.now() - started_ms) / 1000);
      done(request);
    };
    const accept_codecs = batch.accept_codecs ?? 0;
    const fenced: RequestDone = (request) => {
      if (routing && !router!.answerable()) request.failOutcomes(Status.NODE_DOWN, (i) => isDataOp(batch.op[i]!));
      deliver(request);
    };
    const finish: RequestDone = (request) => {
      if (routing && !router!.answerable()) request.failOutcomes(Status.NODE_DOWN, (i) => isDataOp(batch.op[i]!));
      // Stored compressed values go out as stored only to a client that decodes them. After the
      // decode the fence is checked again: the answer leaves later than the check above (R2).
      if (request.value_codec !== null && !request.cancelled && this.decodeResults(request, accept_codecs, fenced)) return;
      deliver(request);
    };
    const request = new PendingRequest(batch.id, op_count, frame_bytes, this.limits.response_bytes_max, finish);
    if (op_count === 0) {
      request.completeIfEmpty();
      return request;
    }
    const has_expiry = batch.expiry !== undefined || batch.ttl !== undefined;
    const value_codec = batch.value_codec;
    if (op_count <= FAST_PATH_OPS_MAX && !has_expiry && value_codec === undefined && this.tryFastPath(batch, request, options.values_copied_in_done === true)) return request;
    const now_ms = Date.now();

    const partition_count = this.partitions.length;
    const { key_bytes_max, value_bytes_max } = this.limits;
    let key_offset = 0;
    let value_offset = 0;
    for (let i = 0; i < op_count; i++) {
      const op = batch.op[i]!;
      const key_length = batch.key_lengths[i]!;
      const value_length = batch.value_lengths[i]!;
      const this_key = key_offset;
      const this_value = value_offset;
      key_offset += key_length;
      value_offset += value_length;
      if (isDataOp(op)) {
        const expiry_ms = has_expiry || op >= Op.EXPIRE ? this.resolveExpiry(batch, i, op, now_ms) : 0;
        const codec = value_codec === undefined ? 0 : value_codec[i]!;
        if (key_length > key_bytes_max) request.settle(i, Status.KEY_TOO_LARGE);
        else if (isPutOp(op) && value_length > value_bytes_max) request.settle(i, Status.VALUE_TOO_LARGE);
        else if (!isPutOp(op) && value_length !== 0) request.settle(i, Status.BAD_OP);
        // A codec id only on a plain PUT, and only one this node can decode for plain clients.
        else if (codec !== 0 && (op !== Op.PUT || !isKnownValueCodec(codec))) request.settle(i, Status.BAD_OP);
        else if (expiry_ms === EXPIRY_INVALID) request.settle(i, Status.BAD_EXPIRY);
        else if (expiry_ms === EXPIRY_CLOCK_UNSYNCED) request.settle(i, Status.CLOCK_UNSYNCED);
        else {
          const hash = murmur3_x86_32(batch.keys, this_key, key_length, KEY_HASH_SEED);
          const ref = this.ref.set(request, i, op, hash, batch.keys, this_key, key_length, batch.values, this_value, value_length);
          ref.expiry_ms = expiry_ms;
          ref.value_codec = codec;
          if (this.routing && this.router!.route(ref, batch)) continue;
          const partition = hash % partition_count;
          this.partitions[partition]!.enqueue(ref);
          this.touched[partition] = 1;
        }
      } else if (this.router === null || !this.router.settleOp(request, i, op, batch, this_key, key_length, value_length)) {
        this.settleLocal(request, i, op, batch.keys, this_key, key_length, value_length);
      }
    }
    if (!this.flush_scheduled) {
      this.flush_scheduled = true;
      setImmediate(this.flushTouched);
    }
    return request;
  }

  /**
   * Decodes the results stored with a codec the request did not announce (`accept_codecs`), in
   * the node's codec pool, then calls `deliver`. False (nothing to do, deliver now) when
   * every encoded result may go as it is. A value that does not decode answers VALUE_CORRUPT;
   * one that decodes past value_bytes_max does too (it cannot have been stored plain).
   */
  private decodeResults(request: PendingRequest, accept_codecs: number, deliver: RequestDone): boolean {
    const codecs = request.value_codec!;
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < request.op_count; i++) {
      const codec = codecs[i]!;
      if (codec === 0 || (accept_codecs & (1 << codec)) !== 0 || request.status[i] !== Status.OK) continue;
      const decoder = this.value_decoder;
      if (decoder === null) {
        request.replaceValue(i, null, Status.VALUE_CORRUPT);
        continue;
      }
      // A copy: the source buffer is the worker's reply, which other ops still read from.
      const bytes = new Uint8Array(request.valueView(i));
      jobs.push(decoder.decode(codec, bytes, this.limits.value_bytes_max).then((decoded) => {
        if ('bytes' in decoded) request.replaceValue(i, decoded.bytes);
        else request.replaceValue(i, null, Status.VALUE_CORRUPT);
      }));
    }
    if (jobs.length === 0) return false;
    void Promise.all(jobs).then(() => deliver(request), (error: unknown) => {
      // A decoder bug, not a bad value: answer INTERNAL for what is left rather than never answer.
      for (let i = 0; i < request.op_count; i++) if (codecs[i] !== 0) request.replaceValue(i, null, Status.INTERNAL);
      void error;
      deliver(request);
    });
    return true;
  }

  /**
   * The absolute expiry op `index` carries (0 none, EXPIRY_KEEP on a PUT), from its `xp` or its
   * `tl` (relative, turned absolute with this node's clock now), or EXPIRY_INVALID /
   * EXPIRY_CLOCK_UNSYNCED. Stream frames (`mg`) carry the primary's decisions and are taken
   * whatever this node's clock says.
   */
  private resolveExpiry(batch: RequestBatch, index: number, op: number, now_ms: number): number {
    const xp = batch.expiry?.[index] ?? 0;
    const tl = batch.ttl?.[index] ?? 0;
    if (!Number.isSafeInteger(xp) || !Number.isSafeInteger(tl) || xp < EXPIRY_KEEP || xp > EXPIRY_MS_MAX || tl < 0 || tl > EXPIRY_MS_MAX - now_ms) return EXPIRY_INVALID;
    if (xp !== 0 && tl !== 0) return EXPIRY_INVALID;
    if (xp === EXPIRY_KEEP && !isPutOp(op)) return EXPIRY_INVALID;
    const expiry_ms = xp !== 0 ? xp : tl !== 0 ? now_ms + tl : 0;
    // GET_EXPIRE takes 0 (remove the expiry, GETEX PERSIST) or a time, as EXPIRE takes a time.
    if (op === Op.EXPIRE ? expiry_ms <= 0 : !isPutOp(op) && op !== Op.GET_EXPIRE && expiry_ms !== 0) return EXPIRY_INVALID;
    const timed = expiry_ms !== 0 || op === Op.EXPIRE || op === Op.PERSIST || op === Op.TTL || op === Op.GET_EXPIRE;
    if (timed && !this.clock.synced && batch.migrate !== true) return EXPIRY_CLOCK_UNSYNCED;
    return expiry_ms;
  }

  /** Ops the main thread answers without a partition. */
  private settleLocal(request: PendingRequest, index: number, op: number, keys: Uint8Array, key_offset: number, key_length: number, value_length: number): void {
    if (value_length !== 0) {
      request.settle(index, Status.BAD_OP);
    } else if (op === Op.PING) {
      request.settle(index, Status.OK);
    } else if (op === Op.STATS) {
      const value = this.statsValue();
      request.settleValue(index, request.addSource(value), 0, value.length);
    } else if (op === Op.DEBUG_KILL_WORKER && this.limits.test_hooks) {
      const target = Number(Buffer.from(keys.subarray(key_offset, key_offset + key_length)).toString('latin1'));
      const partition = Number.isInteger(target) ? this.partitions[target] : undefined;
      if (partition === undefined) {
        request.settle(index, Status.BAD_OP);
      } else {
        partition.kill();
        request.settle(index, Status.OK);
      }
    } else {
      request.settle(index, Status.UNKNOWN_OP);
    }
  }

  /**
   * Answers a small request here, from the shared tables, if every partition it touches is idle
   * and lets the main thread take its table (Partition.acquireTable). Any op the fast path does
   * not handle (a limit error, a non-data op, a key routed elsewhere, a write where writes must
   * go through the worker) sends the whole request the normal way, so errors and order are the
   * same on both paths.
   */
  private tryFastPath(batch: RequestBatch, request: PendingRequest, values_copied_in_done: boolean): boolean {
    const op_count = batch.op.length;
    const partition_count = this.partitions.length;
    const { key_bytes_max, value_bytes_max } = this.limits;
    let key_offset = 0;
    let writes = 0;
    for (let i = 0; i < op_count; i++) {
      const op = batch.op[i]!;
      const key_length = batch.key_lengths[i]!;
      const value_length = batch.value_lengths[i]!;
      if (key_length > key_bytes_max) return false;
      if (op === Op.PUT) {
        if (value_length > value_bytes_max) return false;
        writes++;
      } else if (op === Op.DELETE) {
        if (value_length !== 0) return false;
        writes++;
      } else if (op !== Op.GET || value_length !== 0) {
        return false;
      }
      const hash = murmur3_x86_32(batch.keys, key_offset, key_length, KEY_HASH_SEED);
      if (this.routing && (batch.migrate === true || !this.router!.isLocal(hash))) return false;
      const partition = this.partitions[hash % partition_count]!;
      if (!partition.isIdle() || (op !== Op.GET && !partition.main_thread_writable)) return false;
      this.fast_hashes[i] = hash;
      this.fast_key_offsets[i] = key_offset;
      key_offset += key_length;
    }
    if (!this.acquireTables(op_count)) return false;
    try {
      if (writes === 0) this.fastReads(batch, request, values_copied_in_done);
      else this.fastMixed(batch, request);
    } finally {
      this.releaseTables();
    }
    return true;
  }

  /** Takes the tables of the partitions the fast ops touch; all or none. */
  private acquireTables(op_count: number): boolean {
    const partition_count = this.partitions.length;
    for (let i = 0; i < op_count; i++) {
      const p = this.fast_hashes[i]! % partition_count;
      if (this.fast_owned[p] === 1) continue;
      if (!this.partitions[p]!.acquireTable()) {
        this.releaseTables();
        return false;
      }
      this.fast_owned[p] = 1;
      this.fast_owned_list.push(p);
    }
    return true;
  }

  private releaseTables(): void {
    for (const p of this.fast_owned_list) {
      this.fast_owned[p] = 0;
      this.partitions[p]!.releaseTable();
    }
    this.fast_owned_list.length = 0;
  }

  /** Only GETs: every value is copied into one buffer. */
  private fastReads(batch: RequestBatch, request: PendingRequest, values_copied_in_done: boolean): void {
    const op_count = batch.op.length;
    const partition_count = this.partitions.length;
    let total_bytes = 0;
    let encoded = false;
    const now_ms = Date.now();
    for (let i = 0; i < op_count; i++) {
      const partition = this.partitions[this.fast_hashes[i]! % partition_count]!;
      let ref = partition.table.find(this.fast_hashes[i]!, batch.keys, this.fast_key_offsets[i]!, batch.key_lengths[i]!);
      // An expired key is never returned; its worker deletes it (this thread only reads the table).
      if (ref !== 0) {
        const expiry_ms = partition.table.expiry(ref);
        if (expiry_ms > 0 && expiry_ms <= now_ms) ref = 0;
      }
      this.fast_refs[i] = ref;
      if (ref !== 0) total_bytes += partition.table.valueLength(ref);
      if (ref !== 0 && partition.table.valueFlags(ref) !== 0) encoded = true;
    }
    // A compressed value may be decoded for its client before the answer leaves (decodeResults,
    // asynchronous): the other values must then outlive this call, so not in the kept buffer.
    const kept = values_copied_in_done && !encoded && total_bytes <= FAST_VALUES_KEPT_BYTES_MAX;
    const values = kept ? this.keptValuesBuffer(total_bytes) : Buffer.allocUnsafe(total_bytes);
    const source = request.addSource(values);
    let position = 0;
    for (let i = 0; i < op_count; i++) {
      const partition = this.partitions[this.fast_hashes[i]! % partition_count]!;
      const ref = this.fast_refs[i]!;
      partition.main_thread_gets++;
      if (ref === 0) {
        request.settle(i, Status.NOT_FOUND);
        continue;
      }
      partition.main_thread_hits++;
      const length = partition.table.valueLength(ref);
      partition.table.copyValue(ref, values, position);
      request.settleValue(i, source, position, length, partition.table.valueFlags(ref));
      position += length;
    }
    // The kept buffer is overwritten by the next request: this one must have been answered.
    if (kept && (!request.settled || request.held)) throw new Error(`fast path invariant: request ${request.id} was not answered before its values buffer is reused`);
  }

  private keptValuesBuffer(bytes: number): Buffer {
    if (this.fast_values.length < bytes) this.fast_values = Buffer.allocUnsafe(Math.min(FAST_VALUES_KEPT_BYTES_MAX, Math.max(bytes, 2 * this.fast_values.length)));
    return this.fast_values;
  }

  /**
   * Writes, and maybe GETs, applied in request order exactly as the worker would apply them
   * (workers/partition-worker.ts), counted in the worker's own counters.
   */
  private fastMixed(batch: RequestBatch, request: PendingRequest): void {
    const op_count = batch.op.length;
    const partition_count = this.partitions.length;
    const now_ms = Date.now();
    let value_offset = 0;
    for (let i = 0; i < op_count; i++) {
      const op = batch.op[i]!;
      const hash = this.fast_hashes[i]!;
      const key_offset = this.fast_key_offsets[i]!;
      const key_length = batch.key_lengths[i]!;
      const value_length = batch.value_lengths[i]!;
      const this_value = value_offset;
      value_offset += value_length;
      const partition = this.partitions[hash % partition_count]!;
      const table = partition.table;
      if (op === Op.GET) {
        partition.main_thread_gets++;
        const ref = table.find(hash, batch.keys, key_offset, key_length);
        const expiry_ms = ref === 0 ? 0 : table.expiry(ref);
        // An expired key is never returned (the worker's active expiry deletes it later).
        if (ref === 0 || (expiry_ms > 0 && expiry_ms <= now_ms)) {
          request.settle(i, Status.NOT_FOUND);
          continue;
        }
        partition.main_thread_hits++;
        const length = table.valueLength(ref);
        const value = Buffer.allocUnsafe(length);
        table.copyValue(ref, value, 0);
        request.settleValue(i, request.addSource(value), 0, length, table.valueFlags(ref));
        continue;
      }
      request.settle(i, op === Op.PUT
        ? partition.putOnMain(hash, batch.keys, key_offset, key_length, batch.values, this_value, value_length)
        : partition.deleteOnMain(hash, batch.keys, key_offset, key_length, now_ms));
    }
  }
}

function isDataOp(op: number): boolean {
  return op === Op.GET || op === Op.PUT || op === Op.DELETE || op === Op.EXPIRE || op === Op.PERSIST || op === Op.TTL || isConditionalOp(op);
}

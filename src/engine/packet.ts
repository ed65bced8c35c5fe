/**
 * The byte layout of the messages between the main thread and a partition worker.
 *
 * The main thread hands a worker its share of one or more client requests as ONE ArrayBuffer,
 * transferred (not copied, not cloned): structured clone of per-op objects measured 1.4k
 * batches/s here against 25k+ for transferred bytes (shared/MEASUREMENTS.md). The worker sends
 * back a reply buffer and the request buffer itself, which the main thread reuses.
 *
 * Request packet (all little-endian, offsets in bytes):
 *   [0]   u32 op_count
 *   [4]   u32 ops_capacity           sizes the column arrays below
 *   [8]   u32 data_bytes             bytes used in the data area
 *   [12]  u32 reserved
 *   [16]  u8  op[ops_capacity]        padded to a multiple of 8
 *   then  u8  value_codec[ops_capacity]  the PUT value's codec id (0 raw; protocol/value-codec.ts),
 *                                     padded to a multiple of 8
 *   then  f64 expiry[ops_capacity]    absolute expiry in ms since the epoch (0 none, -1 keep on PUT);
 *                                     the worker writes back what it applied (a kept expiry
 *                                     resolved), so replication streams carry absolute times
 *   then  u32 hash[ops_capacity]      murmur3 of each key, so the worker never rehashes
 *   then  u32 key_length[ops_capacity]
 *   then  u32 value_length[ops_capacity]
 *   then  data: for each op, its key bytes then its value bytes
 *
 * Reply packet:
 *   [0]   u32 op_count, [4] u32 ops_capacity, [8] u32 data_bytes, [12] reserved
 *   [16]  u8  status[ops_capacity]    padded to a multiple of 4
 *   then  u8  value_codec[ops_capacity]  a GET result's codec id as stored, padded to a multiple of 4
 *   then  u32 value_length[ops_capacity]
 *   then  data: the values of the ops that return one, in op order
 */
import type { PersistenceOptions } from '../persistence/options.js';

export const PACKET_HEADER_BYTES = 16;
export const HEADER_OP_COUNT = 0;
export const HEADER_OPS_CAPACITY = 1;
export const HEADER_DATA_BYTES = 2;

function align4(n: number): number {
  return (n + 3) & ~3;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Views over a request packet's columns. */
export class RequestPacket {
  readonly buffer: ArrayBuffer;
  readonly header: Uint32Array;
  readonly op: Uint8Array;
  readonly value_codec: Uint8Array;
  readonly expiry: Float64Array;
  readonly hash: Uint32Array;
  readonly key_length: Uint32Array;
  readonly value_length: Uint32Array;
  readonly data: Uint8Array;
  readonly ops_capacity: number;

  static byteLength(ops_capacity: number, data_bytes: number): number {
    return PACKET_HEADER_BYTES + 2 * align8(ops_capacity) + 20 * ops_capacity + data_bytes;
  }

  static create(ops_capacity: number, data_bytes: number): RequestPacket {
    const buffer = new ArrayBuffer(RequestPacket.byteLength(ops_capacity, data_bytes));
    new Uint32Array(buffer, 0, 4)[HEADER_OPS_CAPACITY] = ops_capacity;
    return new RequestPacket(buffer);
  }

  constructor(buffer: ArrayBuffer) {
    this.buffer = buffer;
    this.header = new Uint32Array(buffer, 0, 4);
    const capacity = this.header[HEADER_OPS_CAPACITY]!;
    this.ops_capacity = capacity;
    let offset = PACKET_HEADER_BYTES;
    this.op = new Uint8Array(buffer, offset, capacity);
    offset += align8(capacity);
    this.value_codec = new Uint8Array(buffer, offset, capacity);
    offset += align8(capacity);
    this.expiry = new Float64Array(buffer, offset, capacity);
    offset += 8 * capacity;
    this.hash = new Uint32Array(buffer, offset, capacity);
    offset += 4 * capacity;
    this.key_length = new Uint32Array(buffer, offset, capacity);
    offset += 4 * capacity;
    this.value_length = new Uint32Array(buffer, offset, capacity);
    offset += 4 * capacity;
    this.data = new Uint8Array(buffer, offset);
  }

  get op_count(): number {
    return this.header[HEADER_OP_COUNT]!;
  }
  set op_count(count: number) {
    this.header[HEADER_OP_COUNT] = count;
  }
  get data_bytes(): number {
    return this.header[HEADER_DATA_BYTES]!;
  }
  set data_bytes(count: number) {
    this.header[HEADER_DATA_BYTES] = count;
  }
}

/** Views over a reply packet's columns. */
export class ReplyPacket {
  readonly buffer: ArrayBuffer;
  readonly header: Uint32Array;
  readonly status: Uint8Array;
  readonly value_codec: Uint8Array;
  readonly value_length: Uint32Array;
  readonly data: Uint8Array;

  static byteLength(ops_capacity: number, data_bytes: number): number {
    return PACKET_HEADER_BYTES + 2 * align4(ops_capacity) + 4 * ops_capacity + data_bytes;
  }

  static create(ops_capacity: number, data_bytes: number): ReplyPacket {
    const buffer = new ArrayBuffer(ReplyPacket.byteLength(ops_capacity, data_bytes));
    new Uint32Array(buffer, 0, 4)[HEADER_OPS_CAPACITY] = ops_capacity;
    return new ReplyPacket(buffer);
  }

  constructor(buffer: ArrayBuffer) {
    this.buffer = buffer;
    this.header = new Uint32Array(buffer, 0, 4);
    const capacity = this.header[HEADER_OPS_CAPACITY]!;
    let offset = PACKET_HEADER_BYTES;
    this.status = new Uint8Array(buffer, offset, capacity);
    offset += align4(capacity);
    this.value_codec = new Uint8Array(buffer, offset, capacity);
    offset += align4(capacity);
    this.value_length = new Uint32Array(buffer, offset, capacity);
    offset += 4 * capacity;
    this.data = new Uint8Array(buffer, offset);
  }

  get op_count(): number {
    return this.header[HEADER_OP_COUNT]!;
  }
  get data_bytes(): number {
    return this.header[HEADER_DATA_BYTES]!;
  }
}

/** Messages between the main thread and a partition worker. */
export interface WorkerInit {
  table_memory: SharedArrayBuffer;
  stats_memory: SharedArrayBuffer;
  /** The table's ownership word (table-owner.ts): the worker holds it while it touches the table. */
  owner_memory: SharedArrayBuffer;
  partition: number;
  /** Result bytes one reply packet may carry; GETs past it fail with RESPONSE_TOO_LARGE. */
  reply_bytes_max: number;
  /** Set with --data-dir: the worker logs every write (src/persistence/). */
  persistence?: PersistenceOptions;
  /**
   * True on a single node: the worker deletes expired keys itself (on access and by active
   * expiry). False in a cluster, where only a key's primary decides expiry and replicates the
   * delete (docs/REPLICATION.md, "Expiry"): the worker then only hides expired keys from reads.
   */
  expire_locally: boolean;
}
export type WorkerToMain =
  /** `reapplied_ops`: ops of a batch the previous worker logged but had not finished applying, re-applied before this message (-1: none). */
  | { kind: 'ready'; reapplied_ops: number }
  /** Something the operator should see (e.g. a write held back until the disk takes its ABORT record). */
  | { kind: 'warning'; message: string }
  | { kind: 'reply'; reply: ArrayBuffer; request: ArrayBuffer }
  /**
   * In a cluster (expire_locally off): keys this worker's active expiry found expired, for the
   * main thread to delete where this node is the key's primary (Op.DELETE_EXPIRED). At most
   * EXPIRED_REPORT_KEYS_MAX keys, as one byte string and their lengths and hashes.
   */
  | { kind: 'expired'; keys: Uint8Array; key_lengths: Uint32Array; hashes: Uint32Array }
  /**
   * With --data-dir: a snapshot record for the node's background pool to deflate
   * (docs/PERSISTENCE.md, "Compressed snapshot records"); `bytes` is moved, and answered by a
   * MainToWorker 'deflated' with the same id.
   */
  | { kind: 'deflate'; id: number; bytes: Uint8Array };

/** What the main thread posts to a worker: a request packet's buffer, or the answer to a 'deflate'. */
export type MainToWorker =
  | ArrayBuffer
  /** The deflated record, or null: write it raw (it did not shrink by an eighth, or the pool is busy or closed). */
  | { kind: 'deflated'; id: number; bytes: Uint8Array | null };

/** The main thread's background pool as a partition sees it (the node's CodecPool). */
export interface BackgroundDeflate {
  /** Deflated `bytes` (moved to the pool), or null to keep them raw. Never rejects. */
  deflateRecord(bytes: Uint8Array): Promise<Uint8Array | null>;
}

/** Keys one 'expired' report carries at most. */
export const EXPIRED_REPORT_KEYS_MAX = 256;

/** Per-worker counters in a Float64Array over a SharedArrayBuffer; the worker writes, main reads. */
export const WorkerCounter = {
  BATCHES: 0,
  GETS: 1,
  GET_HITS: 2,
  PUTS: 3,
  DELETES: 4,
  OUT_OF_MEMORY: 5,
  /** Not a statistic: where the worker parks the result of HashTable.prefetch(). */
  PREFETCH_SINK: 6,
  // Persistence (src/persistence/partition-log.ts); all 0 without --data-dir.
  /** Not a statistic: generation of the log the worker appends to; a restarted worker reopens it. */
  LOG_GENERATION: 7,
  /** Not statistics: valid bytes of logs of even / odd generation. Set before LOG_GENERATION, so one store switches both. */
  LOG_BYTES_EVEN: 8,
  LOG_BYTES_ODD: 9,
  DISK_BYTES: 10,
  DISK_BYTES_WRITTEN: 11,
  LOGGED_OPS: 12,
  LOGGED_PAYLOAD_BYTES: 13,
  DISK_ERRORS: 14,
  FSYNCS: 15,
  COMPACTIONS: 16,
  /**
   * Not statistics: log-then-apply bookkeeping that outlives a killed worker (the memory is the
   * main thread's). A packet's BATCH record is announced here (its byte range in the current
   * log generation, then BATCHES_LOGGED = BATCHES_APPLIED + 1) before it is written; it is
   * in the log only once LOG_BYTES_* covers LAST_BATCH_END. BATCHES_APPLIED catches up after
   * the whole packet is applied (and its ABORT, if any, written). A new worker that finds
   * BATCHES_LOGGED > BATCHES_APPLIED with the record in the log re-applies it before 'ready'
   * (PartitionLog.finishInterruptedBatch), so memory matches the log before anything is served.
   */
  BATCHES_LOGGED: 17,
  BATCHES_APPLIED: 18,
  LAST_BATCH_START: 19,
  LAST_BATCH_END: 20,
  /** Seconds spent in fdatasync of logs (all policies), and its histogram over FSYNC_BOUNDS_S. */
  FSYNC_SECONDS: 21,
  /** First of FSYNC_BOUNDS_S.length + 1 per-bucket counts (the last: above every bound). */
  FSYNC_BUCKETS: 22,
  /** Keys deleted because their expiry passed: on access (lazy) and by active expiry. */
  EXPIRED_KEYS: 22 + 13,
  /** Active-expiry steps run. */
  EXPIRE_STEPS: 22 + 14,
  COUNT: 22 + 15,
} as const;

/** fsync latency bucket bounds in seconds (SD cards take 1-100 ms, SSDs well under 1 ms). */
export const FSYNC_BOUNDS_S: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Adds one fsync that took `seconds` to a partition's counters (called by its worker). */
export function recordFsync(counters: Float64Array, seconds: number): void {
  let index = 0;
  while (index < FSYNC_BOUNDS_S.length && seconds > FSYNC_BOUNDS_S[index]!) index++;
  counters[WorkerCounter.FSYNC_BUCKETS + index]! += 1;
  counters[WorkerCounter.FSYNC_SECONDS]! += seconds;
  counters[WorkerCounter.FSYNCS]! += 1;
}

/**
 * One partition: its table memory, its worker thread, and the queue of ops on their way to it.
 *
 * The main thread owns the SharedArrayBuffers, so a worker that dies is replaced by a new one
 * on the same memory; ops that were inside the dead worker settle with WORKER_RESTARTED, ops
 * still queued here go to the replacement. Ops are packed into request packets
 * (packet.ts); at most PACKETS_INFLIGHT_MAX are inside the worker at once, and the rest keep
 * filling the next packet, so a busy worker gets bigger batches rather than more messages.
 */
import { Worker } from 'node:worker_threads';
import { HashTable, PUT_OK, PUT_OUT_OF_MEMORY, createTableMemory } from '../hashmap/index.js';
import { Status, isConditionalOp } from '../protocol/constants.js';
import { copyBytes } from './copy-bytes.js';
import type { PersistenceOptions } from '../persistence/options.js';
import { ReplyPacket, RequestPacket, WorkerCounter, type BackgroundDeflate, type MainToWorker, type WorkerInit, type WorkerToMain } from './packet.js';
import type { OpRef } from './op-ref.js';
import { Owner, TABLE_OWNER_BYTES, TableOwner } from './table-owner.js';
import type { PendingRequest } from './pending-request.js';

/** Ops per standard packet, and its data area; a bigger single op gets a packet of its own size. */
const PACKET_OPS_MAX = 4096;
const PACKET_DATA_BYTES = 1024 * 1024;
/** One packet executing and one waiting in the worker's port keeps it busy without queueing there. */
const PACKETS_INFLIGHT_MAX = 1;
/** Recycled standard packets kept per partition. */
const PACKET_POOL_MAX = 4;
/** A worker that dies more often than this is restarted after RESTART_BACKOFF_MS, not at once. */
const RESTARTS_PER_MINUTE_MAX = 10;
const RESTART_BACKOFF_MS = 1000;

const WORKER_URL = new URL('../../workers/partition-worker.js', import.meta.url);

interface PacketInFlight {
  packet: RequestPacket;
  owners: PendingRequest[];
  op_indices: Int32Array;
  /** Set when the packet is sent: its buffer is then transferred and its views read nothing. */
  op_count_sent: number;
}

export type Logger = (message: string) => void;

export class Partition {
  readonly index: number;
  readonly table_memory: SharedArrayBuffer;
  readonly counters: Float64Array;
  /** Main-thread view of the table, for reads while the worker is idle (see isIdle). */
  readonly table: HashTable;
  /** GETs the main thread answered itself, counted here because the worker never saw them. */
  main_thread_gets = 0;
  main_thread_hits = 0;
  /** PUTs and DELETEs the main thread applied itself (also counted in the worker's counters). */
  main_thread_writes = 0;
  /** Who may touch the table now: the worker, the main thread, or nobody (table-owner.ts). */
  readonly owner: TableOwner;
  restarts = 0;
  /** Cluster hook (src/cluster/replicator.ts, migration.ts): sees each executed packet, with the requests it answers, before its ops settle. Null when not clustered. */
  applied_hook: ((request: RequestPacket, reply: ReplyPacket, owners: readonly PendingRequest[], op_indices: Int32Array) => void) | null = null;
  /** Cluster hook: keys this partition's worker found expired (it deletes nothing itself in a cluster). */
  expired_hook: ((keys: Uint8Array, key_lengths: Uint32Array, hashes: Uint32Array) => void) | null = null;
  /** Ops ever enqueued here, and ever answered or lost by the worker: the cluster hand-off barrier compares them. */
  ops_enqueued_total = 0;
  ops_done_total = 0;
  /** Ops never executed because their client had gone before they reached the worker. */
  ops_dropped = 0;

  private readonly stats_memory: SharedArrayBuffer;
  private readonly owner_memory: SharedArrayBuffer;
  private readonly reply_bytes_max: number;
  private readonly log: Logger;
  private readonly persistence: PersistenceOptions | null;
  /** Deflates snapshot records for the worker's compactions; null: they are written raw. */
  private readonly background: BackgroundDeflate | null;
  private worker: Worker | null = null;
  private ready = false;
  private stopping = false;
  private filling: PacketInFlight | null = null;
  private readonly full: PacketInFlight[] = [];
  private readonly inflight: PacketInFlight[] = [];
  private readonly pool: ArrayBuffer[] = [];
  private restart_times_ms: number[] = [];
  private exited: Promise<void> = Promise.resolve();

  /** False in a cluster: see WorkerInit.expire_locally. Set before start(). */
  expire_locally = true;

  constructor(index: number, table_bytes: number, reply_bytes_max: number, log: Logger, persistence: PersistenceOptions | null = null, background: BackgroundDeflate | null = null) {
    this.index = index;
    this.persistence = persistence;
    this.background = background;
    this.reply_bytes_max = reply_bytes_max;
    this.table_memory = createTableMemory(table_bytes);
    this.stats_memory = new SharedArrayBuffer(WorkerCounter.COUNT * Float64Array.BYTES_PER_ELEMENT);
    this.counters = new Float64Array(this.stats_memory);
    this.table = new HashTable(this.table_memory);
    this.owner_memory = new SharedArrayBuffer(TABLE_OWNER_BYTES);
    this.owner = new TableOwner(this.owner_memory);
    this.log = log;
  }

  start(): void {
    const init: WorkerInit = {
      table_memory: this.table_memory, stats_memory: this.stats_memory, owner_memory: this.owner_memory, partition: this.index,
      reply_bytes_max: this.reply_bytes_max, expire_locally: this.expire_locally,
    };
    if (this.persistence !== null) init.persistence = this.persistence;
    const worker = new Worker(WORKER_URL, { workerData: init, name: `pikv-partition-${this.index}` });
    this.worker = worker;
    this.ready = false;
    let resolve_exit: () => void = () => {};
    this.exited = new Promise((resolve) => (resolve_exit = resolve));
    worker.on('message', (message: WorkerToMain) => this.onMessage(worker, message));
    worker.on('error', (error) => this.log(`partition ${this.index}: worker error: ${error.stack ?? error.message}`));
    worker.on('exit', (code) => {
      resolve_exit();
      this.onExit(worker, code);
    });
  }

  /** True when no op for this partition is queued or executing, so the main thread may read the table. */
  isIdle(): boolean {
    return this.ready && this.inflight.length === 0 && this.full.length === 0 && (this.filling === null || this.filling.packet.op_count === 0);
  }

  /**
   * True if the main thread may also apply writes here while the worker is idle: only when a
   * write needs nothing but the table. With --data-dir the worker must log it before it is
   * applied, and in a cluster the replicator and hand-off capture writes from the worker's
   * replies (applied_hook); both keep every write on the worker.
   */
  get main_thread_writable(): boolean {
    return this.persistence === null && this.applied_hook === null && this.expire_locally;
  }

  /**
   * Takes the table for the main thread: only while idle, and only if the worker does not hold
   * it. The caller must call releaseTable() in the same task, before anything is posted here.
   */
  acquireTable(): boolean {
    return this.isIdle() && this.owner.acquire(Owner.MAIN);
  }

  releaseTable(): void {
    this.owner.release(Owner.MAIN);
  }

  /** A PUT applied by the main thread, which holds the table (acquireTable); as the worker applies it. */
  putOnMain(hash: number, keys: Uint8Array, key_offset: number, key_length: number, values: Uint8Array, value_offset: number, value_length: number): number {
    this.assertMainHolds();
    this.main_thread_writes++;
    this.counters[WorkerCounter.PUTS]! += 1;
    const result = this.table.put(hash, keys, key_offset, key_length, values, value_offset, value_length);
    if (result === PUT_OK) return Status.OK;
    if (result === PUT_OUT_OF_MEMORY) {
      this.counters[WorkerCounter.OUT_OF_MEMORY]! += 1;
      return Status.OUT_OF_MEMORY;
    }
    // The dispatcher enforces key and value limits below the table's own, so this is a bug.
    return Status.INTERNAL;
  }

  /**
   * A DELETE applied by the main thread, which holds the table. A key whose expiry has passed
   * is deleted too but answers NOT_FOUND, as the worker's lazy expiry makes it answer.
   */
  deleteOnMain(hash: number, keys: Uint8Array, key_offset: number, key_length: number, now_ms: number): number {
    this.assertMainHolds();
    this.main_thread_writes++;
    this.counters[WorkerCounter.DELETES]! += 1;
    const ref = this.table.find(hash, keys, key_offset, key_length);
    if (ref === 0) return Status.NOT_FOUND;
    const expiry_ms = this.table.expiry(ref);
    this.table.delete(hash, keys, key_offset, key_length);
    if (expiry_ms > 0 && expiry_ms <= now_ms) {
      this.counters[WorkerCounter.EXPIRED_KEYS]! += 1;
      return Status.NOT_FOUND;
    }
    return Status.OK;
  }

  private assertMainHolds(): void {
    if (this.owner.holder !== Owner.MAIN || !this.main_thread_writable) throw new Error(`partition ${this.index}: table owner invariant: a main-thread write without holding the table`);
  }

  get ops_queued(): number {
    let total = this.filling?.packet.op_count ?? 0;
    for (const entry of this.full) total += entry.packet.op_count;
    return total;
  }

  /** Packets inside the worker now; 0 means the worker is not touching the table. */
  get packets_inflight(): number {
    return this.inflight.length;
  }

  /** Appends one op; key and value bytes are copied now, so the caller's frame may be dropped. */
  enqueue(ref: OpRef): void {
    const { op, hash, keys, key_offset, key_length, values, value_offset, value_length } = ref;
    const owner = ref.request;
    if (owner === null) throw new Error(`partition ${this.index}: an op without a request to answer`);
    const bytes = key_length + value_length;
    let entry = this.filling;
    if (entry !== null && (entry.packet.op_count === entry.packet.ops_capacity || entry.packet.data_bytes + bytes > entry.packet.data.length
      || (isConditionalOp(op) && holdsHash(entry.packet, hash)))) {
      // A conditional op is decided before its packet's other ops run (partition-worker.ts,
      // resolveConditionals), so no earlier op of its packet may touch its key: it starts a new packet.
      this.full.push(entry);
      entry = null;
    }
    if (entry === null) {
      entry = this.newPacket(bytes);
      this.filling = entry;
    }
    const packet = entry.packet;
    const position = packet.op_count;
    const data_offset = packet.data_bytes;
    packet.op[position] = op;
    packet.value_codec[position] = ref.value_codec;
    packet.expiry[position] = ref.expiry_ms;
    packet.hash[position] = hash;
    packet.key_length[position] = key_length;
    packet.value_length[position] = value_length;
    copyBytes(keys, key_offset, key_length, packet.data, data_offset);
    copyBytes(values, value_offset, value_length, packet.data, data_offset + key_length);
    packet.data_bytes = data_offset + bytes;
    packet.op_count = position + 1;
    this.ops_enqueued_total++;
    entry.owners.push(owner);
    entry.op_indices[position] = ref.index;
  }

  /** Sends what is queued, as far as the in-flight limit allows. */
  flush(): void {
    if (!this.ready || this.worker === null) return;
    while (this.inflight.length < PACKETS_INFLIGHT_MAX) {
      let entry = this.full.shift();
      if (entry === undefined) {
        if (this.filling === null || this.filling.packet.op_count === 0) return;
        entry = this.filling;
        this.filling = null;
      }
      if (!this.dropCancelled(entry)) continue;
      entry.op_count_sent = entry.packet.op_count;
      if (this.owner.holder === Owner.MAIN) throw new Error(`partition ${this.index}: table owner invariant: a packet was sent while the main thread held the table`);
      this.inflight.push(entry);
      this.worker.postMessage(entry.packet.buffer, [entry.packet.buffer]);
    }
  }

  /**
   * Removes the ops of requests whose client has gone (PendingRequest.cancel) from a packet
   * about to be sent, so nothing runs for a closed connection: a client that pipelined 20,000
   * GETs of 1 MiB and vanished used to keep the worker copying gigabytes nobody would read.
   * Keeps the order of the rest. Returns false when nothing is left to send.
   */
  private dropCancelled(entry: PacketInFlight): boolean {
    const packet = entry.packet;
    const owners = entry.owners;
    const op_count = packet.op_count;
    let kept = 0;
    let data_read = 0;
    let data_kept = 0;
    for (let i = 0; i < op_count; i++) {
      const bytes = packet.key_length[i]! + packet.value_length[i]!;
      if (!owners[i]!.cancelled) {
        if (kept !== i) {
          packet.op[kept] = packet.op[i]!;
          packet.value_codec[kept] = packet.value_codec[i]!;
          packet.expiry[kept] = packet.expiry[i]!;
          packet.hash[kept] = packet.hash[i]!;
          packet.key_length[kept] = packet.key_length[i]!;
          packet.value_length[kept] = packet.value_length[i]!;
          packet.data.copyWithin(data_kept, data_read, data_read + bytes);
          owners[kept] = owners[i]!;
          entry.op_indices[kept] = entry.op_indices[i]!;
        }
        kept++;
        data_kept += bytes;
      }
      data_read += bytes;
    }
    if (kept === op_count) return true;
    owners.length = kept;
    packet.op_count = kept;
    packet.data_bytes = data_kept;
    this.ops_done_total += op_count - kept;
    this.ops_dropped += op_count - kept;
    if (kept > 0) return true;
    if (packet.buffer.byteLength === RequestPacket.byteLength(PACKET_OPS_MAX, PACKET_DATA_BYTES) && this.pool.length < PACKET_POOL_MAX) {
      this.pool.push(packet.buffer);
    }
    return false;
  }

  /** Test hook: kills the worker thread wherever it is. */
  kill(): void {
    void this.worker?.terminate();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (worker !== null) {
      await worker.terminate();
      await this.exited;
    }
  }

  private newPacket(bytes: number): PacketInFlight {
    let packet: RequestPacket;
    const pooled = bytes <= PACKET_DATA_BYTES ? this.pool.pop() : undefined;
    if (pooled !== undefined) {
      packet = new RequestPacket(pooled);
      packet.op_count = 0;
      packet.data_bytes = 0;
    } else {
      packet = RequestPacket.create(PACKET_OPS_MAX, Math.max(PACKET_DATA_BYTES, bytes));
    }
    return { packet, owners: [], op_indices: new Int32Array(packet.ops_capacity), op_count_sent: 0 };
  }

  private onMessage(worker: Worker, message: WorkerToMain): void {
    if (message.kind === 'deflate') {
      void this.deflateFor(worker, message.id, message.bytes);
      return;
    }
    if (message.kind === 'warning') {
      this.log(message.message);
      return;
    }
    if (message.kind === 'expired') {
      this.expired_hook?.(message.keys, message.key_lengths, message.hashes);
      return;
    }
    if (message.kind === 'ready') {
      if (message.reapplied_ops >= 0) this.log(`partition ${this.index}: re-applied the ${message.reapplied_ops} ops of a batch the previous worker had logged but not finished applying`);
      this.ready = true;
      this.flush();
      return;
    }
    const entry = this.inflight.shift();
    if (entry === undefined) throw new Error(`partition ${this.index}: reply with no packet in flight`);
    const reply = new ReplyPacket(message.reply);
    if (reply.op_count !== entry.op_count_sent) throw new Error(`partition ${this.index}: reply has ${reply.op_count} ops, packet had ${entry.op_count_sent}`);
    this.ops_done_total += reply.op_count;
    // Before the pool takes the request buffer back and before any op settles (settling can route new requests).
    if (this.applied_hook !== null) this.applied_hook(new RequestPacket(message.request), reply, entry.owners, entry.op_indices);
    if (message.request.byteLength === RequestPacket.byteLength(PACKET_OPS_MAX, PACKET_DATA_BYTES) && this.pool.length < PACKET_POOL_MAX) {
      this.pool.push(message.request);
    }
    this.settleFromReply(entry, reply);
    this.flush();
  }

  /** Answers a worker's 'deflate' from the background pool; a worker that died meanwhile gets nothing (its compaction died with it). */
  private async deflateFor(worker: Worker, id: number, bytes: Uint8Array): Promise<void> {
    const deflated = this.background === null ? null : await this.background.deflateRecord(bytes);
    if (this.worker !== worker) return;
    const answer: MainToWorker = { kind: 'deflated', id, bytes: deflated };
    worker.postMessage(answer, deflated === null ? [] : [deflated.buffer as ArrayBuffer]);
  }

  private settleFromReply(entry: PacketInFlight, reply: ReplyPacket): void {
    const data = Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data_bytes);
    let source_owner: PendingRequest | null = null;
    let source_index = 0;
    let data_offset = 0;
    for (let i = 0; i < reply.op_count; i++) {
      const owner = entry.owners[i]!;
      const op_index = entry.op_indices[i]!;
      const status = reply.status[i]!;
      const length = reply.value_length[i]!;
      if (status === Status.OK && length > 0) {
        if (owner !== source_owner) {
          source_owner = owner;
          source_index = owner.addSource(data);
        }
        owner.settleValue(op_index, source_index, data_offset, length, reply.value_codec[i]!);
        data_offset += length;
      } else {
        owner.settle(op_index, status);
      }
    }
  }

  private onExit(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    this.worker = null;
    this.ready = false;
    // A worker killed while it held the table cannot give it back; its replacement takes it for recover().
    this.owner.releaseDead();
    if (this.stopping) return;
    const lost = this.inflight.splice(0);
    let ops_lost = 0;
    for (const entry of lost) {
      for (let i = 0; i < entry.op_count_sent; i++) entry.owners[i]!.settle(entry.op_indices[i]!, Status.WORKER_RESTARTED);
      ops_lost += entry.op_count_sent;
    }
    this.ops_done_total += ops_lost;
    this.restarts++;
    const now_ms = Date.now();
    this.restart_times_ms = this.restart_times_ms.filter((time_ms) => now_ms - time_ms < 60_000);
    this.restart_times_ms.push(now_ms);
    const delay_ms = this.restart_times_ms.length > RESTARTS_PER_MINUTE_MAX ? RESTART_BACKOFF_MS : 0;
    this.log(`partition ${this.index}: worker exited with code ${code}; ${ops_lost} in-flight ops failed with WORKER_RESTARTED; restarting on the same memory${delay_ms > 0 ? ` in ${delay_ms} ms` : ''}`);
    if (delay_ms > 0) setTimeout(() => this.stopping || this.start(), delay_ms).unref();
    else this.start();
  }
}

/** True if an op already in `packet` has this key hash (a conservative "touches the same key"). */
function holdsHash(packet: RequestPacket, hash: number): boolean {
  const hashes = packet.hash;
  for (let i = 0, count = packet.op_count; i < count; i++) if (hashes[i] === hash) return true;
  return false;
}

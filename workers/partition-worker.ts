/**
 * A partition worker: the only writer of one partition's hash table.
 *
 * The table lives in a SharedArrayBuffer that the main thread allocated and keeps, so when
 * this thread dies the main thread starts a new one on the same memory; `recover()` repairs
 * whatever a kill in mid-operation left half done. Work arrives as transferred request
 * packets (src/engine/packet.ts) and is executed in arrival order, which is what keeps ops on
 * one key in the order a connection sent them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HashTable, PREFETCH_OPS_MAX, PUT_OK, PUT_OUT_OF_MEMORY } from '../src/hashmap/index.js';
import { PartitionLog } from '../src/persistence/partition-log.js';
import { Op, Status } from '../src/protocol/constants.js';
import { HEADER_DATA_BYTES, HEADER_OP_COUNT, ReplyPacket, RequestPacket, WorkerCounter, type WorkerInit, type WorkerToMain } from '../src/engine/packet.js';
import { Owner, TableOwner } from '../src/engine/table-owner.js';

/** Migration slots moved per batch on top of the table's own per-write steps, so growth also finishes under read-mostly load. */
const MIGRATION_SLOTS_PER_BATCH = 256;
/** Reply data starts at this size and doubles as values are copied in. */
const REPLY_DATA_BYTES_INITIAL = 64 * 1024;

const port = parentPort;
if (port === null) throw new Error('partition-worker must run as a worker thread');
const init = workerData as WorkerInit;
const table = new HashTable(init.table_memory);
/**
 * The table's ownership word (src/engine/table-owner.ts). The main thread reset it when the
 * previous worker exited and does not touch the table before 'ready', so taking it here cannot
 * fail; it is held through recovery and given back just before 'ready'.
 */
const owner = new TableOwner(init.owner_memory);
if (!owner.acquire(Owner.WORKER)) throw new Error(`partition ${init.partition}: table owner invariant: the table is held by another thread at worker start`);
table.recover();
const counters = new Float64Array(init.stats_memory);
function warn(message: string): void {
  const warning: WorkerToMain = { kind: 'warning', message };
  port!.postMessage(warning);
}
/** With --data-dir: writes are logged before they are applied (src/persistence/partition-log.ts). */
const persistence = init.persistence === undefined ? null : new PartitionLog(init.persistence, init.partition, table, counters, warn);
/**
 * A predecessor killed mid-packet may have left logged ops unapplied: apply them before 'ready'
 * (the main thread reads the table only once this worker is ready and idle). Without
 * --data-dir there is no log to match, and its in-flight ops may stay partly applied.
 */
const reapplied_ops = persistence === null ? -1 : persistence.finishInterruptedBatch();

/** Keeps prefetch() loads observable so the JIT cannot drop them. */
let prefetch_sink = 0;

/**
 * A reply packet with room for at least `bytes_needed` of values, keeping the first
 * `bytes_used`. Values are copied from the table straight into the packet that is sent, so a
 * 1 MiB value is copied once here, not into a scratch buffer and again into the reply.
 */
function growReply(reply: ReplyPacket, op_count: number, bytes_used: number, bytes_needed: number): ReplyPacket {
  if (bytes_needed <= reply.data.length) return reply;
  const grown = ReplyPacket.create(op_count, Math.max(bytes_needed, reply.data.length * 2));
  grown.data.set(reply.data.subarray(0, bytes_used));
  return grown;
}

function execute(request: RequestPacket): ReplyPacket {
  const count = request.op_count;
  const status = new Uint8Array(count);
  const value_length = new Uint32Array(count);
  const data = request.data;
  let gets = 0, hits = 0, puts = 0, deletes = 0, out_of_memory = 0, puts_failed = 0;
  let data_offset = 0;
  let reply_bytes = 0;
  let reply = ReplyPacket.create(count, Math.min(REPLY_DATA_BYTES_INITIAL, count * 128));
  let prefetched_end = 0;
  // Log-then-apply: if the batch's writes could not be logged, none of them is applied.
  const log_failed = persistence !== null && !persistence.appendBatch(request);
  for (let i = 0; i < count; i++) {
    if (i === prefetched_end) {
      // Touch the slots and entries of the next chunk first, so their cache misses overlap.
      prefetched_end = Math.min(count, i + PREFETCH_OPS_MAX);
      prefetch_sink += table.prefetch(request.hash, i, prefetched_end);
    }
    const op = request.op[i]!;
    const hash = request.hash[i]!;
    const key_length = request.key_length[i]!;
    const key_offset = data_offset;
    const val_length = request.value_length[i]!;
    data_offset += key_length + val_length;
    if (op === Op.GET) {
      gets++;
      const ref = table.find(hash, data, key_offset, key_length);
      if (ref === 0) {
        status[i] = Status.NOT_FOUND;
        continue;
      }
      hits++;
      const length = table.valueLength(ref);
      if (reply_bytes + length > init.reply_bytes_max) {
        status[i] = Status.RESPONSE_TOO_LARGE;
        continue;
      }
      reply = growReply(reply, count, reply_bytes, reply_bytes + length);
      table.copyValue(ref, reply.data, reply_bytes);
      reply_bytes += length;
      value_length[i] = length;
    } else if (op === Op.PUT) {
      puts++;
      if (log_failed) {
        status[i] = Status.DISK_ERROR;
        continue;
      }
      const result = table.put(hash, data, key_offset, key_length, data, key_offset + key_length, val_length);
      if (result === PUT_OUT_OF_MEMORY) {
        status[i] = Status.OUT_OF_MEMORY;
        out_of_memory++;
        puts_failed++;
      } else if (result !== PUT_OK) {
        // The main thread enforces key and value limits below the table's own, so this is a bug.
        status[i] = Status.INTERNAL;
        puts_failed++;
      }
    } else if (op === Op.DELETE) {
      deletes++;
      if (log_failed) status[i] = Status.DISK_ERROR;
      else if (!table.delete(hash, data, key_offset, key_length)) status[i] = Status.NOT_FOUND;
    } else {
      status[i] = Status.UNKNOWN_OP;
    }
  }
  table.step(MIGRATION_SLOTS_PER_BATCH);
  if (persistence !== null) {
    // The failed puts are in the log: cancel them there before their error is answered.
    if (puts_failed > 0) persistence.abortFailedPuts(request, status);
    persistence.batchApplied();
    persistence.afterBatch();
  }
  counters[WorkerCounter.PREFETCH_SINK] = prefetch_sink;
  counters[WorkerCounter.BATCHES]! += 1;
  counters[WorkerCounter.GETS]! += gets;
  counters[WorkerCounter.GET_HITS]! += hits;
  counters[WorkerCounter.PUTS]! += puts;
  counters[WorkerCounter.DELETES]! += deletes;
  counters[WorkerCounter.OUT_OF_MEMORY]! += out_of_memory;

  reply.header[HEADER_OP_COUNT] = count;
  reply.header[HEADER_DATA_BYTES] = reply_bytes;
  reply.status.set(status);
  reply.value_length.set(value_length);
  return reply;
}

port.on('message', (buffer: ArrayBuffer) => {
  // The main thread gives the table back before it posts a packet, in the same task: it never
  // holds it while a packet is on its way here. If it does, the invariant is broken: crash
  // (the main thread answers the packet's ops WORKER_RESTARTED and starts a new worker).
  if (!owner.acquire(Owner.WORKER)) throw new Error(`partition ${init.partition}: table owner invariant: a packet arrived while the main thread held the table`);
  const request = new RequestPacket(buffer);
  const reply = execute(request);
  owner.release(Owner.WORKER);
  const message: WorkerToMain = { kind: 'reply', reply: reply.buffer, request: buffer };
  port.postMessage(message, [reply.buffer, buffer]);
});

owner.release(Owner.WORKER);
const ready: WorkerToMain = { kind: 'ready', reapplied_ops };
port.postMessage(ready);

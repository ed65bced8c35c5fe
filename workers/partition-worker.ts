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
import { HashTable, PREFETCH_OPS_MAX, PUT_NOT_FOUND, PUT_OK, PUT_OUT_OF_MEMORY } from '../src/hashmap/index.js';
import { PartitionLog } from '../src/persistence/partition-log.js';
import { EXPIRY_KEEP, Op, Status, isConditionalOp } from '../src/protocol/constants.js';
import { EXPIRED_REPORT_KEYS_MAX, HEADER_DATA_BYTES, HEADER_OP_COUNT, ReplyPacket, RequestPacket, WorkerCounter, type MainToWorker, type WorkerInit, type WorkerToMain } from '../src/engine/packet.js';
import { Owner, TableOwner } from '../src/engine/table-owner.js';
import { ExpiredKeys } from '../src/engine/expired-keys.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';
import { SCAN_ANSWER_HEADER_BYTES, ScanFlag, decodeScanRequest } from '../src/protocol/scan-codec.js';

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
// --- background deflate ---------------------------------------------------------------------
// Compaction's snapshot records go to the node's background pool (src/node/codec-pool.ts)
// through the main thread, one at a time per compaction; this thread serves packets meanwhile.
const deflate_waiting = new Map<number, (bytes: Uint8Array | null) => void>();
let deflate_next_id = 0;
function deflateInPool(payload: Uint8Array): Promise<Uint8Array | null> {
  const id = deflate_next_id++;
  const request: WorkerToMain = { kind: 'deflate', id, bytes: payload };
  return new Promise((resolve) => {
    deflate_waiting.set(id, resolve);
    port!.postMessage(request, [payload.buffer as ArrayBuffer]);
  });
}

/** With --data-dir: writes are logged before they are applied (src/persistence/partition-log.ts). */
const persistence = init.persistence === undefined ? null : new PartitionLog(init.persistence, init.partition, table, counters, warn, deflateInPool);
/**
 * A predecessor killed mid-packet may have left logged ops unapplied: apply them before 'ready'
 * (the main thread reads the table only once this worker is ready and idle). Without
 * --data-dir there is no log to match, and its in-flight ops may stay partly applied.
 */
const reapplied_ops = persistence === null ? -1 : persistence.finishInterruptedBatch();

/** Keeps prefetch() loads observable so the JIT cannot drop them. */
let prefetch_sink = 0;

// --- expiry ---------------------------------------------------------------------------------
// A key's expiry is an absolute time in ms since the epoch, compared with this thread's
// Date.now(), read once per packet so every op of a packet sees the same time. Only with
// expire_locally (a single node) does this worker delete expired keys: on access, before the
// packet's ops run, and by active expiry. Either way it logs the deletes first (with
// --data-dir), because whether a key had expired is a decision about the clock that a replay
// must not take again. In a cluster it only hides expired keys (docs/REPLICATION.md, "Expiry").

/** Slots one active-expiry step visits (per slot array): about 50 us. */
const EXPIRE_SLOTS_PER_STEP = 2048;
/** An active-expiry run stops after this long, and after a step that found few expired keys. */
const EXPIRE_RUN_BUDGET_MS = 4;
/** Runs while few keys expire: ten a second, as Redis's default hz. */
const EXPIRE_TICK_MS = 100;
/** A step whose finds are above this share of its live entries runs again at once (Redis: 10%). */
const EXPIRE_AGAIN_SHARE = 0.1;
const expire_locally = init.expire_locally;
const expired = new ExpiredKeys();
const expire_result = new Float64Array(3);
// Room for a step over the primary and an old array up to twice its size.
const expire_found = new Uint32Array(EXPIRE_SLOTS_PER_STEP * 3);
let expire_cursor = 0;
let expire_run_scheduled = false;

/** True if entry `ref` (non-zero) has an expiry at or before `now_ms`. */
function isExpired(ref: number, now_ms: number): boolean {
  const expiry_ms = table.expiry(ref);
  return expiry_ms > 0 && expiry_ms <= now_ms;
}

/** Logs (with --data-dir) then deletes the collected keys; false if they could not be logged (they stay, hidden). */
function deleteExpired(): boolean {
  if (expired.count === 0) return true;
  if (persistence !== null && !persistence.appendExpiredDeletes(expired.count, expired.hashes, expired.keys, expired.key_offsets, expired.key_lengths)) {
    expired.clear();
    return false;
  }
  for (let i = 0; i < expired.count; i++) table.delete(expired.hashes[i]!, expired.keys, expired.key_offsets[i]!, expired.key_lengths[i]!);
  counters[WorkerCounter.EXPIRED_KEYS]! += expired.count;
  expired.clear();
  return true;
}

/**
 * Before a packet runs (and before it is logged): deletes the keys its ops touch that have
 * already expired, so no op of the packet finds an expired entry (lazy expiry, Redis's
 * expireIfNeeded). Looks only when the table holds keys with an expiry.
 */
function expireTouchedKeys(request: RequestPacket, now_ms: number): void {
  if (!expire_locally || table.expiring_keys === 0) return;
  const data = request.data;
  let data_offset = 0;
  for (let i = 0; i < request.op_count; i++) {
    const key_length = request.key_length[i]!;
    const key_offset = data_offset;
    data_offset += key_length + request.value_length[i]!;
    const op = request.op[i]!;
    if (op < Op.GET || op > Op.TTL || (op > Op.DELETE && op < Op.EXPIRE)) continue;
    const ref = table.find(request.hash[i]!, data, key_offset, key_length);
    if (ref === 0 || !isExpired(ref, now_ms)) continue;
    const at = expired.add(request.hash[i]!, key_length);
    expired.keys.set(data.subarray(key_offset, key_offset + key_length), at);
  }
  deleteExpired();
}

/**
 * Before a packet runs (and before it is logged): the DELETE_EXPIRED ops a cluster primary sent
 * for keys this worker reported (expireSteps). Each key is deleted only if it has expired now: a
 * write since the report may have given it a new life. Marks the ones deleted. Logged first,
 * like every expiry delete.
 */
function expireAskedKeys(request: RequestPacket, now_ms: number, deleted: Uint8Array): void {
  const data = request.data;
  let data_offset = 0;
  let asked = 0;
  for (let i = 0; i < request.op_count; i++) {
    const key_length = request.key_length[i]!;
    const key_offset = data_offset;
    data_offset += key_length + request.value_length[i]!;
    if (request.op[i] !== Op.DELETE_EXPIRED) continue;
    const ref = table.find(request.hash[i]!, data, key_offset, key_length);
    if (ref === 0 || !isExpired(ref, now_ms)) continue;
    const at = expired.add(request.hash[i]!, key_length);
    expired.keys.set(data.subarray(key_offset, key_offset + key_length), at);
    deleted[i] = 1;
    asked++;
  }
  if (asked > 0 && !deleteExpired()) deleted.fill(0);
}

/** Sends the collected expired keys to the main thread instead of deleting them (a cluster: only a primary deletes). */
function reportExpired(): void {
  if (expired.count === 0) return;
  const count = Math.min(expired.count, EXPIRED_REPORT_KEYS_MAX);
  const key_lengths = expired.key_lengths.slice(0, count);
  const hashes = expired.hashes.slice(0, count);
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += key_lengths[i]!;
  const keys = expired.keys.slice(0, bytes);
  expired.clear();
  const message: WorkerToMain = { kind: 'expired', keys, key_lengths, hashes };
  port!.postMessage(message, [keys.buffer, key_lengths.buffer, hashes.buffer]);
}

/**
 * Active expiry (Redis's activeExpireCycle): steps of EXPIRE_SLOTS_PER_STEP slots, for at most
 * EXPIRE_RUN_BUDGET_MS, again at once while steps keep finding many expired keys. Each run is
 * one macrotask, so packets that arrive meanwhile are served between runs.
 */
function expireRun(): void {
  expire_run_scheduled = false;
  if (table.expiring_keys === 0) return;
  // Runs between packets, so it must take the table like a packet does: the main thread may be
  // in it for a moment (a fast-path request, src/engine/table-owner.ts). Then try again soon.
  if (!owner.acquire(Owner.WORKER)) {
    setTimeout(scheduleExpireRun, 1);
    return;
  }
  let again = false;
  try {
    again = expireSteps();
  } finally {
    owner.release(Owner.WORKER);
  }
  if (again) scheduleExpireRun();
}

/** Active-expiry steps within the run's budget; true if the last step found many expired keys. */
function expireSteps(): boolean {
  const started_ms = performance.now();
  const now_ms = Date.now();
  let again = false;
  do {
    // Expiry deletes can start a rebuild (a shrink); move it along here too, since an idle
    // partition has no writes to do it (each write migrates a few slots).
    table.step(EXPIRE_SLOTS_PER_STEP);
    table.findExpired(expire_cursor, EXPIRE_SLOTS_PER_STEP, now_ms, expire_result, expire_found);
    expire_cursor = expire_result[0]!;
    counters[WorkerCounter.EXPIRE_STEPS]! += 1;
    const found = Math.min(expire_result[2]!, expire_found.length);
    // Keys first (refs are invalid once anything is deleted), then log, then delete.
    for (let i = 0; i < found; i++) {
      const ref = expire_found[i]!;
      const key_length = table.keyLength(ref);
      const at = expired.add(0, key_length);
      table.copyKey(ref, expired.keys, at);
      expired.hashes[expired.count - 1] = murmur3_x86_32(expired.keys, at, key_length, KEY_HASH_SEED);
    }
    if (!expire_locally) {
      // A cluster: this node may be a backup of these keys, and only their primary decides.
      // One step per tick, at most EXPIRED_REPORT_KEYS_MAX keys reported.
      reportExpired();
      return false;
    }
    if (!deleteExpired()) return false; // the disk refused the log: try again next tick
    again = expire_result[2]! > EXPIRE_AGAIN_SHARE * expire_result[1]!;
  } while (again && performance.now() - started_ms < EXPIRE_RUN_BUDGET_MS);
  return again;
}

function scheduleExpireRun(): void {
  if (expire_run_scheduled) return;
  expire_run_scheduled = true;
  setImmediate(expireRun);
}

setInterval(scheduleExpireRun, EXPIRE_TICK_MS);

/** Writes a TTL reply value: remaining ms as a little-endian float64. */
function writeRemaining(target: Uint8Array, offset: number, remaining_ms: number): void {
  new DataView(target.buffer, target.byteOffset + offset, 8).setFloat64(0, remaining_ms, true);
}

/**
 * Turns writes whose expiry has already passed into DELETEs, before the packet is logged (and
 * replicated): a PUT with such a time answers OK and leaves no key (Redis's SET PXAT in the
 * past), an EXPIRE deletes the key (Redis's EXPIRE with a time in the past). Marks the PUTs in
 * `put_as_delete` so they still answer OK.
 */
function rewritePastExpiries(request: RequestPacket, now_ms: number, put_as_delete: Uint8Array): void {
  for (let i = 0; i < request.op_count; i++) {
    const op = request.op[i]!;
    if (op !== Op.PUT && op !== Op.EXPIRE) continue;
    const expiry_ms = request.expiry[i]!;
    if (expiry_ms <= 0 || expiry_ms > now_ms) continue;
    // The PUT's value bytes stay in the data area (ops are packed); the log and the streams
    // treat a DELETE's value as absent (partition-log.ts, replicator.ts).
    if (op === Op.PUT) put_as_delete[i] = 1;
    request.op[i] = Op.DELETE;
    request.value_codec[i] = 0;
    request.expiry[i] = 0;
  }
}

// --- conditional and read-and-write ops (Op.PUT_NX .. Op.GET_EXPIRE) ---------------------------
// Decided before the packet is logged, against the table as the op will find it: the main thread
// never packs a conditional op after another op on the same key hash (Partition.enqueue), and
// lazy expiry is applied the same way (an expired key counts as absent). Each one is then
// rewritten in the request packet into the plain op it amounts to (PUT, DELETE, EXPIRE, PERSIST)
// or into a GET when it writes nothing, so the log, the replicator and the data moves see only
// plain ops. Its answer (did the key exist, and its old value) is kept aside until its turn.

/** Per op: not conditional; conditional and writes (the rewritten op runs); conditional, no write. */
const COND_NONE = 0;
const COND_WRITE = 1;
const COND_SKIP = 2;
/** Old values the packet's conditional ops answer, copied before any op can overwrite them. */
let cond_values = new Uint8Array(64 * 1024);

/** Decides the packet's conditional ops (see above); false when it has none. */
function resolveConditionals(request: RequestPacket, now_ms: number, cond: Uint8Array, cond_status: Uint8Array, cond_offset: Uint32Array, cond_length: Uint32Array, cond_codec: Uint8Array): boolean {
  const data = request.data;
  let data_offset = 0;
  let values_used = 0;
  let found_any = false;
  for (let i = 0; i < request.op_count; i++) {
    const key_length = request.key_length[i]!;
    const key_offset = data_offset;
    data_offset += key_length + request.value_length[i]!;
    const op = request.op[i]!;
    if (!isConditionalOp(op)) continue;
    found_any = true;
    const ref = table.find(request.hash[i]!, data, key_offset, key_length);
    const exists = ref !== 0 && !isExpired(ref, now_ms);
    cond_status[i] = exists ? Status.OK : Status.NOT_FOUND;
    const answers_value = op === Op.PUT_NX_GET || op === Op.PUT_XX_GET || op === Op.PUT_GET || op === Op.GET_DELETE || op === Op.GET_EXPIRE;
    if (answers_value && exists) {
      const length = table.valueLength(ref);
      if (values_used + length > init.reply_bytes_max) {
        // Nothing written: the old value could not be answered.
        cond_status[i] = Status.RESPONSE_TOO_LARGE;
        cond[i] = COND_SKIP;
        request.op[i] = Op.GET;
        continue;
      }
      if (values_used + length > cond_values.length) {
        const grown = new Uint8Array(Math.max(values_used + length, cond_values.length * 2));
        grown.set(cond_values.subarray(0, values_used));
        cond_values = grown;
      }
      table.copyValue(ref, cond_values, values_used);
      cond_offset[i] = values_used;
      cond_length[i] = length;
      // The old value goes back as stored, with its codec id: the main thread decodes it for a plain client.
      cond_codec[i] = table.valueFlags(ref);
      values_used += length;
    }
    let rewritten: number = Op.GET;
    if (op === Op.PUT_NX || op === Op.PUT_NX_GET) rewritten = exists ? Op.GET : Op.PUT;
    else if (op === Op.PUT_XX || op === Op.PUT_XX_GET) rewritten = exists ? Op.PUT : Op.GET;
    else if (op === Op.PUT_GET) rewritten = Op.PUT;
    else if (op === Op.GET_DELETE) rewritten = exists ? Op.DELETE : Op.GET;
    else if (exists) rewritten = request.expiry[i]! !== 0 ? Op.EXPIRE : table.expiry(ref) !== 0 ? Op.PERSIST : Op.GET; // GET_EXPIRE
    cond[i] = rewritten === Op.GET ? COND_SKIP : COND_WRITE;
    request.op[i] = rewritten;
    if (rewritten === Op.GET || rewritten === Op.DELETE || rewritten === Op.PERSIST) request.expiry[i] = 0;
  }
  return found_any;
}

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
  const value_codec = new Uint8Array(count);
  const value_length = new Uint32Array(count);
  const data = request.data;
  let gets = 0, hits = 0, puts = 0, deletes = 0, out_of_memory = 0, puts_failed = 0;
  let data_offset = 0;
  let reply_bytes = 0;
  let reply = ReplyPacket.create(count, Math.min(REPLY_DATA_BYTES_INITIAL, count * 128));
  let prefetched_end = 0;
  const now_ms = Date.now();
  const cond = new Uint8Array(count);
  const cond_status = new Uint8Array(count);
  const cond_offset = new Uint32Array(count);
  const cond_length = new Uint32Array(count);
  const cond_codec = new Uint8Array(count);
  const has_conditionals = resolveConditionals(request, now_ms, cond, cond_status, cond_offset, cond_length, cond_codec);
  const put_as_delete = new Uint8Array(count);
  rewritePastExpiries(request, now_ms, put_as_delete);
  expireTouchedKeys(request, now_ms);
  const expired_deleted = new Uint8Array(count);
  expireAskedKeys(request, now_ms, expired_deleted);
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
    if (has_conditionals && cond[i] !== COND_NONE) {
      // A decided conditional op: its write (if any), then the answer kept aside.
      let outcome: number = cond_status[i]!;
      if (cond[i] === COND_WRITE) {
        let written: number = Status.OK;
        if (log_failed) {
          written = Status.DISK_ERROR;
        } else if (op === Op.PUT) {
          puts++;
          let expiry_ms = request.expiry[i]!;
          if (expiry_ms === EXPIRY_KEEP) {
            const ref = table.find(hash, data, key_offset, key_length);
            expiry_ms = ref === 0 || isExpired(ref, now_ms) ? 0 : table.expiry(ref);
            request.expiry[i] = expiry_ms;
          }
          const result = table.put(hash, data, key_offset, key_length, data, key_offset + key_length, val_length, expiry_ms);
          if (result !== PUT_OK) {
            written = result === PUT_OUT_OF_MEMORY ? Status.OUT_OF_MEMORY : Status.INTERNAL;
            if (result === PUT_OUT_OF_MEMORY) out_of_memory++;
            puts_failed++;
          }
        } else if (op === Op.DELETE) {
          deletes++;
          table.delete(hash, data, key_offset, key_length);
        } else {
          const result = table.setExpiry(hash, data, key_offset, key_length, op === Op.EXPIRE ? request.expiry[i]! : 0);
          if (result === PUT_OUT_OF_MEMORY) {
            written = Status.OUT_OF_MEMORY;
            out_of_memory++;
            puts_failed++;
          } else if (result !== PUT_OK) {
            written = Status.INTERNAL;
            puts_failed++;
          }
        }
        if (written !== Status.OK) outcome = written;
      }
      status[i] = outcome;
      if (outcome === Status.OK && cond_length[i]! > 0) {
        const length = cond_length[i]!;
        reply = growReply(reply, count, reply_bytes, reply_bytes + length);
        reply.data.set(cond_values.subarray(cond_offset[i]!, cond_offset[i]! + length), reply_bytes);
        reply_bytes += length;
        value_length[i] = length;
        value_codec[i] = cond_codec[i]!;
      }
      continue;
    }
    if (op === Op.GET) {
      gets++;
      const ref = table.find(hash, data, key_offset, key_length);
      if (ref === 0 || isExpired(ref, now_ms)) {
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
      // Returned as stored: the main thread decides whether its client gets it decoded.
      value_codec[i] = table.valueFlags(ref);
    } else if (op === Op.PUT) {
      puts++;
      if (log_failed) {
        status[i] = Status.DISK_ERROR;
        continue;
      }
      let expiry_ms = request.expiry[i]!;
      if (expiry_ms === EXPIRY_KEEP) {
        const ref = table.find(hash, data, key_offset, key_length);
        expiry_ms = ref === 0 || isExpired(ref, now_ms) ? 0 : table.expiry(ref);
        // Streams built from this packet (replication, data moves) carry the time itself.
        request.expiry[i] = expiry_ms;
      }
      const result = table.put(hash, data, key_offset, key_length, data, key_offset + key_length, val_length, expiry_ms, request.value_codec[i]!);
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
      else if (!table.delete(hash, data, key_offset, key_length) && put_as_delete[i] === 0) status[i] = Status.NOT_FOUND;
    } else if (op === Op.DELETE_EXPIRED) {
      // Applied (logged and deleted) before the packet: see expireAskedKeys.
      if (expired_deleted[i] === 0) status[i] = Status.NOT_FOUND;
    } else if (op === Op.EXPIRE || op === Op.PERSIST) {
      if (log_failed) {
        status[i] = Status.DISK_ERROR;
        continue;
      }
      const ref = table.find(hash, data, key_offset, key_length);
      if (ref === 0 || isExpired(ref, now_ms) || (op === Op.PERSIST && table.expiry(ref) === 0)) {
        status[i] = Status.NOT_FOUND;
        continue;
      }
      const result = table.setExpiry(hash, data, key_offset, key_length, op === Op.EXPIRE ? request.expiry[i]! : 0);
      if (result === PUT_OUT_OF_MEMORY) {
        status[i] = Status.OUT_OF_MEMORY;
        out_of_memory++;
        puts_failed++;
      } else if (result === PUT_NOT_FOUND) {
        status[i] = Status.NOT_FOUND;
      } else if (result !== PUT_OK) {
        // The main thread checks expiries before they get here, so this is a bug.
        status[i] = Status.INTERNAL;
        puts_failed++;
      }
    } else if (op === Op.SCAN) {
      const scan = decodeScanRequest(data, key_offset, key_length);
      if (scan === null) {
        status[i] = Status.BAD_OP;
        continue;
      }
      const hashes_only = (scan.flags & ScanFlag.HASHES_ONLY) !== 0;
      // The answer (scan-codec.ts) goes straight into the reply; the node fills in `partitions`.
      const start = reply_bytes;
      let at = start + SCAN_ANSWER_HEADER_BYTES;
      let entries = 0;
      reply = growReply(reply, count, reply_bytes, at);
      const next_cursor = table.scan(scan.cursor, scan.count, (ref) => {
        if (isExpired(ref, now_ms)) return;
        const length = table.keyLength(ref);
        reply = growReply(reply, count, at, at + 8 + length);
        const target = reply.data;
        table.copyKey(ref, target, at + 8);
        const hash = murmur3_x86_32(target, at + 8, length, KEY_HASH_SEED);
        const view = new DataView(target.buffer, target.byteOffset + at, 8);
        view.setUint32(0, hash, true);
        if (hashes_only) {
          at += 4;
        } else {
          view.setUint32(4, length, true);
          at += 8 + length;
        }
        entries++;
      });
      const header = new DataView(reply.data.buffer, reply.data.byteOffset + start, SCAN_ANSWER_HEADER_BYTES);
      header.setFloat64(0, next_cursor, true);
      header.setUint32(8, 0, true);
      header.setUint32(12, entries, true);
      reply_bytes = at;
      value_length[i] = at - start;
    } else if (op === Op.TTL) {
      const ref = table.find(hash, data, key_offset, key_length);
      if (ref === 0 || isExpired(ref, now_ms)) {
        status[i] = Status.NOT_FOUND;
        continue;
      }
      const expiry_ms = table.expiry(ref);
      if (expiry_ms === 0) continue; // OK with no value: the key has no expiry
      reply = growReply(reply, count, reply_bytes, reply_bytes + 8);
      writeRemaining(reply.data, reply_bytes, expiry_ms - now_ms);
      reply_bytes += 8;
      value_length[i] = 8;
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
  reply.value_codec.set(value_codec);
  reply.value_length.set(value_length);
  return reply;
}

port.on('message', (message: MainToWorker) => {
  if (!(message instanceof ArrayBuffer)) {
    const resolve = deflate_waiting.get(message.id);
    if (resolve === undefined) throw new Error(`partition ${init.partition}: a 'deflated' answer to no request (${message.id})`);
    deflate_waiting.delete(message.id);
    resolve(message.bytes);
    return;
  }
  const buffer = message;
  // The main thread gives the table back before it posts a packet, in the same task: it never
  // holds it while a packet is on its way here. If it does, the invariant is broken: crash
  // (the main thread answers the packet's ops WORKER_RESTARTED and starts a new worker).
  if (!owner.acquire(Owner.WORKER)) throw new Error(`partition ${init.partition}: table owner invariant: a packet arrived while the main thread held the table`);
  const request = new RequestPacket(buffer);
  const reply = execute(request);
  owner.release(Owner.WORKER);
  const answer: WorkerToMain = { kind: 'reply', reply: reply.buffer, request: buffer };
  port.postMessage(answer, [reply.buffer, buffer]);
});

owner.release(Owner.WORKER);
const ready: WorkerToMain = { kind: 'ready', reapplied_ops };
port.postMessage(ready);

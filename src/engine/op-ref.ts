/**
 * One data op on its way through a node: the request and op index its result answers, and
 * where its key and value bytes are. The dispatcher fills one OpRef per batch and passes it
 * down for each op in turn (routing, forwarding, holding, queueing for a partition), so there
 * is no allocation per op and no list of ten positional parameters to get in the wrong order.
 *
 * An OpRef is a view, reused: whoever keeps an op copies what it needs (the bytes belong to
 * the caller's frame, and the fields change with the next op). OutBatch.add and
 * Partition.enqueue copy the bytes; nothing stores the OpRef itself.
 */
import type { PendingRequest } from './pending-request.js';

const EMPTY = new Uint8Array(0);

export class OpRef {
  /** The request waiting for this op's result; null for stream ops nobody waits for (data moves, replication). */
  request: PendingRequest | null = null;
  /** The op's index in that request. */
  index = 0;
  op = 0;
  /** murmur3_x86_32(key, KEY_HASH_SEED): picks the partition and the ring slot. */
  hash = 0;
  keys: Uint8Array = EMPTY;
  key_offset = 0;
  key_length = 0;
  values: Uint8Array = EMPTY;
  value_offset = 0;
  value_length = 0;
  /** Times the op was already refused with STALE_RING and sent again (cluster/forwarder.ts). */
  attempt = 0;
  /** Absolute expiry in ms since the epoch (0 none, -1 keep on PUT); set after set() by whoever has one. */
  expiry_ms = 0;
  /** The value's codec id (0 raw; protocol/value-codec.ts), carried as is; set after set() by whoever has one. */
  value_codec = 0;

  /** Points this view at one op; returns it for chaining. */
  set(request: PendingRequest | null, index: number, op: number, hash: number, keys: Uint8Array, key_offset: number, key_length: number,
    values: Uint8Array, value_offset: number, value_length: number, attempt = 0): this {
    this.request = request;
    this.index = index;
    this.op = op;
    this.hash = hash;
    this.keys = keys;
    this.key_offset = key_offset;
    this.key_length = key_length;
    this.values = values;
    this.value_offset = value_offset;
    this.value_length = value_length;
    this.attempt = attempt;
    this.expiry_ms = 0;
    this.value_codec = 0;
    return this;
  }
}

/**
 * The ring-aware client: one connection per node, each op sent straight to its key's owner.
 *
 * connectCluster(urls) reads the view (RING) from the first node that answers, builds the
 * same HashRing the nodes use (src/routing/ring.ts), and splits every batch by owner into
 * one ring-aware request per node (carrying the view's epoch), merging results back into
 * call order. A node that does not own a key in its own view answers STALE_RING; those ops
 * alone are retried after the view is read again (up to STALE_RETRIES_MAX times), so a
 * membership change costs a refresh, not an error. Same calls as PikvClient.
 */
import { Op, Status } from '../protocol/constants.js';
import { VALUE_CODECS_KNOWN_MASK } from '../protocol/value-codec.js';
import { ErrorCode, PikvError, statusName } from '../protocol/errors.js';
import { WireCodec } from '../protocol/codec.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../routing/murmur3.js';
import { Placement, slotOf } from '../routing/placement.js';
import { HashRing, type RingNode } from '../routing/ring.js';
import { checkView, type ClusterView } from '../routing/view.js';
import { connect, type ClientOptions, type ColumnResults, type PikvClient } from './client.js';
import { checkBytes, checkTtl, OP_CODES, type BatchOp, type Bytes, type OpResult } from './ops.js';

const STALE_RETRIES_MAX = 8;
const STALE_RETRY_DELAY_MS = 100;

/** Batch ops whose OK result carries a value (the old one, for the conditional ops). */
const RETURNS_VALUE: ReadonlySet<string> = new Set(['get', 'get_and_put', 'get_and_delete']);

function toBytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value) : value;
}

export class PikvClusterClient {
  private readonly options: ClientOptions;
  private readonly seeds: string[];
  private readonly codec = new WireCodec();
  private view: ClusterView;
  /** Where each key's primary is: the node that takes its ops (docs/REPLICATION.md). */
  private placement: Placement;
  private readonly clients = new Map<string, Promise<PikvClient>>();
  /** Per node URL: resolves once the last batch for it was handed to its connection (see sendOnce). */
  private readonly handed = new Map<string, Promise<void>>();
  private closed = false;
  private refreshing: Promise<void> | null = null;

  /** read: 'any' spreads GETs over every in-sync copy instead of the primary (docs/REPLICATION.md). */
  private readonly read_any: boolean;

  /** Use connectCluster(). */
  constructor(seeds: string[], view: ClusterView, options: ClusterClientOptions) {
    this.seeds = seeds;
    this.options = options;
    this.read_any = options.read === 'any';
    this.view = view;
    this.placement = placementOf(view);
  }

  get epoch(): number {
    return this.view.epoch;
  }

  async get(key: Bytes): Promise<Uint8Array | undefined> {
    const [result] = await this.batch([{ op: 'get', key }]);
    if (result!.code === 'OK') return result!.value ?? new Uint8Array(0);
    if (result!.code === 'NOT_FOUND') return undefined;
    throw new PikvError(result!.code);
  }

  /** `ttl_ms`: the key expires that many ms after its owner receives the put. */
  async put(key: Bytes, value: Bytes, options: { ttl_ms?: number } = {}): Promise<void> {
    const [result] = await this.batch([{ op: 'put', key, value, ...(options.ttl_ms === undefined ? {} : { ttl_ms: options.ttl_ms }) }]);
    if (result!.code !== 'OK') throw new PikvError(result!.code === 'NOT_FOUND' ? ErrorCode.INTERNAL : result!.code);
  }

  /** Sets `key` only if it does not exist, atomically on its primary; true if it was written. */
  async putIfAbsent(key: Bytes, value: Bytes, options: { ttl_ms?: number } = {}): Promise<boolean> {
    const [result] = await this.batch([{ op: 'put_if_absent', key, value, ...(options.ttl_ms === undefined ? {} : { ttl_ms: options.ttl_ms }) }]);
    if (result!.code === 'NOT_FOUND') return true;
    if (result!.code === 'OK') return false;
    throw new PikvError(result!.code);
  }

  /** Deletes `key` and resolves the value it had (undefined when absent), atomically. */
  async getAndDelete(key: Bytes): Promise<Uint8Array | undefined> {
    const [result] = await this.batch([{ op: 'get_and_delete', key }]);
    if (result!.code === 'OK') return result!.value ?? new Uint8Array(0);
    if (result!.code === 'NOT_FOUND') return undefined;
    throw new PikvError(result!.code);
  }

  async delete(key: Bytes): Promise<boolean> {
    const [result] = await this.batch([{ op: 'delete', key }]);
    if (result!.code === 'OK') return true;
    if (result!.code === 'NOT_FOUND') return false;
    throw new PikvError(result!.code);
  }

  /** Results in op order; per-op failures are result codes (NODE_DOWN for an unreachable owner). */
  async batch(ops: readonly BatchOp[]): Promise<OpResult[]> {
    if (this.closed) throw new PikvError(ErrorCode.CLIENT_CLOSED);
    for (const item of ops) {
      if (!(item.op in OP_CODES) || item.op === 'ping') throw new PikvError(ErrorCode.BAD_ARGUMENT, `unsupported op ${JSON.stringify(item.op)}`);
      checkBytes(item.key, 'key');
      if ('value' in item) {
        checkBytes(item.value, 'value');
        if (item.ttl_ms !== undefined) checkTtl(item.ttl_ms);
      }
    }
    const results = new Array<OpResult>(ops.length);
    const keys = ops.map((item) => toBytes((item as { key: Bytes }).key));
    let pending = ops.map((_, i) => i);
    for (let attempt = 0; pending.length > 0; attempt++) {
      const stale = await this.sendOnce(ops, keys, pending, results, attempt === STALE_RETRIES_MAX);
      // An owner that did not answer may have left the view: re-read it so the next call goes
      // to the new owner. The op itself is not resent: it may have been applied.
      if (stale.length === 0 && pending.some((index) => results[index]?.code === ErrorCode.NODE_DOWN)) void this.refresh().catch(() => {});
      if (stale.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, STALE_RETRY_DELAY_MS * Math.min(attempt + 1, 4)));
      await this.refresh();
      pending = stale;
    }
    return results;
  }

  /** Reads the view again from any node, keeping the newest. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const urls = [...new Set([...this.view.nodes.map((n) => n.url), ...this.seeds])];
      const views = await Promise.all(urls.map((url) => readView(url, this.options, this.codec).catch(() => null)));
      for (const view of views) {
        if (view !== null && view.nodes.length > 0 && view.epoch > this.view.epoch) {
          this.view = view;
          this.placement = placementOf(view);
        }
      }
    })().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  async close(): Promise<void> {
    this.closed = true;
    const clients = await Promise.all([...this.clients.values()].map((p) => p.catch(() => null)));
    this.clients.clear();
    await Promise.all(clients.map((client) => client?.close()));
  }

  /** A random in-sync copy of this key hash (read: 'any'), or null when every copy is down. */
  private anyCopy(hash: number): RingNode | null {
    return this.placement.inSyncAt(slotOf(hash), Math.floor(Math.random() * REPLICA_PICKS));
  }

  /** Sends `pending` ops, one sub-batch per owner; returns the indices that came back STALE_RING. */
  private async sendOnce(ops: readonly BatchOp[], keys: Uint8Array[], pending: number[], results: OpResult[], last: boolean): Promise<number[]> {
    const groups = new Map<string, number[]>();
    for (const index of pending) {
      const key = keys[index]!;
      const hash = murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED);
      const owner = this.read_any && ops[index]!.op === 'get' ? this.anyCopy(hash) : this.placement.primaryOf(hash);
      // Every copy of this key is down: any node answers NODE_DOWN, and may know a newer view.
      const id = owner?.id ?? '';
      let group = groups.get(id);
      if (group === undefined) groups.set(id, (group = []));
      group.push(index);
    }
    const stale: number[] = [];
    const epoch = this.view.epoch;
    await Promise.all([...groups].map(async ([id, indices]) => {
      const node = this.placement.ring.nodes.find((n) => n.id === id) ?? this.placement.ring.nodes[0]!;
      let client: PikvClient;
      try {
        client = await this.client(node.url);
      } catch {
        for (const index of indices) results[index] = { code: ErrorCode.NODE_DOWN };
        return;
      }
      let reply;
      try {
        // Large PUT values are compressed in the client's pool (compress_min_bytes). Batches for
        // one node are handed over in call order even when an earlier one is still compressing,
        // so two calls writing one key land in the order they were made.
        const compressed = client.compressColumns(columns(ops, keys, indices));
        const previous = this.handed.get(node.url) ?? Promise.resolve();
        let answer: Promise<ColumnResults> | null = null;
        const handed = Promise.all([previous, compressed]).then(([, batch]) => {
          // `ac`: compressed values come back as stored (less on the wire) and are decoded here.
          answer = client.batchColumns({ ...batch, ring_epoch: epoch, accept_codecs: VALUE_CODECS_KNOWN_MASK, ...(this.read_any ? { read_any: true } : {}) });
        });
        this.handed.set(node.url, handed.catch(() => undefined));
        await handed;
        reply = await answer!;
      } catch (error) {
        const code = (error as PikvError).code;
        const down = code === ErrorCode.CONNECTION_LOST || code === ErrorCode.TIMEOUT || code === ErrorCode.CLIENT_CLOSED;
        if (down) this.clients.delete(node.url);
        for (const index of indices) results[index] = { code: down ? ErrorCode.NODE_DOWN : code };
        return;
      }
      let offset = 0;
      const decoding: Promise<void>[] = [];
      indices.forEach((index, i) => {
        const status = reply.status[i]!;
        const length = reply.value_lengths[i]!;
        const codec = reply.value_codec?.[i] ?? 0;
        // Refused before execution: safe to send again once the view is re-read.
        const refused = status === Status.STALE_RING || status === Status.CLUSTER_UNAVAILABLE || status === Status.CLUSTER_BUSY;
        if (refused && !last) stale.push(index);
        else if (status === Status.OK && RETURNS_VALUE.has(ops[index]!.op) && codec !== 0) {
          decoding.push(client.decodeResult(codec, reply.values.subarray(offset, offset + length)).then(
            (value) => void (results[index] = { code: 'OK', value }),
            (error: PikvError) => void (results[index] = { code: error.code }),
          ));
        } else if (status === Status.OK && RETURNS_VALUE.has(ops[index]!.op)) results[index] = { code: 'OK', value: reply.values.subarray(offset, offset + length) };
        else results[index] = { code: statusName(status) };
        offset += length;
      });
      await Promise.all(decoding);
    }));
    return stale;
  }

  private client(url: string): Promise<PikvClient> {
    let client = this.clients.get(url);
    if (client === undefined) {
      client = connect(url, this.options);
      this.clients.set(url, client);
      client.catch(() => this.clients.delete(url));
    }
    return client.then((c) => {
      if (c.failed === null) return c;
      this.clients.delete(url);
      return this.client(url);
    });
  }
}

function columns(ops: readonly BatchOp[], keys: Uint8Array[], indices: number[]): { op: Uint8Array; key_lengths: Uint32Array; value_lengths: Uint32Array; keys: Uint8Array; values: Uint8Array; ttl?: Float64Array } {
  const op = new Uint8Array(indices.length);
  const ttl = new Float64Array(indices.length);
  let timed = false;
  const key_lengths = new Uint32Array(indices.length);
  const value_lengths = new Uint32Array(indices.length);
  const key_parts: Uint8Array[] = [];
  const value_parts: Uint8Array[] = [];
  indices.forEach((index, i) => {
    const item = ops[index]!;
    op[i] = OP_CODES[item.op];
    key_lengths[i] = keys[index]!.length;
    key_parts.push(keys[index]!);
    if ('value' in item) {
      const value = toBytes(item.value);
      value_lengths[i] = value.length;
      value_parts.push(value);
      if (item.ttl_ms !== undefined) {
        // Relative (wire `tl`): the owner's clock makes it absolute when the put arrives.
        ttl[i] = item.ttl_ms;
        timed = true;
      }
    }
  });
  const batch = { op, key_lengths, value_lengths, keys: Buffer.concat(key_parts), values: Buffer.concat(value_parts) };
  return timed ? { ...batch, ttl } : batch;
}

async function readView(url: string, options: ClientOptions, codec: WireCodec): Promise<ClusterView> {
  const client = await connect(url, options);
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(Op.RING), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    if (reply.status[0] !== Status.OK) throw new PikvError(ErrorCode.BAD_RESPONSE, `RING answered ${statusName(reply.status[0]!)}`);
    return checkView(codec.decodeValue(reply.values));
  } finally {
    await client.close();
  }
}

/** Reads the ring from the first of `urls` that answers and returns a client that routes by it. */
export async function connectCluster(urls: string | string[], options: ClusterClientOptions = {}): Promise<PikvClusterClient> {
  const seeds = typeof urls === 'string' ? urls.split(',') : urls;
  let last: unknown = new PikvError(ErrorCode.CONNECT_FAILED, 'no node URL given');
  for (const url of seeds) {
    try {
      const view = await readView(url, options, new WireCodec());
      if (view.nodes.length === 0) throw new PikvError(ErrorCode.STALE_RING, `${url} is not a cluster member yet`);
      return new PikvClusterClient(seeds, view, options);
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

export interface ClusterClientOptions extends ClientOptions {
  /**
   * 'primary' (default): every op goes to its key's primary; reads are linearizable.
   * 'any': GETs go to a random in-sync copy. Such a read returns every write acknowledged
   * before it started, and may return one not yet acknowledged (docs/REPLICATION.md).
   */
  read?: 'primary' | 'any';
}

/** Random picks are drawn from 0..REPLICA_PICKS-1, a multiple of every replica count 1..5. */
const REPLICA_PICKS = 60;

function placementOf(view: ClusterView): Placement {
  return new Placement(new HashRing(view.nodes), view.replicas ?? 1, new Set(view.down ?? []));
}

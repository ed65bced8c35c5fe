/**
 * Listing and counting keys across the cluster (RESP SCAN, DBSIZE, FLUSHALL): every key once,
 * whatever the number of replicas, because each node reports only the keys it is the primary
 * of in its current view (docs/RESP.md, "SCAN and DBSIZE in a cluster").
 *
 * One step is one Op.SCAN sent to one partition's worker, which walks a range of its table's
 * tag space (src/hashmap/scan.ts): a key present from the first step to the last is listed at
 * least once, even if the table grows or shrinks in between, because the position is a tag,
 * not a slot number. A cluster cursor names the node (its place among the view's live nodes,
 * sorted by id), the partition on it and the tag position:
 *
 *   cursor = node << 40 | partition << 32 | tag        (0 starts, 0 again when done)
 *
 * The guarantee holds while the view keeps its nodes and primaries; a membership change or a
 * failover during a scan may list keys twice or miss keys that moved.
 */
import type { Partition } from '../engine/partition.js';
import { OpRef } from '../engine/op-ref.js';
import { PendingRequest } from '../engine/pending-request.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError, statusName, type ErrorCodeName } from '../protocol/errors.js';
import {
  SCAN_COUNT_MAX, SCAN_TAG_END, ScanFlag, decodeScanAnswer, decodeScanRequest, encodeScanAnswer, encodeScanRequest,
  type ScanAnswer, type ScanRequest,
} from '../protocol/scan-codec.js';

const EMPTY = new Uint8Array(0);
/** A page stops after this many steps even if it found fewer keys than asked (empty ranges). */
const PAGE_STEPS_MAX = 16;
const NODE_SHIFT = 40n;
const PARTITION_SHIFT = 32n;
const PARTITIONS_MAX = 256;
const NODES_MAX = 1 << 23;
/** Entries one step of a count aims for. */
const COUNT_STEP_ENTRIES = SCAN_COUNT_MAX;

export interface KeyScanHost {
  /** False while this node may not serve (a cluster node without the current view): its answers would be incomplete. */
  serving(): boolean;
  /** True if this node is the primary of this key hash now (always, on a lone node). */
  isPrimary(hash: number): boolean;
  /** Ids of the nodes a cluster scan visits, in a fixed order (live nodes sorted by id), and this node's. */
  scanNodes(): { ids: string[]; self: string };
  /** Sends one Op.SCAN to another node. */
  askPeer(id: string, request: Uint8Array): Promise<{ status: number; value: Uint8Array }>;
}

export interface KeyPage {
  /** The next cursor, as Redis clients send it back (decimal); '0' when done. */
  cursor: string;
  keys: Uint8Array[];
}

/** Parses a cluster cursor (a decimal string); null when it is not one. */
export function parseScanCursor(text: string): bigint | null {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) return null;
  const cursor = BigInt(text);
  return cursor < 1n << 64n ? cursor : null;
}

export class KeyScan {
  private readonly ref = new OpRef();

  constructor(private readonly partitions: readonly Partition[], private readonly host: KeyScanHost) {
    if (partitions.length > PARTITIONS_MAX) throw new Error(`key scan: at most ${PARTITIONS_MAX} partitions, not ${partitions.length}`);
  }

  /** One step over one of this node's partitions, as the request says. */
  async step(request: ScanRequest): Promise<ScanAnswer> {
    const partitions = this.partitions.length;
    if (!this.host.serving()) throw new PikvError(ErrorCode.CLUSTER_UNAVAILABLE, 'this node does not hold the current cluster view: it cannot say which keys it is the primary of');
    if (request.partition >= partitions) return { next_cursor: SCAN_TAG_END, partitions, entries: 0, hashes: [], keys: [] };
    const flags = request.flags & ScanFlag.HASHES_ONLY;
    const bytes = await this.askWorker(this.partitions[request.partition]!, encodeScanRequest({ ...request, flags }));
    const answer = decodeScanAnswer(bytes, flags);
    answer.partitions = partitions;
    if ((request.flags & ScanFlag.PRIMARY_ONLY) !== 0) {
      const hashes: number[] = [];
      const keys: Uint8Array[] = [];
      for (let i = 0; i < answer.hashes.length; i++) {
        if (!this.host.isPrimary(answer.hashes[i]!)) continue;
        hashes.push(answer.hashes[i]!);
        if (answer.keys.length > 0) keys.push(answer.keys[i]!);
      }
      answer.hashes = hashes;
      answer.keys = keys;
      answer.entries = hashes.length;
    }
    return answer;
  }

  /** Keys in this node's partitions (only those it is the primary of, with PRIMARY_ONLY), step by step. */
  async countLocal(flags: number): Promise<number> {
    let total = 0;
    for (let partition = 0; partition < this.partitions.length; partition++) {
      let cursor = 0;
      do {
        const answer = await this.step({ partition, count: COUNT_STEP_ENTRIES, cursor, flags: (flags & ScanFlag.PRIMARY_ONLY) | ScanFlag.HASHES_ONLY });
        total += answer.entries;
        cursor = answer.next_cursor;
      } while (cursor < SCAN_TAG_END);
    }
    return total;
  }

  /** Answers an Op.SCAN sent to this node (by a peer, or a client): later, when the step is done. */
  answer(request: PendingRequest, index: number, key: Uint8Array, key_offset: number, key_length: number): void {
    const scan = decodeScanRequest(key, key_offset, key_length);
    if (scan === null) {
      request.settle(index, Status.BAD_OP);
      return;
    }
    const work = (scan.flags & ScanFlag.COUNT) !== 0
      ? this.countLocal(scan.flags).then((count): ScanAnswer => ({ next_cursor: SCAN_TAG_END, partitions: this.partitions.length, entries: count, hashes: [], keys: [] }))
      : this.step(scan);
    work.then((answer) => {
      const bytes = Buffer.from(encodeScanAnswer(answer));
      request.settleValue(index, request.addSource(bytes), 0, bytes.length);
    }, (error: unknown) => {
      request.settle(index, error instanceof PikvError ? statusOf(error) : Status.INTERNAL);
    });
  }

  /**
   * One page of a cluster-wide scan from `cursor` (parseScanCursor): about `count` keys, fewer
   * when the ranges it visited held fewer. Rejects with a PikvError when a node cannot answer.
   */
  async page(cursor: bigint, count: number): Promise<KeyPage> {
    const { ids, self } = this.host.scanNodes();
    let node = Number(cursor >> NODE_SHIFT);
    let partition = Number((cursor >> PARTITION_SHIFT) & 0xffn);
    let tag = Number(cursor & 0xffff_ffffn);
    const keys: Uint8Array[] = [];
    const step_count = Math.max(1, Math.min(count, SCAN_COUNT_MAX));
    for (let steps = 0; steps < PAGE_STEPS_MAX && keys.length < count; steps++) {
      if (node >= ids.length || node >= NODES_MAX) return { cursor: '0', keys };
      const request: ScanRequest = { partition, count: step_count, cursor: tag, flags: ScanFlag.PRIMARY_ONLY };
      const answer = ids[node] === self ? await this.step(request) : await this.askNode(ids[node]!, request);
      for (const key of answer.keys) keys.push(key);
      tag = answer.next_cursor;
      if (tag >= SCAN_TAG_END) {
        tag = 0;
        partition++;
        if (partition >= answer.partitions) {
          partition = 0;
          node++;
          if (node >= ids.length) return { cursor: '0', keys };
        }
      }
    }
    const next = (BigInt(node) << NODE_SHIFT) | (BigInt(partition) << PARTITION_SHIFT) | BigInt(tag);
    return { cursor: next.toString(), keys };
  }

  /** Keys in the whole cluster, each counted once (by its primary). */
  async count(): Promise<number> {
    const { ids, self } = this.host.scanNodes();
    const counts = await Promise.all(ids.map((id) => id === self
      ? this.countLocal(ScanFlag.PRIMARY_ONLY)
      : this.askNode(id, { partition: 0, count: 1, cursor: 0, flags: ScanFlag.PRIMARY_ONLY | ScanFlag.COUNT }).then((answer) => answer.entries)));
    return counts.reduce((sum, n) => sum + n, 0);
  }

  private async askNode(id: string, request: ScanRequest): Promise<ScanAnswer> {
    const { status, value } = await this.host.askPeer(id, encodeScanRequest(request));
    if (status !== Status.OK) throw new PikvError(statusError(status), `node ${id} answered a SCAN step with ${statusName(status)}`);
    return decodeScanAnswer(value, request.flags);
  }

  private askWorker(partition: Partition, request: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const pending = new PendingRequest(0, 1, 0, Number.MAX_SAFE_INTEGER, (done) => {
        const status = done.status[0]!;
        if (status !== Status.OK) {
          reject(new PikvError(statusError(status), `a SCAN step answered ${statusName(status)}`));
          return;
        }
        const value = Buffer.allocUnsafe(done.value_length[0]!);
        done.copyValue(0, value, 0);
        resolve(value);
      });
      partition.enqueue(this.ref.set(pending, 0, Op.SCAN, 0, request, 0, request.length, EMPTY, 0, 0));
      partition.flush();
    });
  }
}

function statusError(status: number): ErrorCodeName {
  const name = statusName(status);
  return name === 'OK' ? ErrorCode.INTERNAL : name;
}

/** The status byte of a per-op error code (NODE_DOWN, WORKER_RESTARTED, ...); INTERNAL for others. */
function statusOf(error: PikvError): number {
  const entry = Object.entries(Status).find(([name]) => name === error.code);
  return entry === undefined ? Status.INTERNAL : entry[1];
}

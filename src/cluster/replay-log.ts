/**
 * What a backup applied from each primary and cannot yet prove every other copy holds
 * (docs/REPLICATION.md, R7, "Promotion with N ≥ 3: the replay log").
 *
 * Every replication frame carries `ci`, the highest commit id of the sender whose writes it
 * holds, and `cw`, the sender's commit watermark: every commit up to it was applied by every
 * copy it went to. The log keeps, per sender, a copy of each op this node accepted from the
 * sender's frames, tagged with the running maximum of `ci` seen from that sender, and drops the
 * entries tagged at or below each `cw` it receives. Tags never decrease along a sender's log, so
 * what is dropped is always a prefix: the log is always a suffix of what was applied, in order.
 *
 * When this node is promoted because the sender was marked down, it re-sends the log's ops of the
 * slots it now leads to the other copies before serving them (cluster-node.ts, Replicator.replay).
 *
 * Pure bookkeeping, no I/O: used as is by the node and by test/replication-sim.test.ts.
 */

/** One op as applied: everything a copy needs to apply it again. */
export interface LoggedOp {
  /** Running maximum of the sender's `ci` when the op arrived. */
  readonly tag: number;
  readonly op: number;
  readonly hash: number;
  readonly key: Buffer;
  /** Empty for ops without a value (DELETE, EXPIRE, ...). */
  readonly value: Buffer;
  readonly expiry_ms: number;
  readonly value_codec: number;
}

/** Bytes an entry costs beyond its key and value (the object, its fields): a rough figure for the cap. */
const ENTRY_OVERHEAD_BYTES = 96;

class SenderLog {
  readonly ops: LoggedOp[] = [];
  /** Index of the first live entry in `ops` (dropped entries before it are compacted away lazily). */
  head = 0;
  /** Highest `ci` seen from this sender. */
  tag = 0;
  /** Highest `cw` seen from this sender. */
  watermark = 0;
  bytes = 0;
}

export class ReplayLog {
  private readonly senders = new Map<string, SenderLog>();
  /** Bytes held over every sender. */
  bytes = 0;
  readonly bytes_max: number;
  /** Logged ops per key hash, over every sender: a key with one is not known committed everywhere. */
  private readonly pending_hashes = new Map<number, number>();
  /** Ops ever logged and ops dropped by a watermark: for status. */
  ops_logged = 0;
  ops_trimmed = 0;
  /** Logs dropped because their sender's watermark went back (it restarted). */
  senders_restarted = 0;

  constructor(bytes_max: number) {
    if (!(Number.isSafeInteger(bytes_max) && bytes_max > 0)) throw new Error(`replay log: bytes_max must be a positive integer, got ${bytes_max}`);
    this.bytes_max = bytes_max;
  }

  /**
   * A frame from `sender` arrived with `ci` = commit_id and `cw` = watermark (0 when absent):
   * drops what the watermark covers and returns the tag this frame's ops get.
   */
  frame(sender: string, commit_id: number, watermark: number): number {
    let log = this.senders.get(sender);
    if (log === undefined) {
      log = new SenderLog();
      this.senders.set(sender, log);
    }
    if (watermark < log.watermark) {
      // A primary's watermark never goes back within one process (its frames reach us in send
      // order, each stamped when sent): the sender restarted and counts from 1 again. Its old
      // entries were settled by the views that marked it down (a view this node may have
      // skipped after an etcd compaction); kept, their high tags would never be passed again.
      this.take(sender);
      log = new SenderLog();
      this.senders.set(sender, log);
      this.senders_restarted++;
    }
    if (watermark > log.watermark) {
      log.watermark = watermark;
      this.trim(log);
    }
    if (commit_id > log.tag) log.tag = commit_id;
    return log.tag;
  }

  /** True when an op of `bytes` key and value bytes would pass the cap: refuse it (the stream resends). */
  full(bytes: number): boolean {
    return this.bytes + bytes + ENTRY_OVERHEAD_BYTES > this.bytes_max;
  }

  /**
   * Keeps a copy of one op the node accepted from `sender`, tagged `tag` (from frame()). An op
   * tagged at or below the sender's watermark is already on every copy: not kept.
   */
  add(sender: string, tag: number, op: number, hash: number, key: Uint8Array, value: Uint8Array, expiry_ms: number, value_codec: number): void {
    const log = this.senders.get(sender);
    if (log === undefined) throw new Error(`replay log: add() for ${sender} before frame()`);
    if (tag < log.tag) throw new Error(`replay log: tag ${tag} below ${sender}'s running tag ${log.tag}: tags must not decrease`);
    if (tag <= log.watermark) return;
    const entry: LoggedOp = { tag, op, hash, key: Buffer.from(key), value: Buffer.from(value), expiry_ms, value_codec };
    log.ops.push(entry);
    this.pending_hashes.set(hash, (this.pending_hashes.get(hash) ?? 0) + 1);
    const cost = key.length + value.length + ENTRY_OVERHEAD_BYTES;
    log.bytes += cost;
    this.bytes += cost;
    this.ops_logged++;
  }

  /** The ops logged from `sender`, oldest first, and the log forgotten (a promotion, or the sender is gone). */
  take(sender: string): LoggedOp[] {
    const log = this.senders.get(sender);
    if (log === undefined) return [];
    this.senders.delete(sender);
    this.bytes -= log.bytes;
    const ops = log.head === 0 ? log.ops : log.ops.slice(log.head);
    for (const op of ops) this.unpend(op.hash);
    return ops;
  }

  /**
   * True if this node applied an op of this key hash that no watermark has covered yet: it may
   * be missing on another copy, so a read served here could be taken back by a failover
   * (`read: 'any'` goes to the primary instead; docs/REPLICATION.md).
   */
  pending(hash: number): boolean {
    return this.pending_hashes.size > 0 && this.pending_hashes.has(hash);
  }

  private unpend(hash: number): void {
    const count = this.pending_hashes.get(hash);
    if (count === undefined) throw new Error(`replay log: hash ${hash} dropped more often than logged`);
    if (count === 1) this.pending_hashes.delete(hash);
    else this.pending_hashes.set(hash, count - 1);
  }

  /** Senders with a log. */
  sendersLogged(): string[] {
    return [...this.senders.keys()];
  }

  opsOf(sender: string): number {
    const log = this.senders.get(sender);
    return log === undefined ? 0 : log.ops.length - log.head;
  }

  private trim(log: SenderLog): void {
    const ops = log.ops;
    let head = log.head;
    while (head < ops.length && ops[head]!.tag <= log.watermark) {
      const entry = ops[head]!;
      const cost = entry.key.length + entry.value.length + ENTRY_OVERHEAD_BYTES;
      log.bytes -= cost;
      this.bytes -= cost;
      this.unpend(entry.hash);
      head++;
      this.ops_trimmed++;
    }
    // Compact once the dropped prefix is most of the array, so trimming stays O(1) per op.
    if (head > 1024 && head * 2 > ops.length) {
      ops.splice(0, head);
      head = 0;
    }
    log.head = head;
    if (log.bytes < 0 || this.bytes < 0) throw new Error(`replay log: byte count went negative (${log.bytes}, ${this.bytes})`);
  }
}

/**
 * R7 (docs/REPLICATION.md, "Promotion with N ≥ 3"): a backup keeps what it applied from each
 * primary in a ReplayLog, and when it is promoted because that primary was marked down, re-sends
 * those ops to the other copies before serving them. This is the node's side of it: which copy
 * ops are logged, and what a new view replays. Control plane only, apart from one call per
 * accepted copy op (a no-op at N ≤ 2).
 */
import type { RequestBatch } from '../protocol/codec.js';
import type { OpRef } from '../engine/op-ref.js';
import type { ViewRings } from '../routing/view.js';
import { ReplayLog } from './replay-log.js';
import type { Replicator } from './replicator.js';

/** The replay log's cap for the whole node; past it, copy ops are refused (CLUSTER_BUSY) and the stream resends them. */
export const REPLAY_LOG_BYTES_MAX = 256 * 1024 * 1024;

/** With fewer copies than this, a new primary has no other in-sync copy to disagree with. */
const REPLICAS_LOGGED_MIN = 3;

export class Promotion {
  readonly log = new ReplayLog(REPLAY_LOG_BYTES_MAX);
  /** Ops re-sent on promotions, and promotions that re-sent any: for status. */
  ops_replayed = 0;
  promotions = 0;

  /**
   * A copy op `ref` of `batch` was accepted (R3 passed). Logs it when the view keeps 3 or more
   * copies and this node is an in-sync copy of its slot. False when the log is full: the caller refuses the op, so it is not applied
   * unlogged (the sender resends it once a watermark has made room).
   */
  accepted(ref: OpRef, batch: RequestBatch, rings: ViewRings, self: string): boolean {
    const placement = rings.current;
    const sender = batch.peer_id;
    if (placement === null || sender === undefined) return true;
    const log = this.log;
    // Read the watermark of every frame, whatever N is now, so an old log shrinks after N drops.
    const tag = log.frame(sender, batch.commit_id ?? 0, batch.commit_watermark ?? 0);
    if (placement.replicas < REPLICAS_LOGGED_MIN && (rings.target === null || rings.target.replicas < REPLICAS_LOGGED_MIN)) return true;
    // Only an in-sync copy can be promoted (R5): a catching-up target's scanned entries are not kept.
    if (!placement.inSyncHolder(self, ref.hash)) return true;
    if (log.full(ref.key_length + ref.value_length)) return false;
    log.add(sender, tag, ref.op, ref.hash, ref.keys.subarray(ref.key_offset, ref.key_offset + ref.key_length),
      ref.values.subarray(ref.value_offset, ref.value_offset + ref.value_length), ref.expiry_ms, ref.value_codec);
    return true;
  }

  /**
   * A view was adopted (after Replicator.adopt). For each sender logged here that the view marks
   * down or no longer has: the ops of slots this node is now primary of go to the replicator, and
   * the sender's log is dropped. `failed`: this node is down itself; it replays nothing.
   * Returns a log line, or null when nothing was replayed.
   */
  adopted(rings: ViewRings, self: string, failed: boolean, replicator: Replicator): string | null {
    const placement = rings.current;
    if (placement === null) return null;
    const members = new Set(rings.members().map((n) => n.id));
    const lines: string[] = [];
    for (const sender of this.log.sendersLogged()) {
      if (members.has(sender) && !placement.isDown(sender)) continue;
      const logged = this.log.take(sender);
      if (failed || logged.length === 0) continue;
      const mine = logged.filter((op) => placement.primaryOf(op.hash)?.id === self);
      const sent = replicator.replay(mine);
      if (sent === 0) continue;
      this.ops_replayed += sent;
      this.promotions++;
      lines.push(`${sent} op(s) applied from ${sender} after its last commit watermark`);
    }
    return lines.length === 0 ? null : `promoted: re-sending ${lines.join('; ')} to the other copies before serving them (R7)`;
  }
}

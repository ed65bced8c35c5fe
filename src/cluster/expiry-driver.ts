/**
 * Expiry in a cluster: only a key's primary deletes it when its time has passed, and the delete
 * is replicated like any write (docs/REPLICATION.md, "Expiry").
 *
 * Partition workers in a cluster delete nothing on their own: their active expiry reports the
 * expired keys it finds (Partition.expired_hook). For those this node is the primary of now,
 * this sends one DELETE_EXPIRED op each back to the same partition. The worker deletes the key
 * only if it has still expired when the op is applied (a write since the report may have given
 * it a new life), and the replicator copies that delete to the backups as a DELETE. Keys of
 * slots being handed off, or with a write still uncommitted, are left for a later report.
 */
import { OpRef } from '../engine/op-ref.js';
import type { Partition } from '../engine/partition.js';
import { PendingRequest } from '../engine/pending-request.js';
import { Op, Status } from '../protocol/constants.js';

const EMPTY = new Uint8Array(0);

export interface ExpiryHost {
  /** True if this node is serving and is the primary of this key hash, with nothing of it in flight. */
  deletesExpired(hash: number): boolean;
}

export class ExpiryDriver {
  /** Expired keys this node deleted as primary (each then replicated as a DELETE). */
  keys_expired = 0;
  /** Reported keys a write had renewed before the delete reached them. */
  keys_renewed = 0;
  private readonly ref = new OpRef();
  /** Partitions with a DELETE_EXPIRED request in flight: one at a time each, so reports cannot pile up. */
  private readonly busy = new Set<Partition>();

  constructor(private readonly host: ExpiryHost) {}

  onExpired(partition: Partition, keys: Uint8Array, key_lengths: Uint32Array, hashes: Uint32Array): void {
    if (this.busy.has(partition)) return;
    const chosen: number[] = [];
    const offsets: number[] = [];
    let offset = 0;
    for (let i = 0; i < hashes.length; i++) {
      if (this.host.deletesExpired(hashes[i]!)) {
        chosen.push(i);
        offsets.push(offset);
      }
      offset += key_lengths[i]!;
    }
    if (chosen.length === 0) return;
    this.busy.add(partition);
    const request = new PendingRequest(0, chosen.length, 0, 0, (done) => {
      this.busy.delete(partition);
      for (let i = 0; i < done.op_count; i++) {
        if (done.status[i] === Status.OK) this.keys_expired++;
        else if (done.status[i] === Status.NOT_FOUND) this.keys_renewed++;
      }
    });
    for (let j = 0; j < chosen.length; j++) {
      const i = chosen[j]!;
      partition.enqueue(this.ref.set(request, j, Op.DELETE_EXPIRED, hashes[i]!, keys, offsets[j]!, key_lengths[i]!, EMPTY, 0, 0));
    }
    partition.flush();
  }
}

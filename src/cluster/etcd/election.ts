/**
 * Controller election: at most one node at a time holds `controller`, a key bound to its
 * session lease and created only if absent (a transaction comparing create_revision == 0).
 * The key's create_revision is the holder's fencing token: unique, and greater for every
 * later holder, so whoever receives the controller's writes (a view CAS, a data move) can
 * refuse those of an older controller. Holding the key is not enough to act (Jepsen: an etcd
 * lock can expire while its holder still believes it holds it): a controller acts only while
 * `isLeader()`, which also requires its session's fence deadline not to have passed, and
 * writes to etcd guarded by its token (`leaderGuard()`).
 *
 * Why not etcd3's Election class: it grants its own Lease (etcd3's keep-alive: requested TTL,
 * no fencing deadline), so leadership could outlive this node's fence; and it implements the
 * Go client's queue of candidate keys, which we do not need for one controller among a
 * handful of boards. A single key plus a watch is a few dozen lines.
 */
import { EventEmitter } from 'node:events';
import type { Etcd3, ICompare, IKeyValue, Watcher } from 'etcd3';
import { resyncWatch } from './resync-watch.js';
import { ClusterEtcdError, etcdCall } from './errors.js';
import { ClusterKeys, checkKeyId } from './keys.js';
import type { EtcdSession, LeaseLoss } from './session.js';

export interface ElectionOptions {
  client: Etcd3;
  cluster: string;
  session: EtcdSession;
  node_id: string;
  /** While another node leads, the campaign re-checks at least this often (besides watching the key). */
  recheck_ms?: number;
  log?: (line: string) => void;
}

/** Delay before re-reading the controller key after a watch error or a failed read. */
const OBSERVE_RETRY_MS = 100;

export const ELECTION_DEFAULTS = { recheck_ms: 1000 } as const;

export interface Leader {
  node_id: string;
  /** create_revision of the controller key: the fencing token. */
  revision: number;
  lease_id: string;
}

export interface LeaderWatch {
  close(): Promise<void>;
}

export class ControllerElection extends EventEmitter {
  readonly keys: ClusterKeys;
  private readonly key: Buffer;
  private readonly client: Etcd3;
  private readonly session: EtcdSession;
  private current: Leader | null = null;
  private closed = false;

  constructor(private readonly options: ElectionOptions) {
    super();
    checkKeyId(options.node_id, 'node id');
    this.client = options.client;
    this.session = options.session;
    this.keys = new ClusterKeys(options.cluster);
    this.key = Buffer.from(this.keys.controller);
    this.session.on('lost', this.onLost);
  }

  private readonly onLost = (loss: LeaseLoss): void => {
    if (this.current !== null && this.current.lease_id === loss.lease_id) this.depose(`session lost: ${loss.reason}`);
  };

  private depose(reason: string): void {
    const was = this.current;
    this.current = null;
    if (was !== null) this.emit('deposed', { leader: was, reason });
  }

  private decode(kv: IKeyValue): Leader {
    let node_id = '';
    try {
      node_id = (JSON.parse(kv.value.toString()) as { node_id?: string }).node_id ?? '';
    } catch {
      // a foreign value: still a holder, just unnamed
    }
    return { node_id, revision: Number(kv.create_revision), lease_id: kv.lease };
  }

  /** True while this node holds the controller key under its current lease and may act (fence deadline not passed). */
  isLeader(): boolean {
    return this.current !== null && this.session.lease_id === this.current.lease_id && this.session.isLive();
  }

  /** This node's leadership, or null. */
  get leadership(): Leader | null {
    return this.isLeader() ? this.current : null;
  }

  /**
   * An etcd compare that holds only while this node still holds the controller key with its
   * token: add it to a transaction so that a deposed controller's write fails in etcd itself.
   */
  leaderGuard(): ICompare {
    const leader = this.leadership;
    if (leader === null) throw new ClusterEtcdError('LEASE_LOST', `${this.options.node_id} is not the controller`);
    return { key: this.key, target: 'Create', result: 'Equal', create_revision: leader.revision };
  }

  /** The current holder of the controller key, or null. */
  async leader(): Promise<Leader | null> {
    const response = await etcdCall('read the controller', () => this.client.kv.range({ key: this.key }));
    const kv = response.kvs[0];
    return kv ? this.decode(kv) : null;
  }

  /** Resolves once this node holds the controller key; rejects if the election is closed first. */
  async campaign(): Promise<Leader> {
    const value = Buffer.from(JSON.stringify({ node_id: this.options.node_id }));
    for (;;) {
      if (this.closed) throw new Error('election closed');
      const lease = this.session.isLive() ? this.session.lease_id : null;
      if (lease === null) {
        await this.waitFor(null);
        continue;
      }
      let response;
      try {
        response = await etcdCall('campaign', () =>
          this.client.kv.txn({
            compare: [{ key: this.key, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: { key: this.key, value, lease } }],
            failure: [{ request_range: { key: this.key } }],
          }),
        );
      } catch (err) {
        if (!(err instanceof ClusterEtcdError)) throw err;
        await this.waitFor(null);
        continue;
      }
      let leader: Leader | null = null;
      if (response.succeeded) leader = { node_id: this.options.node_id, revision: Number(response.header.revision), lease_id: lease };
      else {
        const kv = response.responses[0]?.response_range.kvs[0];
        // Our own key under our current lease (an earlier campaign that timed out but applied): it is ours.
        if (kv && kv.lease === lease) leader = this.decode(kv);
        else if (kv) {
          await this.waitFor(Number(response.header.revision));
          continue;
        } else continue;
      }
      if (this.session.lease_id !== lease) continue; // lost the lease meanwhile: the key dies with it
      this.current = leader;
      this.emit('elected', leader);
      return leader;
    }
  }

  /** Waits until the controller key may have been deleted (watched from `after_revision`), the session renews, or recheck_ms passes. */
  private waitFor(after_revision: number | null): Promise<void> {
    return new Promise<void>((resolve) => {
      let watcher: Watcher | null = null;
      const done = (): void => {
        clearTimeout(timer);
        this.session.off('session', done);
        if (watcher !== null) void watcher.cancel().catch(() => {});
        resolve();
      };
      const timer = setTimeout(done, this.options.recheck_ms ?? ELECTION_DEFAULTS.recheck_ms);
      this.session.once('session', done);
      if (after_revision !== null) {
        watcher = this.client.watch().key(this.key).startRevision(String(after_revision + 1)).watcher();
        watcher.on('delete', done);
        watcher.on('error', done);
      }
    });
  }

  /** Gives up the controller key if this node holds it (only the exact key this node created). */
  async resign(): Promise<void> {
    const was = this.current;
    if (was === null) return;
    this.depose('resigned');
    await etcdCall('resign', () =>
      this.client.kv.txn({
        compare: [{ key: this.key, target: 'Create', result: 'Equal', create_revision: was.revision }],
        success: [{ request_delete_range: { key: this.key } }],
      }),
    );
  }

  /** Calls `onLeader` with the holder now and on every change (null: nobody holds it). */
  observe(onLeader: (leader: Leader | null) => void): LeaderWatch {
    return resyncWatch({
      retry_ms: OBSERVE_RETRY_MS,
      read: async () => {
        const response = await this.client.kv.range({ key: this.key });
        const kv = response.kvs[0];
        return { revision: Number(response.header.revision), deliver: () => onLeader(kv ? this.decode(kv) : null) };
      },
      watch: (start_revision) => {
        const watcher = this.client.watch().key(this.key).startRevision(String(start_revision)).watcher();
        watcher.on('put', (put) => onLeader(this.decode(put)));
        watcher.on('delete', () => onLeader(null));
        return watcher;
      },
    });
  }

  /** Stops campaigning and observing; does not resign (call resign() first to hand over at once). */
  close(): void {
    this.closed = true;
    this.session.off('lost', this.onLost);
  }
}

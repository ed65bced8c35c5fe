/**
 * The authoritative cluster view in etcd: read it, change it by compare-and-swap, watch it.
 *
 * Only one change can win from a given state: `casView` compares the view key's mod_revision
 * with the one the caller read and puts the next view in ONE etcd transaction (etcd
 * transactions are strict serializable; Jepsen 2020), so of two writers racing from the same
 * revision exactly one succeeds and the other gets the winner's view back. Every successful
 * change raises the epoch by exactly one; anything else is a bug in the caller and throws
 * VIEW_EPOCH_INVALID before writing.
 *
 * `watchView` delivers every change in revision order, each at most once. etcd watches are
 * gap-free while they run, but a watch that (re)starts from a revision that compaction has
 * removed is cancelled by etcd. Then, and on any other watch error, the watcher re-reads the
 * view and watches again from the revision of that read: intermediate views may be skipped,
 * the latest one never is. Views that fail the signature check are logged and dropped.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { resyncWatch } from './resync-watch.js';
import { ClusterEtcdError, etcdCall } from './errors.js';
import { ClusterKeys } from './keys.js';
import { checkEpoch, signView, verifyView, type EpochView } from './signed-view.js';

export interface ViewStoreOptions<V extends EpochView> {
  client: Etcd3;
  cluster: string;
  secret: string;
  /** Validates the shape of a verified view (e.g. routing/view.ts checkView). Default: epoch only. */
  check?: (value: unknown) => V;
  /** Where dropped (forged) views and watch resyncs are reported. Default: console.error. */
  log?: (line: string) => void;
  /** Delay before re-reading after a watch error, so a down etcd is not hammered. */
  resync_delay_ms?: number;
}

export const VIEW_STORE_DEFAULTS = { resync_delay_ms: 100 } as const;

export interface StoredView<V> {
  view: V;
  /** The etcd revision that wrote this view: what casView compares. */
  mod_revision: number;
}

export type CasResult<V> = { ok: true; mod_revision: number } | { ok: false; current: StoredView<V> | null };

export interface ViewWatch {
  /** mod_revision of the last view delivered (0 before the first). */
  readonly last_mod_revision: number;
  /** How many times the watch re-read the view after an error (e.g. compaction). */
  readonly resyncs: number;
  close(): Promise<void>;
}

function revisionOf(text: string): number {
  const revision = Number(text);
  // etcd revisions are int64; beyond 2^53 our number arithmetic would be wrong. Unreachable in practice.
  if (!Number.isSafeInteger(revision) || revision < 0) throw new RangeError(`etcd revision ${text} out of range`);
  return revision;
}

export class ViewStore<V extends EpochView = EpochView> {
  readonly keys: ClusterKeys;
  private readonly client: Etcd3;
  private readonly key: Buffer;
  private readonly log: (line: string) => void;
  private readonly resync_delay_ms: number;

  constructor(private readonly options: ViewStoreOptions<V>) {
    this.client = options.client;
    this.keys = new ClusterKeys(options.cluster);
    this.key = Buffer.from(this.keys.view);
    this.log = options.log ?? ((line) => console.error(line));
    this.resync_delay_ms = options.resync_delay_ms ?? VIEW_STORE_DEFAULTS.resync_delay_ms;
    signView(options.cluster, { epoch: 0 }, options.secret); // fails fast on an empty secret
  }

  private decode(kv: IKeyValue): StoredView<V> {
    return { view: verifyView(this.options.cluster, kv.value, this.options.secret, this.options.check), mod_revision: revisionOf(kv.mod_revision) };
  }

  /** The current view, or null if none was ever written. Throws VIEW_SIGNATURE_INVALID or CLUSTER_UNAVAILABLE. */
  async readView(): Promise<StoredView<V> | null> {
    return (await this.readWithRevision()).stored;
  }

  private async readWithRevision(): Promise<{ stored: StoredView<V> | null; revision: number }> {
    const response = await etcdCall('read the view', () => this.client.kv.range({ key: this.key }));
    const kv = response.kvs[0];
    return { stored: kv ? this.decode(kv) : null, revision: revisionOf(response.header.revision) };
  }

  /**
   * Puts `next` if the view's mod_revision is still `expected_mod_revision` (0: no view yet).
   * On a conflict, returns the view that won. `next.epoch` must be the current epoch + 1
   * (any epoch when creating, so a cluster can move here from gossip at its current epoch).
   */
  async casView(expected_mod_revision: number, next: V): Promise<CasResult<V>> {
    if (!Number.isSafeInteger(expected_mod_revision) || expected_mod_revision < 0) throw new RangeError('expected_mod_revision must be a revision or 0');
    checkEpoch(next);
    if (expected_mod_revision !== 0) {
      // Check the epoch against the view at the revision we will compare with. If the txn
      // below succeeds, the key still holds exactly this value, so the check holds for it.
      const current = await this.readView();
      if (current === null || current.mod_revision !== expected_mod_revision) return { ok: false, current };
      if (next.epoch !== current.view.epoch + 1) {
        throw new ClusterEtcdError('VIEW_EPOCH_INVALID', `a view change must raise the epoch by one: ${current.view.epoch} -> ${next.epoch}`);
      }
    }
    const value = Buffer.from(signView(this.options.cluster, next, this.options.secret));
    const response = await etcdCall('compare-and-swap the view', () =>
      this.client.kv.txn({
        compare: [{ key: this.key, target: 'Mod', result: 'Equal', mod_revision: expected_mod_revision }],
        success: [{ request_put: { key: this.key, value } }],
        failure: [{ request_range: { key: this.key } }],
      }),
    );
    if (response.succeeded) return { ok: true, mod_revision: revisionOf(response.header.revision) };
    const kv = response.responses[0]?.response_range.kvs[0];
    return { ok: false, current: kv ? this.decode(kv) : null };
  }

  /**
   * Calls `onView` with the current view (if any) and then every later one, in order. With
   * `after_mod_revision` (a revision this caller already processed, e.g. remembered across a
   * restart), it first replays the history after it, or, if compaction removed that history,
   * re-reads and goes on from the latest view.
   */
  watchView(onView: (stored: StoredView<V>) => void, options: { after_mod_revision?: number } = {}): ViewWatch {
    let closed = false;
    let last_mod_revision = options.after_mod_revision ?? 0;
    const deliver = (kv: IKeyValue): void => {
      const mod_revision = revisionOf(kv.mod_revision);
      if (closed || mod_revision <= last_mod_revision) return; // replayed after a reconnect
      let stored: StoredView<V>;
      try {
        stored = this.decode(kv);
      } catch (err) {
        last_mod_revision = mod_revision; // dropped, not retried
        this.log(`pikv etcd: dropped the view written at revision ${mod_revision}: ${(err as Error).message}`);
        return;
      }
      last_mod_revision = mod_revision;
      onView(stored);
    };
    const watch = resyncWatch({
      retry_ms: this.resync_delay_ms,
      ...(options.after_mod_revision !== undefined ? { start_revision: options.after_mod_revision + 1 } : {}),
      read: async () => {
        const response = await this.client.kv.range({ key: this.key });
        const kv = response.kvs[0];
        return { revision: revisionOf(response.header.revision), deliver: () => kv && deliver(kv) };
      },
      watch: (start_revision) => {
        const watcher = this.client.watch().key(this.key).startRevision(String(start_revision)).watcher();
        watcher.on('put', (kv) => deliver(kv));
        watcher.on('delete', () => this.log(`pikv etcd: the view key ${this.keys.view} was deleted; keeping the last view`));
        return watcher;
      },
      // A cancel from etcd (compaction, or anything else) ends a watcher: re-read the view.
      onError: (err) => this.log(`pikv etcd: view watch cancelled (${err.message}); re-reading the view`),
    });
    return {
      get last_mod_revision() {
        return last_mod_revision;
      },
      get resyncs() {
        return watch.resyncs;
      },
      async close(): Promise<void> {
        closed = true;
        await watch.close();
      },
    };
  }
}

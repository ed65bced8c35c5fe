/**
 * Live membership: each running node keeps `members/<node_id>` bound to its session lease, so
 * the key exists exactly while etcd considers the node's lease alive. A node that crashes,
 * hangs or is cut off from etcd disappears within its lease TTL, and only then: the controller
 * reads liveness from here, which is what keeps it from reassigning a node's ranges before
 * etcd has actually expired that node's lease (docs/ETCD.md).
 *
 * The key holds `{url, weight, started_at_ms}`. When the session gets a new lease (after
 * losing one, or after etcd lost it), the registration is written again under the new lease.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { resyncWatch } from './resync-watch.js';
import { etcdCall } from './errors.js';
import { ClusterKeys, checkKeyId, type MemberInfo } from './keys.js';
import type { EtcdSession } from './session.js';

export interface MembersOptions {
  client: Etcd3;
  cluster: string;
  log?: (line: string) => void;
  /** Delay before retrying a failed re-registration or re-reading after a watch error. */
  retry_delay_ms?: number;
}

export const MEMBERS_DEFAULTS = { retry_delay_ms: 100 } as const;

export interface MemberRecord extends MemberInfo {
  node_id: string;
  /** The lease the key is bound to (decimal string). */
  lease_id: string;
  mod_revision: number;
}

export interface MemberRegistration {
  /** How many times the key was written (1 + re-registrations after a new lease). */
  readonly writes: number;
  /** Stops re-registering; with `remove` (default) deletes the key now. */
  close(options?: { remove?: boolean }): Promise<void>;
}

export interface MembersWatch {
  close(): Promise<void>;
}

export class Members {
  readonly keys: ClusterKeys;
  private readonly client: Etcd3;
  private readonly log: (line: string) => void;
  private readonly retry_delay_ms: number;

  constructor(options: MembersOptions) {
    this.client = options.client;
    this.keys = new ClusterKeys(options.cluster);
    this.log = options.log ?? ((line) => console.error(line));
    this.retry_delay_ms = options.retry_delay_ms ?? MEMBERS_DEFAULTS.retry_delay_ms;
  }

  private decode(kv: IKeyValue): MemberRecord | null {
    const node_id = this.keys.memberIdOf(kv.key.toString());
    if (node_id === null) return null;
    try {
      const info = JSON.parse(kv.value.toString()) as Partial<MemberInfo>;
      if (typeof info.url !== 'string' || typeof info.weight !== 'number' || typeof info.started_at_ms !== 'number') throw new Error('missing fields');
      const incarnation = typeof info.incarnation === 'string' ? info.incarnation : undefined;
      const bytes_capacity = typeof info.bytes_capacity === 'number' ? info.bytes_capacity : undefined;
      return { node_id, url: info.url, weight: info.weight, started_at_ms: info.started_at_ms, incarnation, bytes_capacity, lease_id: kv.lease, mod_revision: Number(kv.mod_revision) };
    } catch (err) {
      this.log(`pikv etcd: ignoring malformed member key ${kv.key.toString()}: ${(err as Error).message}`);
      return null;
    }
  }

  /** Writes `members/<node_id>` under the session's lease now, and again after every new lease. Throws CLUSTER_UNAVAILABLE or LEASE_LOST if the first write fails. */
  async register(session: EtcdSession, node_id: string, info: { url: string; weight: number; incarnation?: string; bytes_capacity?: number }): Promise<MemberRegistration> {
    const key = Buffer.from(this.keys.member(checkKeyId(node_id, 'node id')));
    const value = Buffer.from(JSON.stringify({ url: info.url, weight: info.weight, started_at_ms: Date.now(), incarnation: info.incarnation, bytes_capacity: info.bytes_capacity } satisfies MemberInfo));
    let closed = false;
    let writes = 0;
    let retry: NodeJS.Timeout | null = null;
    const write = async (): Promise<void> => {
      const lease = session.lease_id;
      if (lease === null) throw new Error('the session has no lease');
      await etcdCall('register the member', () => this.client.kv.put({ key, value, lease }));
      writes += 1;
    };
    const rewrite = (): void => {
      if (closed || retry !== null) return;
      write().catch((err: Error) => {
        if (closed) return;
        this.log(`pikv etcd: re-registering ${node_id} failed (${err.message}); retrying`);
        retry = setTimeout(() => {
          retry = null;
          rewrite();
        }, this.retry_delay_ms);
      });
    };
    await write();
    session.on('session', rewrite);
    return {
      get writes() {
        return writes;
      },
      close: async (options: { remove?: boolean } = {}): Promise<void> => {
        closed = true;
        session.off('session', rewrite);
        if (retry !== null) clearTimeout(retry);
        if (options.remove !== false) await etcdCall('remove the member', () => this.client.kv.deleteRange({ key }));
      },
    };
  }

  /** Every live member (a key exists ⇔ its lease is alive), by node id. */
  async list(): Promise<Map<string, MemberRecord>> {
    return (await this.listWithRevision()).members;
  }

  private async listWithRevision(): Promise<{ members: Map<string, MemberRecord>; revision: number }> {
    const response = await etcdCall('list members', () => this.client.getAll().prefix(this.keys.members_prefix).exec());
    const members = new Map<string, MemberRecord>();
    for (const kv of response.kvs) {
      const record = this.decode(kv);
      if (record !== null) members.set(record.node_id, record);
    }
    return { members, revision: Number(response.header.revision) };
  }

  /** For each of `node_ids` (e.g. the view's nodes): is its lease alive? */
  async liveness(node_ids: readonly string[]): Promise<Map<string, boolean>> {
    const members = await this.list();
    return new Map(node_ids.map((id) => [id, members.has(id)]));
  }

  /** Calls `onChange` with the full live set now and after every change. Survives etcd restarts and compaction by re-listing. */
  watch(onChange: (members: ReadonlyMap<string, MemberRecord>) => void): MembersWatch {
    let members = new Map<string, MemberRecord>();
    let closed = false;
    const emit = (): void => {
      if (!closed) onChange(new Map(members));
    };
    const watch = resyncWatch({
      retry_ms: this.retry_delay_ms,
      read: async () => {
        const listed = await this.listWithRevision();
        return {
          revision: listed.revision,
          deliver: () => {
            members = listed.members;
            emit();
          },
        };
      },
      watch: (start_revision) => {
        const watcher = this.client.watch().prefix(this.keys.members_prefix).startRevision(String(start_revision)).watcher();
        watcher.on('put', (kv) => {
          const record = this.decode(kv);
          if (record === null) return;
          members.set(record.node_id, record);
          emit();
        });
        watcher.on('delete', (kv) => {
          const node_id = this.keys.memberIdOf(kv.key.toString());
          if (node_id !== null && members.delete(node_id)) emit();
        });
        return watcher;
      },
    });
    return {
      close: async (): Promise<void> => {
        closed = true;
        await watch.close();
      },
    };
  }
}

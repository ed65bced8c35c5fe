/**
 * This node's membership in an etcd-backed cluster (docs/MEMBERSHIP.md): its lease and member
 * key, the view it routes by (read and watched from etcd, never from peers), its reports to
 * the controller (a move drained, its clean-up done), and the admin requests it submits.
 *
 * The serving gate (invariant I5): `serving()` is true only while this node's lease fence
 * holds and it has read the view in its current etcd session. A node that starts, restarts or
 * loses its session answers CLUSTER_UNAVAILABLE until then, so it never serves an old ring.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { checkView, type ClusterView } from '../routing/view.js';
import type { RingNode } from '../routing/ring.js';
import { checkAdminRequest, ClusterKeys, createEtcdClient, type CleanReport, EtcdSession, Members, ViewStore, type AdminRequest, type MemberRegistration, type ViewWatch } from './etcd/index.js';
import { Controller } from './controller.js';

export interface EtcdMembershipOptions {
  hosts: string[];
  cluster: string;
  secret: string;
  self: RingNode;
  lease_ttl_ms: number;
  controller_tick_ms: number;
  /** N for a cluster this node creates (docs/REPLICATION.md). */
  replicas: number;
  min_replicas: number;
  /** With N >= 2, how long a down node keeps its place before its copies are rebuilt elsewhere. */
  down_grace_ms: number;
  /**
   * Create the cluster (epoch 1, this node alone) if etcd holds no view. False for an etcd found
   * on the LAN (--etcd auto): it was trusted only because it held a verified view, so a view
   * gone missing there is waited for, never replaced by a new cluster.
   */
  create_if_absent: boolean;
  /** True once this node, outside the view, has deleted its old copies and may ask to join. */
  readyToJoin: () => boolean;
  /** The lease fence ran out: this node serves nothing until it has read the view in a new session. */
  onFenceLost: () => void;
  /** Table bytes in use and in total, reported with each clean report so the controller can refuse a change that would overfill a node. */
  memory: () => NodeMemory;
  log: (message: string) => void;
  /** Every committed view, in epoch order (possibly skipping some after a watch resync). */
  onView: (view: ClusterView) => void;
}

export interface NodeMemory {
  bytes_used: number;
  bytes_capacity: number;
}

/** Delay between attempts to reach etcd at start. */
const START_RETRY_MS = 500;

export class EtcdMembership {
  readonly keys: ClusterKeys;
  /** This process's incarnation: a restart is a new one (docs/REPLICATION.md). */
  readonly incarnation = randomBytes(8).toString('hex');
  private options: EtcdMembershipOptions;
  private readonly client: Etcd3;
  private session: EtcdSession | null = null;
  private store: ViewStore<ClusterView> | null = null;
  private registration: MemberRegistration | null = null;
  private watch: ViewWatch | null = null;
  private controller: Controller | null = null;
  /** The session (lease id) in which the view was last read; serving needs it to be the current one. */
  private view_lease: string | null = null;
  private last_view: ClusterView | null = null;
  private stopped = false;
  private last_join_request_epoch = -1;
  /** The epochs whose drained and clean reports etcd has acknowledged, and the clean report's lease. */
  private drained_reported = -1;
  private clean_reported = -1;
  private clean_reported_lease: string | null = null;
  private reporting = false;

  constructor(options: EtcdMembershipOptions) {
    this.options = options;
    this.keys = new ClusterKeys(options.cluster);
    this.client = createEtcdClient({ hosts: options.hosts });
  }

  /** Connects, registers, reads the view (creating the first one if there is none), and watches it. Retries until etcd answers. */
  async start(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        await this.startOnce();
        return;
      } catch (error) {
        this.options.log(`etcd: cannot start the session (${(error as Error).message}); retrying in ${START_RETRY_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, START_RETRY_MS));
      }
    }
  }

  private async startOnce(): Promise<void> {
    const { options } = this;
    const session = this.session ?? await EtcdSession.start({ client: this.client, lease_ttl_ms: options.lease_ttl_ms, log: options.log });
    this.session = session;
    session.on('lost', () => {
      this.view_lease = null;
      options.log('etcd: lease lost; serving nothing until the view is read again in a new session');
      options.onFenceLost();
    });
    session.on('session', () => void this.readAgain());
    // A clean report from before a restart may still stand under the old lease: the tables
    // this process loaded are not known clean, so the controller must not count it.
    await this.client.delete().key(`${this.keys.prefix}clean/${options.self.id}`);
    const members = new Members({ client: this.client, cluster: options.cluster, log: options.log });
    this.registration ??= await members.register(session, options.self.id, {
      url: options.self.url, weight: options.self.weight, incarnation: this.incarnation, bytes_capacity: options.memory().bytes_capacity,
    });
    const store = new ViewStore<ClusterView>({ client: this.client, cluster: options.cluster, secret: options.secret, check: checkView, log: options.log });
    this.store = store;
    let stored = await store.readView();
    if (stored === null && !options.create_if_absent) throw new Error(`etcd holds no view of cluster "${options.cluster}", and this node found that etcd on the LAN: it does not create a cluster there`);
    if (stored === null) {
      const first: ClusterView = { epoch: 1, nodes: [{ ...options.self, incarnation: this.incarnation }], replicas: options.replicas };
      if (options.min_replicas > 1) first.min_replicas = Math.min(options.min_replicas, options.replicas);
      const created = await store.casView(0, first);
      if (created.ok) options.log(`etcd: created cluster "${options.cluster}" with this node alone (epoch 1, ${options.replicas} copies per key once there are enough nodes)`);
      stored = await store.readView();
    }
    if (stored === null) throw new Error('the view vanished right after it was created');
    this.deliver(stored.view, session);
    this.watch = store.watchView((next) => this.deliver(next.view, this.session));
    this.controller = new Controller({
      client: this.client, session, store, members, keys: this.keys, node_id: options.self.id,
      tick_ms: options.controller_tick_ms, down_grace_ms: options.down_grace_ms, log: options.log,
    });
    this.controller.start();
  }

  private async readAgain(): Promise<void> {
    const store = this.store;
    const session = this.session;
    if (store === null || session === null) return;
    try {
      const stored = await store.readView();
      if (stored !== null) this.deliver(stored.view, session);
    } catch (error) {
      this.options.log(`etcd: reading the view after a new session failed: ${(error as Error).message}`);
    }
  }

  private deliver(view: ClusterView, session: EtcdSession | null): void {
    if (this.stopped || session === null) return;
    if (session.isLive()) this.view_lease = session.lease_id;
    this.last_view = view;
    this.options.onView(view);
    this.requestJoinIfAbsent();
  }

  /**
   * A node that is not in the view (nor joining) asks to join, once per epoch it sees, once it
   * has deleted its old copies (readyToJoin); again on a later tick if the write failed.
   * Called with each view and on each tick.
   */
  requestJoinIfAbsent(): void {
    const self = this.options.self;
    const view = this.last_view;
    if (view === null || view.nodes.some((n) => n.id === self.id) || view.next?.some((n) => n.id === self.id)) return;
    if (this.last_join_request_epoch === view.epoch || this.left || !this.options.readyToJoin()) return;
    const epoch = view.epoch;
    this.last_join_request_epoch = epoch;
    void this.submit({ kind: 'join', node_id: self.id, url: self.url, weight: self.weight })
      .catch((error: Error) => {
        // Ask again on the next tick: the view may not change again for a long time, and a node
        // left out after one failed write stays out (test/chaos-rejoin.test.ts).
        if (this.last_join_request_epoch === epoch) this.last_join_request_epoch = -1;
        this.options.log(`etcd: join request failed (asking again): ${error.message}`);
      });
  }

  /** Set once this node has left: it never asks to join again. */
  left = false;

  /** The advertised URL is known only once the node listens; set it before start(). */
  setSelfUrl(url: string): void {
    this.options.self = { ...this.options.self, url };
  }

  /** True while this node may serve data ops (I5 and the lease fence). */
  serving(): boolean {
    const session = this.session;
    return session !== null && session.isLive() && this.view_lease !== null && this.view_lease === session.lease_id;
  }

  /**
   * Tells the controller what it waits for, until etcd has it: this node drained the move at
   * `epoch` (I3), and it is clean at `epoch`. Called on each event and again every tick, so a
   * failed write is retried; a clean report is written again under a new lease (the old one's
   * keys are gone with it).
   */
  report(state: { epoch: number; drained: boolean; clean: boolean }): void {
    if (this.reporting) return;
    const { epoch } = state;
    const lease = this.lease_id;
    const drained = state.drained && this.drained_reported !== epoch;
    const clean = state.clean && (this.clean_reported !== epoch || this.clean_reported_lease !== lease);
    if (!drained && !clean) return;
    this.reporting = true;
    const writes: Promise<void>[] = [];
    if (drained) writes.push(this.reportDrained(epoch).then(() => void (this.drained_reported = epoch)));
    if (clean) {
      writes.push(this.reportClean(epoch).then(() => {
        this.clean_reported = epoch;
        this.clean_reported_lease = lease;
      }));
    }
    Promise.all(writes)
      .catch((error: Error) => this.options.log(`etcd: report at epoch ${epoch} failed (${error.message}); retrying`))
      .finally(() => (this.reporting = false));
  }

  /** An admin op (CLUSTER_ADMIN payload) becomes a request for the controller (docs/MEMBERSHIP.md). */
  submitAdmin(payload: Record<string, unknown>): void {
    const action = payload['action'];
    if (action === 'join') throw new Error('with etcd, a node joins by starting with --etcd; there is no join op');
    if (action === 'set-replicas' || action === 'set-min-replicas') {
      const request = action === 'set-replicas'
        ? checkAdminRequest({ kind: action, replicas: payload['replicas'] })
        : checkAdminRequest({ kind: action, min_replicas: payload['min_replicas'] });
      this.options.log(`admin ${action} ${String(payload['replicas'] ?? payload['min_replicas'])}: request written to etcd for the controller`);
      void this.submit(request).catch((error: Error) => this.options.log(`admin ${action}: could not write the request to etcd: ${error.message}`));
      return;
    }
    if (action !== 'leave' && action !== 'remove') throw new Error(`unknown admin action ${JSON.stringify(action)}`);
    const id = String(payload['id']);
    const force = payload['force'] === true;
    this.options.log(`admin ${action} ${id}${force ? ' --force' : ''}: request written to etcd for the controller`);
    const request = { kind: action, node_id: id, ...(force ? { force: true } : {}) } as AdminRequest;
    void this.submit(request).catch((error: Error) => this.options.log(`admin ${action} ${id}: could not write the request to etcd: ${error.message}`));
  }

  /** Writes an admin request for the controller; one key per kind and node, so a repeat is idempotent. */
  async submit(request: AdminRequest): Promise<void> {
    const id = request.kind === 'set-replicas' || request.kind === 'set-min-replicas' ? request.kind : `${request.kind}-${request.node_id}`;
    await this.client.put(this.keys.request(id)).value(JSON.stringify(request));
  }

  /** This node has handed off everything it owes for the change at `epoch` (I3). */
  async reportDrained(epoch: number): Promise<void> {
    await this.client.put(`${this.keys.prefix}moves/${epoch}/${this.options.self.id}`).value('drained');
  }

  /** This node holds no key outside its ranges at `epoch` (bound to its lease: a dead node reports nothing). */
  async reportClean(epoch: number): Promise<void> {
    const lease = this.session?.lease_id;
    if (lease === null || lease === undefined) return;
    const report: CleanReport = { epoch, ...this.options.memory() };
    await this.client.put(`${this.keys.prefix}clean/${this.options.self.id}`).value(JSON.stringify(report)).lease(lease);
  }

  /** The current lease, or null: keys bound to an older lease are gone and must be written again. */
  get lease_id(): string | null {
    return this.session?.lease_id ?? null;
  }

  /** Ids of members whose lease is alive. */
  async liveMembers(): Promise<Set<string>> {
    const members = await new Members({ client: this.client, cluster: this.options.cluster, log: this.options.log }).list();
    return new Set(members.keys());
  }

  get controller_state(): { controller: boolean; fence_ms_left: number } {
    return { controller: this.controller?.is_leader === true, fence_ms_left: this.session === null ? 0 : Math.max(0, Math.round(this.session.fenceDeadlineMs() - performance.now())) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.stop();
    await this.watch?.close().catch(() => {});
    await this.registration?.close().catch(() => {});
    this.session?.close();
    this.client.close();
  }
}

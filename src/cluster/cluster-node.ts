/**
 * This node's part in the cluster: the view it routes by, its links to the other nodes, the
 * cluster ops (RING, CLUSTER_STATUS, and the peer-only HEARTBEAT, VIEW, ADMIN and DRAINED),
 * and the routing hook the dispatcher calls for every op.
 *
 * Views come from etcd (etcd-membership.ts, docs/MEMBERSHIP.md) or, without --etcd, from the
 * older gossip membership (gossip-membership.ts). Each adopted view is reconciled here, in
 * order: peer links, the copy plan of the replicator (replicator.ts, docs/REPLICATION.md), the
 * data move of a change in progress (migration.ts), and the clean-up of copies this node no
 * longer keeps (cleanup.ts). Heartbeats carry the epoch each node is clean at; a change starts
 * only once every member is clean, so a range never moves back to a node that still holds
 * stale copies of it.
 *
 * Without cluster settings (config null) the node is a one-node view and routes nothing:
 * the dispatcher skips every hook but RING and CLUSTER_STATUS.
 */
import { WireCodec } from '../protocol/codec.js';
import type { RequestBatch } from '../protocol/codec.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError } from '../protocol/errors.js';
import { KeyScan } from './key-scan.js';
import type { Partition } from '../engine/partition.js';
import type { OpRouter } from '../engine/op-router.js';
import type { OpRef } from '../engine/op-ref.js';
import type { PendingRequest } from '../engine/pending-request.js';
import type { ReplyPacket, RequestPacket } from '../engine/packet.js';
import { Cleanup, losesRanges, type CleanupProgress } from './cleanup.js';
import type { ClusterConfig } from './cluster-config.js';
import { peerStatus, replicationStatus, type ClusterStatus } from './cluster-status.js';
import { EtcdMembership } from './etcd-membership.js';
import { ExpiryDriver } from './expiry-driver.js';
import { Forwarder } from './forwarder.js';
import { GossipMembership } from './gossip-membership.js';
import { Migration, type MigrationProgress } from './migration.js';
import { PeerLink } from './peer-link.js';
import { Promotion } from './promotion.js';
import { Replicator } from './replicator.js';
import type { RingNode } from '../routing/ring.js';
import { checkView, isNewer, ViewRings, type ClusterView } from '../routing/view.js';


type Logger = (message: string) => void;

export class ClusterNode implements OpRouter {
  readonly routes: boolean;
  private readonly config: ClusterConfig | null;
  private readonly self: string;
  private readonly partitions: Partition[];
  private readonly codec = new WireCodec();
  private readonly log: Logger;
  private readonly listenUrl: () => string;
  private readonly onLeft: () => void;
  private rings: ViewRings;
  private readonly links = new Map<string, PeerLink>();
  private readonly forwarder: Forwarder;
  private migration: Migration | null = null;
  private last_migration: MigrationProgress | null = null;
  private cleanup: Cleanup | null = null;
  private last_cleanup: CleanupProgress | null = null;
  /** The epoch at which this node holds no key outside its ranges; -1 until its first clean-up finished. */
  private clean_epoch = -1;
  private keys_cleaned_total = 0;
  /** Each peer's clean epoch, from heartbeats both ways. */
  private readonly peer_clean = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private was_member = false;
  /** The last adopted view had this node in `nodes` (not only joining, in `next`). */
  private was_full_member = false;
  /** The last adopted view marked this node down (or admitted an older incarnation of it). */
  private was_failed = false;
  /** Set once this node has left: it never asks to join again. */
  private left = false;
  /** Gossip membership (docs/CLUSTER.md), when clustered without etcd; null otherwise. */
  private readonly gossip: GossipMembership | null = null;
  /** etcd membership (docs/MEMBERSHIP.md), or null in gossip mode and for a lone node. */
  private readonly membership: EtcdMembership | null = null;
  /** Copies this node's writes to the other replicas of its slots (docs/REPLICATION.md). */
  private readonly replicator: Replicator;
  private readonly promotion = new Promotion();
  /** Cluster-wide key listing and counting (RESP SCAN, DBSIZE, FLUSHALL). */
  readonly keys: KeyScan;

  constructor(config: ClusterConfig | null, partitions: Partition[], log: Logger, listenUrl: () => string, onLeft: () => void) {
    this.config = config;
    this.routes = config !== null;
    this.self = config?.node_id ?? 'local';
    this.partitions = partitions;
    this.log = log;
    this.listenUrl = listenUrl;
    this.onLeft = onLeft;
    this.rings = new ViewRings({ epoch: 0, nodes: [] });
    this.forwarder = new Forwarder((id) => this.links.get(id), () => this.rings.view.epoch, (hash) => {
      const owner = this.rings.current?.primaryOf(hash) ?? null;
      return owner === null || owner.id === this.self ? null : owner;
    });
    this.replicator = new Replicator((id) => this.links.get(id), () => this.rings.view.epoch, () => this.migration?.onStreamChange());
    this.keys = new KeyScan(partitions, {
      serving: () => !this.routes || this.serving(),
      isPrimary: (hash) => !this.routes || this.rings.current?.primaryOf(hash)?.id === this.self,
      scanNodes: () => {
        const placement = this.rings.current;
        if (!this.routes || placement === null) return { ids: [this.self], self: this.self };
        return { ids: this.rings.view.nodes.map((n) => n.id).filter((id) => !placement.isDown(id)).sort(), self: this.self };
      },
      askPeer: (id, request) => this.links.get(id)?.query(Op.SCAN, request) ?? Promise.reject(new PikvError(ErrorCode.NODE_DOWN, `no link to node ${id}`)),
    });
    // --etcd auto is resolved to endpoints before a node is built (cli/serve.ts): never gossip instead.
    if (config !== null && config.etcd_discover && config.etcd.length === 0) throw new Error('--etcd auto: the etcd endpoints must be found before the node starts');
    if (config !== null && config.etcd.length === 0) {
      this.gossip = new GossipMembership({
        self: this.self,
        view: () => this.rings.view,
        members: () => this.rings.members(),
        links: () => this.links,
        adopt: (view, source) => this.adopt(view, source),
        cleanEpochOf: (id) => (id === this.self ? this.clean_epoch : this.peer_clean.get(id)),
        selfNode: () => this.selfNode(),
        log,
      }, config);
    }
    if (config !== null && config.etcd.length > 0) {
      this.membership = new EtcdMembership({
        hosts: config.etcd, cluster: config.cluster_name, secret: config.cluster_secret,
        self: { id: config.node_id, url: config.advertise, weight: config.weight },
        lease_ttl_ms: config.lease_ttl_ms, controller_tick_ms: config.controller_tick_ms, log,
        replicas: config.replicas, min_replicas: config.min_replicas, down_grace_ms: config.down_grace_ms,
        create_if_absent: !config.etcd_discover,
        readyToJoin: () => this.clean_epoch === this.rings.view.epoch,
        onFenceLost: () => this.replicator.answerEarly(),
        memory: () => {
          let bytes_used = 0, bytes_capacity = 0;
          for (const partition of this.partitions) {
            const stats = partition.table.stats();
            bytes_used += stats.bytes_used;
            bytes_capacity += stats.bytes_capacity;
          }
          return { bytes_used, bytes_capacity };
        },
        onView: (view) => this.adopt(view, 'etcd'),
      });
    }
  }

  /**
   * etcd mode: true while this node may serve data ops: it holds the view in its live session,
   * and the view does not name an older incarnation of it (a restart before its old one was
   * marked down, docs/REPLICATION.md).
   */
  private serving(): boolean {
    return this.membership === null || (this.membership.serving() && !this.replacedIncarnation(this.rings.view));
  }

  /** True if `view` admits another incarnation of this node that is not marked down. */
  private replacedIncarnation(view: ClusterView): boolean {
    if (this.membership === null) return false;
    const entry = view.nodes.find((n) => n.id === this.self);
    return entry?.incarnation !== undefined && entry.incarnation !== this.membership.incarnation && view.down?.includes(this.self) !== true;
  }

  /** Fence check when an answer leaves (R2): a node past its lease fence answers nothing it took before. */
  answerable(): boolean {
    return this.membership === null || this.membership.serving();
  }

  get view(): ClusterView {
    if (this.config === null) return { epoch: 0, nodes: [{ id: 'local', url: this.listenUrl(), weight: 1 }] };
    return this.rings.view;
  }

  /** Starts heartbeats; forms the first view from --peers, --join, or this node alone. */
  start(): void {
    const config = this.config;
    if (config === null) return;
    if (config.advertise === '') config.advertise = this.listenUrl();
    for (const partition of this.partitions) {
      partition.applied_hook = (request, reply, owners, op_indices) => this.onApplied(partition, request, reply, owners, op_indices);
      partition.expired_hook = (keys, key_lengths, hashes) => this.expiry.onExpired(partition, keys, key_lengths, hashes);
    }
    if (this.membership !== null) {
      this.membership.setSelfUrl(config.advertise);
      void this.membership.start();
    } else if (config.peers.length > 0) this.adopt({ epoch: 1, nodes: config.peers }, 'config file');
    else if (config.join.length === 0) this.adopt({ epoch: 1, nodes: [this.selfNode()] }, 'new cluster');
    this.timer = setInterval(() => this.tick(), config.heartbeat_interval_ms);
    this.timer.unref();
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    void this.membership?.stop();
    this.migration?.stop();
    this.cleanup?.stop();
    this.replicator.stop();
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  // ---- routing hooks (dispatcher.ts) ----

  /** Only a serving primary deletes an expired key, and not while a hand-off or a write of it is in flight (expiry-driver.ts). */
  private readonly expiry = new ExpiryDriver({
    deletesExpired: (hash) => this.isLocal(hash) && !this.replicator.overloaded(hash),
  });

  isLocal(hash: number): boolean {
    if (!this.serving()) return false;
    const primary = this.rings.current?.primaryOf(hash) ?? null;
    if (primary === null || primary.id !== this.self || this.replicator.dirty(hash)) return false;
    return this.migration === null || !this.migration.handsOff(hash);
  }

  route(ref: OpRef, batch: RequestBatch): boolean {
    const { request, index, op, hash } = ref;
    if (request === null) throw new Error('route: an op without a request');
    if (batch.migrate === true) {
      if (batch.peer !== true) {
        request.settle(index, Status.AUTH_FAILED);
        return true;
      }
      if (this.membership !== null) {
        let refusal = this.refuseCopy(hash, batch);
        // Logged before it is applied, or refused (the sender resends it) when the log is full (R7).
        if (refusal === Status.OK && !this.promotion.accepted(ref, batch, this.rings, this.self)) refusal = Status.CLUSTER_BUSY;
        if (refusal === Status.OK) return false;
        request.settle(index, refusal);
        return true;
      }
      // Gossip: a move from a view newer than ours: our clean-up may think these keys are not ours.
      if (batch.ring_epoch !== undefined && batch.ring_epoch > this.rings.view.epoch) this.holdCleanup(batch.ring_epoch);
      return false;
    }
    if (!this.serving()) {
      request.settle(index, Status.CLUSTER_UNAVAILABLE);
      return true;
    }
    const rings = this.rings;
    const epoch = batch.ring_epoch;
    // A sender ahead of us by one with our target finished the change already (every primary drained).
    const placement = epoch !== undefined && epoch > rings.view.epoch && rings.target !== null ? rings.target : rings.current;
    if (placement === null) {
      request.settle(index, Status.STALE_RING);
      return true;
    }
    // read: 'any': an in-sync copy serves the GET itself (it has every acknowledged write, and at
    // N = 2 perhaps one in flight that no failover can take back; docs/REPLICATION.md). Not a copy the change in progress
    // drops: once the switch commits, writes no longer reach it, and this node may adopt the
    // switch late; every live node adopted this change's view before the switch could commit
    // (each reports drained at it), so refusing here covers that whole window.
    // Nor a key with a copy write no commit watermark covers yet (N >= 3: R7's replay log).
    if (op === Op.GET && batch.read_any === true && placement === rings.current && placement.inSyncHolder(this.self, hash)
      && (rings.target === null || rings.target.inSyncHolder(this.self, hash)) && !this.promotion.log.pending(hash)) return false;
    const owner = placement.primaryOf(hash);
    if (owner === null) {
      // Every replica of this key is down (docs/REPLICATION.md): fail fast.
      request.settle(index, Status.NODE_DOWN);
      return true;
    }
    if (owner.id === this.self) {
      if (placement !== rings.current) return false;
      const migration = this.migration;
      if (migration !== null && migration.handsOff(hash)) {
        migration.routeHandedOff(ref);
        return true;
      }
      if (op === Op.GET || op === Op.TTL) return false; // reads: neither min_replicas nor stream back-pressure applies
      // min_replicas: refused before it is applied anywhere, so the client may resend it.
      if (!placement.writable(hash)) {
        request.settle(index, Status.NOT_ENOUGH_REPLICAS);
        return true;
      }
      if (!this.replicator.overloaded(hash)) return false;
      request.settle(index, Status.CLUSTER_BUSY);
      return true;
    }
    // Ring-aware clients and peers with our epoch or newer must resend; a peer behind us gets one more hop.
    if (epoch !== undefined && !(batch.peer === true && epoch < rings.view.epoch)) {
      request.settle(index, Status.STALE_RING);
      return true;
    }
    this.forwarder.forward(owner, ref);
    return true;
  }

  settleOp(request: PendingRequest, index: number, op: number, batch: RequestBatch, key_offset: number, key_length: number, value_length: number): boolean {
    if (op === Op.RING) {
      this.settleWith(request, index, Status.OK, this.view);
      return true;
    }
    if (op === Op.CLUSTER_STATUS) {
      this.settleWith(request, index, Status.OK, this.status());
      return true;
    }
    if (op === Op.SCAN) {
      if (value_length !== 0) request.settle(index, Status.BAD_OP);
      else this.keys.answer(request, index, batch.keys, key_offset, key_length);
      return true;
    }
    if (op < Op.CLUSTER_HEARTBEAT || op > Op.CLUSTER_DRAINED) return false;
    if (batch.peer !== true || this.config === null) {
      this.log(`refused cluster op ${op} on a connection without the cluster secret (AUTH_FAILED)`);
      request.settle(index, Status.AUTH_FAILED);
      return true;
    }
    let payload: Record<string, unknown>;
    try {
      payload = this.codec.decodeValue(batch.keys.subarray(key_offset, key_offset + key_length)) as Record<string, unknown>;
      if (value_length !== 0 || payload === null || typeof payload !== 'object') throw new Error('payload must be a map');
    } catch {
      request.settle(index, Status.BAD_OP);
      return true;
    }
    try {
      const [status, value] = this.control(op, payload);
      this.settleWith(request, index, status, value);
    } catch (error) {
      this.log(`cluster op ${op} refused: ${(error as Error).message}`);
      request.settle(index, Status.BAD_OP);
    }
    return true;
  }

  /**
   * etcd mode, R3 (docs/REPLICATION.md): a replication or data-move frame op is applied only if
   * this node is not behind the sender and the sender is the key's primary in this node's view.
   * OK lets it apply; anything else is the refusal, after which the sender re-sends or drops it.
   */
  private refuseCopy(hash: number, batch: RequestBatch): number {
    if (!this.serving()) return Status.CLUSTER_UNAVAILABLE;
    const view = this.rings.view;
    if ((batch.ring_epoch ?? 0) > view.epoch) return Status.STALE_RING;
    // A down node takes copies only while a change copies it back (it is not down in the target).
    const rings = this.rings;
    if (rings.current?.isDown(this.self) === true && (rings.target === null || rings.target.isDown(this.self))) return Status.STALE_RING;
    const primary = this.rings.current?.primaryOf(hash) ?? null;
    return primary !== null && primary.id === batch.peer_id ? Status.OK : Status.STALE_RING;
  }

  /** Partition hook: copies applied writes (replication, data moves) and drives scans. */
  private onApplied(partition: Partition, request: RequestPacket, reply: ReplyPacket, owners: readonly PendingRequest[], op_indices: Int32Array): void {
    this.replicator.onApplied(partition, request, reply, owners, op_indices);
    this.migration?.onApplied(partition);
    this.cleanup?.onApplied(partition);
  }

  // ---- cluster ops ----

  private control(op: number, payload: Record<string, unknown>): [number, unknown] {
    const epoch = this.rings.view.epoch;
    switch (op) {
      case Op.CLUSTER_HEARTBEAT: {
        const from = this.links.get(String(payload['from']));
        if (typeof payload['epoch'] === 'number' && payload['epoch'] > epoch && from !== undefined) this.gossip?.pull(from);
        if (from !== undefined) this.notePeer(from.node.id, payload['epoch'], payload['clean']);
        return [Status.OK, { epoch, id: this.self, clean: this.clean_epoch }];
      }
      case Op.CLUSTER_VIEW:
        // With etcd, nothing but etcd changes a view (I1): a pushed view is ignored.
        if (this.membership === null) this.adopt(checkView(payload), 'push');
        return [Status.OK, { epoch: this.rings.view.epoch }];
      case Op.CLUSTER_ADMIN:
        if (this.membership !== null) {
          this.membership.submitAdmin(payload);
          return [Status.OK, { epoch: epoch + 1, view: this.rings.view, queued: true }];
        }
        return this.gossip!.admin(payload);
      case Op.CLUSTER_DRAINED:
        this.gossip?.recordDrained(String(payload['from']), Number(payload['epoch']));
        return [Status.OK, { epoch }];
      default:
        return [Status.UNKNOWN_OP, null];
    }
  }

  // ---- views ----

  private adopt(candidate: ClusterView, source: string): boolean {
    const view = checkView(candidate);
    if (!isNewer(view, this.rings.view)) return false;
    const before = this.rings;
    this.rings = new ViewRings(view);
    const members = this.rings.members();
    const describe = (nodes: RingNode[]): string => nodes.map((n) => n.id).join(',');
    const replicas = view.next_replicas !== undefined && view.next_replicas !== view.replicas ? `; replicas ${view.replicas ?? 1} -> ${view.next_replicas}` : view.replicas !== undefined ? `; replicas ${view.replicas}` : '';
    this.log(`view epoch ${view.epoch} (${source}): nodes ${describe(view.nodes)}${view.next ? `; moving to ${describe(view.next)}` : ''}${replicas}${view.down?.length ? `; down ${view.down.join(',')}` : ''}`);
    this.reconcileLinks(members);
    // This node marked down, or its old incarnation still admitted: it is nobody's primary, and
    // nothing it has not committed may be acknowledged (R5).
    const failed = view.down?.includes(this.self) === true || this.replacedIncarnation(view);
    this.replicator.adopt(this.rings, this.self, failed);
    // Before any client op is routed under this view: what this node applied from a primary now
    // down goes to the other copies first (docs/REPLICATION.md R7).
    const promoted = this.promotion.adopted(this.rings, this.self, failed, this.replicator);
    if (promoted !== null) this.log(promoted);
    this.reconcileMigration();
    const member = members.some((n) => n.id === this.self);
    this.reconcileCleanup(before, member);
    if (this.was_member && !member) {
      // A leave is seen from its start: the leaving node hands off its keys at the view whose
      // `next` drops it. A member that finds itself gone without having seen that view was
      // removed while it was cut off (it missed the views that marked it down and removed it:
      // test/chaos-removed-while-cut.test.ts), not asked to leave.
      const saw_own_leave = before.view.next !== undefined && !before.view.next.some((n) => n.id === this.self);
      if (this.membership !== null && (this.was_failed || !this.was_full_member || !saw_own_leave)) {
        // Removed after it was marked down (docs/REPLICATION.md R5), or dropped while it was
        // still joining (the controller took it for dead: an earlier incarnation, say): its
        // copies are stale. It deletes them (the clean-up of a non-member keeps nothing) and
        // joins again empty. Only a full member that was not failed and saw its leave start has left for good.
        const why = this.was_failed ? 'removed after it was marked down' : !this.was_full_member ? 'dropped while joining' : 'removed while it was cut off';
        this.log(`this node was ${why}; it drops its copies and joins again`);
      } else {
        this.log('this node has left the cluster');
        this.left = true;
        if (this.membership !== null) this.membership.left = true;
        queueMicrotask(this.onLeft);
      }
    }
    this.was_member = member;
    this.was_full_member = view.nodes.some((n) => n.id === this.self);
    this.was_failed = failed;
    this.gossip?.checkCompletion();
    return true;
  }

  private reconcileLinks(members: RingNode[]): void {
    const config = this.config!;
    const wanted = new Map(members.filter((n) => n.id !== this.self).map((n) => [n.id, n]));
    for (const [id, link] of this.links) {
      if (wanted.get(id)?.url !== link.node.url) {
        link.close();
        this.links.delete(id);
      }
    }
    for (const [id, node] of wanted) {
      if (this.links.has(id)) continue;
      const link = new PeerLink(node, config, {
        heartbeatPayload: () => this.codec.encodeValue({ from: this.self, epoch: this.rings.view.epoch, clean: this.clean_epoch }),
        onHeartbeatReply: (from, value) => {
          const reply = this.codec.decodeValue(value) as { epoch?: number; clean?: number };
          if (typeof reply.epoch === 'number' && reply.epoch > this.rings.view.epoch) this.gossip?.pull(from);
          this.notePeer(from.node.id, reply.epoch, reply.clean);
        },
        onUp: (peer) => this.gossip?.onLinkUp(peer),
        log: this.log,
      });
      this.links.set(id, link);
      link.tick();
    }
  }

  private reconcileMigration(): void {
    const view = this.rings.view;
    const current = this.migration;
    if (current !== null && view.next !== undefined && current.epoch === view.epoch) return;
    if (current !== null) {
      this.last_migration = current.progress();
      // The switch of this very move: the new owners are authoritative, held ops go to them.
      // Any other newer view replaced the move before its switch: this node still owns its ranges.
      if (view.epoch === current.epoch + 1 && view.next === undefined && current.state === 'drained') {
        current.release((dest, held) => this.forwarder.forwardHeld(dest, held));
      } else {
        current.stop();
      }
      this.migration = null;
    }
    if (view.next === undefined || !view.nodes.some((n) => n.id === this.self)) return;
    this.migration = new Migration(view.epoch, this.self, this.rings.current!, this.rings.target!, this.partitions, this.replicator,
      (id) => this.links.get(id), (epoch) => this.onDrained(epoch), this.log);
  }

  /**
   * Starts deleting old copies when this view takes ranges away from this node (or it is the
   * first view since start: tables loaded from disk may hold anything). Otherwise a node that
   * was clean stays clean at the new epoch.
   */
  private reconcileCleanup(before: ViewRings, member: boolean): void {
    const view = this.rings.view;
    const current = this.cleanup;
    if (current !== null) {
      this.last_cleanup = current.progress();
      if (current.state !== 'done') this.keys_cleaned_total += current.keys_deleted;
      current.stop();
      this.cleanup = null;
    }
    // Gossip: a node outside the view keeps its tables (it may be on its way in). etcd: it
    // deletes everything before it asks to join (EtcdMembership.requestJoinIfAbsent waits for
    // that), so no key deleted meanwhile comes back with it.
    if (!member && this.membership === null) return;
    if (this.clean_epoch === before.view.epoch && this.clean_epoch !== -1 && !losesRanges(before, this.rings, this.self)) {
      this.clean_epoch = view.epoch;
      return;
    }
    this.clean_epoch = -1;
    // With etcd no change starts before every live member reported clean at this epoch
    // (controller.ts), so no newer view can give this node ranges while the clean-up runs; a
    // peer streaming for a newer view anyway stops it (holdCleanup). Waiting for heartbeats
    // from every member, as gossip must, would wait forever for a member that died.
    const peers = this.membership !== null ? [] : this.rings.members().map((n) => n.id);
    this.cleanup = new Cleanup(view.epoch, this.self, this.rings, peers, this.partitions, (epoch) => {
      if (this.cleanup?.epoch !== epoch) return;
      this.keys_cleaned_total += this.cleanup.keys_deleted;
      this.clean_epoch = epoch;
    }, this.log);
  }

  /**
   * Stops a clean-up that runs on a view older than one a peer is already moving data for:
   * the keys it streams here are in neither of our rings yet, and the clean-up would delete
   * them. The clean-up starts again (from scratch) with the next view this node adopts.
   */
  private holdCleanup(newer_epoch: number): void {
    const current = this.cleanup;
    if (current === null || current.state === 'done') return;
    this.log(`epoch ${current.epoch}: clean-up held: a peer streams data for epoch ${newer_epoch}; it restarts with the next view`);
    this.last_cleanup = current.progress();
    this.keys_cleaned_total += current.keys_deleted;
    current.stop();
    this.cleanup = null;
    this.clean_epoch = -1;
  }

  /** Records what a peer's heartbeat says: its epoch (lets a waiting clean-up start) and its clean epoch. */
  private notePeer(id: string, epoch: unknown, clean: unknown): void {
    if (typeof clean === 'number') this.peer_clean.set(id, clean);
    if (typeof epoch === 'number') this.cleanup?.confirm(id, epoch);
  }

  // ---- completion of a data move ----

  private onDrained(epoch: number): void {
    if (this.membership !== null) {
      this.reportToEtcd();
      this.membership.requestJoinIfAbsent();
      return;
    }
    this.gossip?.drainedHere(epoch);
  }

  /** etcd mode: what the controller waits for (this node drained, this node clean); see EtcdMembership.report. */
  private reportToEtcd(): void {
    const epoch = this.rings.view.epoch;
    this.membership?.report({
      epoch,
      drained: this.migration !== null && this.migration.state === 'drained' && this.migration.epoch === epoch,
      clean: this.clean_epoch === epoch && this.rings.members().some((n) => n.id === this.self),
    });
  }

  // ---- heartbeat tick ----

  private tick(): void {
    for (const link of this.links.values()) link.tick();
    const view = this.rings.view;
    // Re-send DRAINED until the change completes: a peer may have been unreachable the first time.
    if (this.membership !== null) {
      this.reportToEtcd();
      this.membership.requestJoinIfAbsent();
      return;
    }
    this.gossip?.tick(view.next !== undefined && this.migration?.state === 'drained', this.was_member, this.left);
  }

  // ---- status ----

  /** What CLUSTER_STATUS answers; /metrics and the dashboard read it directly (src/node/metrics). */
  status(): ClusterStatus {
    let keys = 0;
    for (const partition of this.partitions) keys += partition.table.keys;
    const cleanup = this.cleanup;
    return {
      node_id: this.self,
      url: this.config?.advertise ?? this.listenUrl(),
      epoch: this.view.epoch,
      view: this.view,
      member: this.config === null || this.rings.members().some((n) => n.id === this.self),
      keys,
      ops_forwarded: this.forwarder.ops_forwarded,
      ops_resent_after_stale_ring: this.forwarder.ops_resent,
      frames_forwarded: this.forwarder.frames_forwarded,
      peers: [...this.links.values()].map(peerStatus),
      replication: replicationStatus(this.replicator, this.promotion, this.rings.view),
      migration: this.migration?.progress() ?? null,
      last_migration: this.last_migration,
      cleanup: cleanup?.progress() ?? this.last_cleanup,
      clean_epoch: this.clean_epoch,
      keys_cleaned_total: this.keys_cleaned_total + (cleanup !== null && cleanup.state !== 'done' ? cleanup.keys_deleted : 0),
      keys_expired: this.expiry.keys_expired,
      keys_renewed: this.expiry.keys_renewed,
      etcd: this.membership === null ? null : { serving: this.membership.serving(), ...this.membership.controller_state },
    };
  }

  private selfNode(): RingNode {
    return { id: this.self, url: this.config!.advertise, weight: this.config!.weight };
  }

  private settleWith(request: PendingRequest, index: number, status: number, value: unknown): void {
    const bytes = this.codec.encodeValue(value);
    if (status !== Status.OK) {
      request.settle(index, status);
      return;
    }
    request.settleValue(index, request.addSource(bytes), 0, bytes.length);
  }
}

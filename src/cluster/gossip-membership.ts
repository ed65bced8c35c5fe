/**
 * The older gossip membership (docs/CLUSTER.md), used without --etcd: every node decides
 * views itself. An admin change (join, leave, remove) makes a view with epoch + 1 on the node
 * that received it, which pushes it to every peer; heartbeats carry epochs both ways, and a
 * node that sees a higher epoch pulls the view (RING) from that peer. A change that moves data
 * is two epochs: E with `next`, and E + 1 once every old member reported DRAINED (broadcast,
 * and re-sent every tick until the change completes). A join or leave is refused with
 * CLUSTER_BUSY until every member is clean at the current epoch.
 *
 * It has known data-loss bugs under faults (docs/CLUSTER.md), which the etcd membership was
 * built to fix; it is kept so that existing clusters run until they move to etcd.
 */
import { connect } from '../client/client.js';
import { WireCodec } from '../protocol/codec.js';
import { Op, Status } from '../protocol/constants.js';
import type { RingNode } from '../routing/ring.js';
import { checkView, type ClusterView } from '../routing/view.js';
import type { ClusterConfig } from './cluster-config.js';
import { single, type PeerLink } from './peer-link.js';

/** Milliseconds between admission attempts of a node started with --join. */
const JOIN_RETRY_MS = 1_000;
const EMPTY = new Uint8Array(0);

/** What the gossip membership needs of the node it runs in (cluster-node.ts). */
export interface GossipHost {
  readonly self: string;
  view(): ClusterView;
  /** Every node named in the view, active or joining. */
  members(): RingNode[];
  links(): ReadonlyMap<string, PeerLink>;
  adopt(view: ClusterView, source: string): boolean;
  /** The epoch node `id` is clean at (this node's own, or the last one a heartbeat reported). */
  cleanEpochOf(id: string): number | undefined;
  selfNode(): RingNode;
  log(message: string): void;
}

export class GossipMembership {
  private readonly host: GossipHost;
  private readonly config: ClusterConfig;
  private readonly codec = new WireCodec();
  private readonly drained = new Map<number, Set<string>>();
  private readonly pulling = new Set<string>();
  private joining = false;
  private last_join_ms = 0;
  private last_busy_log = '';

  constructor(host: GossipHost, config: ClusterConfig) {
    this.host = host;
    this.config = config;
  }

  /**
   * join {node}, leave {id}, remove {id}: makes the next view, adopts it and pushes it to every
   * peer. A remove of a node that is up is carried out as a leave.
   */
  admin(payload: Record<string, unknown>): [number, unknown] {
    const host = this.host;
    const view = host.view();
    let action = payload['action'];
    const target = String(payload['id']);
    // `remove` is for dead boards: it drops a node without hand-off. Asked to remove one that
    // is up, hand its keys off first (a leave), so no acknowledged write goes with it.
    if (action === 'remove' && view.nodes.some((n) => n.id === target) && (target === host.self || host.links().get(target)?.up === true)) {
      host.log(`admin remove: ${target} is up, so it leaves with a hand-off instead of being dropped`);
      action = 'leave';
    }
    const without = (nodes: readonly RingNode[], id: string): RingNode[] => nodes.filter((n) => n.id !== id);
    let next: ClusterView;
    if (action === 'join') {
      const node = checkView({ epoch: 0, nodes: [payload['node']] }).nodes[0]!;
      if (view.nodes.some((n) => n.id === node.id) || view.next?.some((n) => n.id === node.id)) return [Status.OK, { epoch: view.epoch, view }];
      if (view.next !== undefined || !this.clusterClean('join')) return [Status.CLUSTER_BUSY, { epoch: view.epoch, view }];
      next = { epoch: view.epoch + 1, nodes: view.nodes, next: [...view.nodes, node] };
    } else if (action === 'leave') {
      const id = String(payload['id']);
      if (!view.nodes.some((n) => n.id === id)) return [Status.NOT_FOUND, { epoch: view.epoch, view }];
      if (view.next !== undefined) return [view.next.some((n) => n.id === id) ? Status.CLUSTER_BUSY : Status.OK, { epoch: view.epoch, view }];
      if (view.nodes.length === 1) return [Status.BAD_OP, { epoch: view.epoch, view }];
      if (!this.clusterClean('leave')) return [Status.CLUSTER_BUSY, { epoch: view.epoch, view }];
      next = { epoch: view.epoch + 1, nodes: view.nodes, next: without(view.nodes, id) };
    } else if (action === 'remove') {
      const id = String(payload['id']);
      if (!host.members().some((n) => n.id === id)) return [Status.NOT_FOUND, { epoch: view.epoch, view }];
      const nodes = without(view.nodes, id);
      let rest = view.next === undefined ? undefined : without(view.next, id);
      if (nodes.length === 0 || rest?.length === 0) return [Status.BAD_OP, { epoch: view.epoch, view }];
      if (rest !== undefined && rest.length === nodes.length && rest.every((n) => nodes.some((m) => m.id === n.id))) rest = undefined;
      next = { epoch: view.epoch + 1, nodes, next: rest };
      if (rest === undefined) delete next.next;
    } else {
      throw new Error(`unknown admin action ${JSON.stringify(action)}`);
    }
    host.log(`admin ${String(action)}: epoch ${next.epoch}`);
    host.adopt(next, `admin ${String(action)}`);
    this.pushView();
    return [Status.OK, { epoch: next.epoch, view: next }];
  }

  /** A link came up: push our view, so a peer that missed changes catches up. */
  onLinkUp(link: PeerLink): void {
    void link.control(Op.CLUSTER_VIEW, this.codec.encodeValue(this.host.view())).catch(() => {});
  }

  /** Pulls the view from a peer that showed a higher epoch. */
  pull(link: PeerLink): void {
    if (this.pulling.has(link.node.id)) return;
    this.pulling.add(link.node.id);
    link.control(Op.RING, EMPTY).then(
      ({ status, value }) => {
        this.pulling.delete(link.node.id);
        if (status === Status.OK) this.host.adopt(checkView(this.codec.decodeValue(value)), `pulled from ${link.node.id}`);
      },
      () => this.pulling.delete(link.node.id),
    );
  }

  /** This node drained the move at `epoch`: record it and tell every peer. */
  drainedHere(epoch: number): void {
    this.recordDrained(this.host.self, epoch);
    this.broadcastDrained(epoch);
  }

  recordDrained(from: string, epoch: number): void {
    let set = this.drained.get(epoch);
    if (set === undefined) this.drained.set(epoch, (set = new Set()));
    set.add(from);
    this.checkCompletion();
  }

  /** Once every old member has handed off, the change is done: adopt {epoch + 1, nodes: next}. */
  checkCompletion(): void {
    const view = this.host.view();
    if (view.next === undefined) return;
    const set = this.drained.get(view.epoch);
    if (set === undefined || !view.nodes.every((n) => set.has(n.id))) return;
    for (const epoch of this.drained.keys()) if (epoch <= view.epoch) this.drained.delete(epoch);
    this.host.adopt({ epoch: view.epoch + 1, nodes: view.next, replicas: view.next_replicas ?? view.replicas }, 'all old owners drained');
  }

  /**
   * Every heartbeat interval: re-sends DRAINED until the change completes (a peer may have
   * been unreachable the first time), and asks to join while not a member.
   */
  tick(drained_here: boolean, member: boolean, left: boolean): void {
    const view = this.host.view();
    if (view.next !== undefined && drained_here) this.broadcastDrained(view.epoch);
    if (!left && !member) this.tryJoin();
  }

  private broadcastDrained(epoch: number): void {
    const payload = this.codec.encodeValue({ from: this.host.self, epoch });
    for (const link of this.host.links().values()) void link.control(Op.CLUSTER_DRAINED, payload).catch(() => {});
  }

  private pushView(): void {
    const payload = this.codec.encodeValue(this.host.view());
    for (const link of this.host.links().values()) void link.control(Op.CLUSTER_VIEW, payload).catch(() => {});
  }

  /** True when this node and every other node of the settled view are clean at its epoch (a change may start). */
  private clusterClean(action: string): boolean {
    const view = this.host.view();
    const dirty = view.nodes.filter((n) => this.host.cleanEpochOf(n.id) !== view.epoch).map((n) => n.id);
    if (dirty.length === 0) return true;
    const message = `admin ${action} refused (CLUSTER_BUSY): clean-up at epoch ${view.epoch} not finished on ${dirty.join(',')}`;
    // The CLI asks again every 200 ms: say it once per situation.
    if (message !== this.last_busy_log) this.host.log(message);
    this.last_busy_log = message;
    return false;
  }

  private tryJoin(): void {
    const config = this.config;
    if (this.joining || config.join.length === 0 || Date.now() - this.last_join_ms < JOIN_RETRY_MS) return;
    this.joining = true;
    this.last_join_ms = Date.now();
    const seed = config.join[Math.floor(Math.random() * config.join.length)]!;
    const payload = this.codec.encodeValue({ action: 'join', node: this.host.selfNode() });
    // The control channel: it carries one CLUSTER_ADMIN, and a data connection under this node's
    // id would supersede this node's data link to the seed (the latest-connection rule).
    connect(seed, { connect_timeout_ms: 2_000, request_timeout_ms: config.forward_timeout_ms, ca: config.tls_ca, peer: { secret: config.cluster_secret, node_id: config.node_id, channel: 'control' } })
      .then(async (client) => {
        try {
          const results = await client.batchColumns(single(Op.CLUSTER_ADMIN, payload));
          const reply = this.codec.decodeValue(results.values) as { view?: unknown };
          if (results.status[0] === Status.OK && reply.view !== undefined) this.host.adopt(checkView(reply.view), `joined via ${seed}`);
          else this.host.log(`join via ${seed}: status ${results.status[0]}; retrying`);
        } finally {
          await client.close();
        }
      })
      .catch((error: Error) => this.host.log(`join via ${seed} failed: ${error.message}; retrying`))
      .finally(() => (this.joining = false));
  }
}

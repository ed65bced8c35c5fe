/**
 * The cluster view: which nodes form the ring, at which epoch, and the change in progress.
 *
 * A view is `{epoch, nodes, next?, replicas?, next_replicas?, min_replicas?, down?}`. `nodes`,
 * `replicas` (N, default 1) and `down` make the current placement (placement.ts): each key's N
 * replicas and its primary, which takes every op of the key (docs/REPLICATION.md).
 * `min_replicas` (M, default 1) is the fewest in-sync copies a slot may have and still take writes.
 * While a membership change moves data, `next` holds the target membership: each node hands
 * the keys it owns in `nodes` but not in `next` to their `next` owners (migration.ts), and
 * once every node of `nodes` has reported that, every node adopts `{epoch + 1, nodes: next}`.
 *
 * Views are totally ordered so that every node converges on one: the higher epoch wins, and
 * for two different views at the same epoch (two admin changes made at once on two nodes)
 * the one whose canonical JSON sorts higher wins; the other change is lost and its CLI
 * reports that (docs/CLUSTER.md).
 */
import { Placement, REPLICAS_MAX } from './placement.js';
import { HashRing, NODE_WEIGHT_MAX, RING_NODES_MAX, type RingNode } from './ring.js';

export interface ClusterView {
  epoch: number;
  nodes: RingNode[];
  /** The membership being moved to; absent when no change is in progress. */
  next?: RingNode[] | undefined;
  /** Copies of each key, 1..REPLICAS_MAX; absent means 1. */
  replicas?: number | undefined;
  /** The replication factor after the change in progress; absent means `replicas`. */
  next_replicas?: number | undefined;
  /**
   * The fewest in-sync copies (primary included) a slot needs to accept a write, 1..REPLICAS_MAX;
   * absent means 1 (writes go on while any copy is up). Kafka's min.insync.replicas.
   */
  min_replicas?: number | undefined;
  /** Ids of members of `nodes` whose lease expired: never primary, never sent to. */
  down?: string[] | undefined;
  /** The epoch at which each node of `down` was marked down (the controller orders returns by it). */
  down_epoch?: Record<string, number> | undefined;
  /** Down nodes after the change in progress; absent means the nodes of `down` that are in `next`. A node down now and not then is being copied back. */
  next_down?: string[] | undefined;
}

export class ViewError extends Error {
  readonly code = 'PIKV_ERR_BAD_VIEW';
}

function canonicalNodes(nodes: readonly RingNode[]): RingNode[] {
  return [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((n) => {
    const node: RingNode = { id: n.id, url: n.url, weight: n.weight };
    if (n.incarnation !== undefined) node.incarnation = n.incarnation;
    return node;
  });
}

/** A view with nodes sorted by id and nothing but the known fields, so equal views encode equally. */
export function canonicalView(view: ClusterView): ClusterView {
  const result: ClusterView = { epoch: view.epoch, nodes: canonicalNodes(view.nodes) };
  if (view.next !== undefined) result.next = canonicalNodes(view.next);
  if (view.replicas !== undefined && view.replicas !== 1) result.replicas = view.replicas;
  if (view.next_replicas !== undefined) result.next_replicas = view.next_replicas;
  if (view.min_replicas !== undefined && view.min_replicas !== 1) result.min_replicas = view.min_replicas;
  if (view.down !== undefined && view.down.length > 0) {
    result.down = [...view.down].sort();
    const epochs: Record<string, number> = {};
    for (const id of result.down) epochs[id] = view.down_epoch?.[id] ?? view.epoch;
    result.down_epoch = epochs;
  }
  if (view.next_down !== undefined) result.next_down = [...view.next_down].sort();
  return result;
}

export function viewDigest(view: ClusterView): string {
  return JSON.stringify(canonicalView(view));
}

/** True if `candidate` should replace `current` (see the ordering above). */
export function isNewer(candidate: ClusterView, current: ClusterView): boolean {
  if (candidate.epoch !== current.epoch) return candidate.epoch > current.epoch;
  return viewDigest(candidate) > viewDigest(current);
}

function checkNode(value: unknown): RingNode {
  const node = value as Partial<RingNode> | null;
  if (node === null || typeof node !== 'object' || typeof node.id !== 'string' || node.id === '' || node.id.length > 128) {
    throw new ViewError('a node needs an id: a non-empty string of at most 128 characters');
  }
  if (typeof node.url !== 'string' || !/^wss?:\/\//.test(node.url)) throw new ViewError(`node "${node.id}": url must be ws://host:port`);
  const weight = node.weight ?? 1;
  if (!Number.isInteger(weight) || weight < 1 || weight > NODE_WEIGHT_MAX) throw new ViewError(`node "${node.id}": weight must be 1..${NODE_WEIGHT_MAX}`);
  const result: RingNode = { id: node.id, url: node.url, weight };
  if (node.incarnation !== undefined) {
    if (typeof node.incarnation !== 'string' || node.incarnation.length > 64) throw new ViewError(`node "${node.id}": incarnation must be a short string`);
    result.incarnation = node.incarnation;
  }
  return result;
}

function checkReplicas(value: unknown, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > REPLICAS_MAX) throw new ViewError(`${what} must be 1..${REPLICAS_MAX}`);
  return value as number;
}

function checkNodes(value: unknown, what: string): RingNode[] {
  if (!Array.isArray(value) || value.length > RING_NODES_MAX) throw new ViewError(`${what} must be an array of at most ${RING_NODES_MAX} nodes`);
  const nodes = value.map(checkNode);
  if (new Set(nodes.map((n) => n.id)).size !== nodes.length) throw new ViewError(`${what}: a node id appears twice`);
  return nodes;
}

/** Validates a view that came off the wire; throws ViewError. An empty `nodes` is the view of a node not yet admitted. */
export function checkView(value: unknown): ClusterView {
  const view = value as Partial<ClusterView> | null;
  if (view === null || typeof view !== 'object') throw new ViewError('a view must be a map');
  if (typeof view.epoch !== 'number' || !Number.isSafeInteger(view.epoch) || view.epoch < 0) throw new ViewError('epoch must be a non-negative integer');
  const result: ClusterView = { epoch: view.epoch, nodes: checkNodes(view.nodes, 'nodes') };
  if (view.next !== undefined && view.next !== null) {
    result.next = checkNodes(view.next, 'next');
    if (result.next.length === 0) throw new ViewError('next must keep at least one node');
  }
  if (view.replicas !== undefined && view.replicas !== null) result.replicas = checkReplicas(view.replicas, 'replicas');
  if (view.next_replicas !== undefined && view.next_replicas !== null) {
    if (result.next === undefined) throw new ViewError('next_replicas needs next');
    result.next_replicas = checkReplicas(view.next_replicas, 'next_replicas');
  }
  if (view.min_replicas !== undefined && view.min_replicas !== null) result.min_replicas = checkReplicas(view.min_replicas, 'min_replicas');
  if (view.down !== undefined && view.down !== null) {
    if (!Array.isArray(view.down) || view.down.some((id) => typeof id !== 'string' || !result.nodes.some((n) => n.id === id))) {
      throw new ViewError('down must list ids of nodes');
    }
    if (view.down.length > 0) result.down = [...new Set(view.down)];
    const epochs = view.down_epoch as unknown;
    if (epochs !== undefined && epochs !== null) {
      if (typeof epochs !== 'object') throw new ViewError('down_epoch must map ids to epochs');
      const checked: Record<string, number> = {};
      for (const id of result.down ?? []) {
        const epoch = (epochs as Record<string, unknown>)[id];
        if (epoch !== undefined) {
          if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new ViewError('down_epoch must map ids to epochs');
          checked[id] = epoch;
        }
      }
      result.down_epoch = checked;
    }
  }
  if (view.next_down !== undefined && view.next_down !== null) {
    if (result.next === undefined || !Array.isArray(view.next_down) || view.next_down.some((id) => typeof id !== 'string' || !result.next!.some((n) => n.id === id))) {
      throw new ViewError('next_down must list ids of nodes of next');
    }
    result.next_down = [...new Set(view.next_down)];
  }
  return result;
}

/**
 * The rings and placements of one view, built once per adopted view. `current` is where keys
 * live now (null while the view has no nodes); `target` is where they will live after the
 * change in progress (null when none). Down nodes stay down in the target unless it drops them.
 */
export class ViewRings {
  readonly view: ClusterView;
  readonly active: HashRing | null;
  readonly next: HashRing | null;
  readonly current: Placement | null;
  readonly target: Placement | null;

  constructor(view: ClusterView) {
    this.view = view;
    const down = new Set(view.down ?? []);
    this.active = view.nodes.length > 0 ? new HashRing(view.nodes) : null;
    this.next = view.next !== undefined ? new HashRing(view.next) : null;
    const replicas = view.replicas ?? 1;
    const min_replicas = view.min_replicas ?? 1;
    this.current = this.active === null ? null : new Placement(this.active, replicas, down, min_replicas);
    this.target = this.next === null ? null : new Placement(this.next, view.next_replicas ?? replicas, new Set(targetDown(view)), min_replicas);
  }

  /**
   * True if node `id` keeps its copy of this key hash now or after the change in progress. A
   * down node keeps only copies of slots that have no live copy elsewhere (it may be the last
   * one); the rest are stale, and it gets them again by a full copy when it comes back
   * (docs/REPLICATION.md R5).
   */
  keeps(id: string, hash: number): boolean {
    return keepsIn(this.current, id, hash) || keepsIn(this.target, id, hash);
  }

  /** Every node named in the view, active or joining. */
  members(): RingNode[] {
    const byId = new Map<string, RingNode>();
    for (const node of [...this.view.nodes, ...(this.view.next ?? [])]) byId.set(node.id, node);
    return [...byId.values()];
  }
}

function keepsIn(placement: Placement | null, id: string, hash: number): boolean {
  if (placement === null || !placement.holds(id, hash)) return false;
  return !placement.isDown(id) || placement.primaryOf(hash) === null;
}

/** The down nodes of the view after its change: `next_down`, or the down nodes that stay members. */
export function targetDown(view: ClusterView): string[] {
  if (view.next_down !== undefined) return view.next_down;
  return (view.down ?? []).filter((id) => view.next?.some((n) => n.id === id) === true);
}

/**
 * The cluster view: which nodes form the ring, at which epoch, and the change in progress.
 *
 * A view is `{epoch, nodes, next?}`. `nodes` builds the active ring that routes every key.
 * While a membership change moves data, `next` holds the target membership: each node hands
 * the keys it owns in `nodes` but not in `next` to their `next` owners (migration.ts), and
 * once every node of `nodes` has reported that, every node adopts `{epoch + 1, nodes: next}`.
 *
 * Views are totally ordered so that every node converges on one: the higher epoch wins, and
 * for two different views at the same epoch (two admin changes made at once on two nodes)
 * the one whose canonical JSON sorts higher wins; the other change is lost and its CLI
 * reports that (docs/CLUSTER.md).
 */
import { HashRing, NODE_WEIGHT_MAX, RING_NODES_MAX, type RingNode } from './ring.js';

export interface ClusterView {
  epoch: number;
  nodes: RingNode[];
  /** The membership being moved to; absent when no change is in progress. */
  next?: RingNode[] | undefined;
}

export class ViewError extends Error {
  readonly code = 'PIKV_ERR_BAD_VIEW';
}

function canonicalNodes(nodes: readonly RingNode[]): RingNode[] {
  return [...nodes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((n) => ({ id: n.id, url: n.url, weight: n.weight }));
}

/** A view with nodes sorted by id and nothing but the known fields, so equal views encode equally. */
export function canonicalView(view: ClusterView): ClusterView {
  const result: ClusterView = { epoch: view.epoch, nodes: canonicalNodes(view.nodes) };
  if (view.next !== undefined) result.next = canonicalNodes(view.next);
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
  return { id: node.id, url: node.url, weight };
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
  return result;
}

/** The rings of one view, built once per adopted view. `active` is null while the view has no nodes. */
export class ViewRings {
  readonly view: ClusterView;
  readonly active: HashRing | null;
  readonly next: HashRing | null;

  constructor(view: ClusterView) {
    this.view = view;
    this.active = view.nodes.length > 0 ? new HashRing(view.nodes) : null;
    this.next = view.next !== undefined ? new HashRing(view.next) : null;
  }

  /** Every node named in the view, active or joining. */
  members(): RingNode[] {
    const byId = new Map<string, RingNode>();
    for (const node of [...this.view.nodes, ...(this.view.next ?? [])]) byId.set(node.id, node);
    return [...byId.values()];
  }
}

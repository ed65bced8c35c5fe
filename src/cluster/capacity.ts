/**
 * Will a change fit? The controller's estimate, before it commits a join, leave, remove,
 * re-replication or `set-replicas` (docs/REPLICATION.md): a change whose copies would overfill
 * a node's tables must be refused up front, not stall half done on OUT_OF_MEMORY.
 *
 * The estimate assumes data spreads evenly over slots (keys hash uniformly): the bytes of one
 * copy of one slot are the bytes the live nodes use, divided by the slot copies they hold.
 * A node would then hold (its slots after the change) × that, and must stay under
 * HEADROOM of its capacity (writes go on while the copy runs).
 */
import { Placement } from '../routing/placement.js';
import { RING_SLOTS } from '../routing/ring.js';
import { ViewRings, type ClusterView } from '../routing/view.js';

/** Fraction of a node's table memory a change may plan to fill. */
export const HEADROOM = 0.9;

export interface NodeMemoryReport {
  bytes_used: number;
  bytes_capacity: number;
}

/** Slot copies each live (not down) node holds in `placement`, by id. */
function slotCopies(placement: Placement): Map<string, number> {
  const counts = new Map<string, number>();
  const k = placement.replicas;
  for (let slot = 0; slot < RING_SLOTS; slot++) {
    for (let i = 0; i < k; i++) {
      const node = placement.ring.nodes[placement.ranked[slot * k + i]!]!;
      if (!placement.isDown(node.id)) counts.set(node.id, (counts.get(node.id) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Null if `next` fits, else why not (naming the node). `view` is the committed view, `next`
 * the one about to be committed (its target placement, if it starts a change, is what counts).
 * Nodes without a report are not checked.
 */
export function overfills(view: ClusterView, next: ClusterView, memory: ReadonlyMap<string, NodeMemoryReport>): string | null {
  const now = new ViewRings(view).current;
  const after_rings = new ViewRings(next);
  const after = after_rings.target ?? after_rings.current;
  if (now === null || after === null) return null;
  let used = 0;
  let copies = 0;
  for (const [id, slots] of slotCopies(now)) {
    const report = memory.get(id);
    if (report === undefined || report.bytes_capacity === 0) continue;
    used += report.bytes_used;
    copies += slots;
  }
  if (copies === 0 || used === 0) return null;
  const bytes_per_slot_copy = used / copies;
  for (const [id, slots] of slotCopies(after)) {
    const capacity = memory.get(id)?.bytes_capacity ?? 0;
    if (capacity === 0) continue;
    const planned = slots * bytes_per_slot_copy;
    if (planned > HEADROOM * capacity) {
      const mib = (bytes: number): string => `${Math.round(bytes / 1048576)} MiB`;
      return `${id} would hold about ${mib(planned)} of its ${mib(capacity)} table memory (limit ${Math.round(HEADROOM * 100)}%): give it more --max-memory, or add nodes first`;
    }
  }
  return null;
}

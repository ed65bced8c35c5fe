/**
 * The cluster controller (docs/MEMBERSHIP.md): carries out admin requests stored in etcd, one
 * change at a time, as compare-and-swap steps on the view. Any node may be it; one is elected
 * through etcd. Every step reads its whole input from etcd (view, members, requests, drained
 * and clean reports), so a controller that dies is replaced and the next one continues from
 * the committed state: nothing the controller knows lives only in its memory.
 *
 * One step, from the committed view V (epoch E):
 *   - Failover first (docs/REPLICATION.md): a member of V.nodes whose lease is gone, or whose
 *     live registration is another incarnation (it restarted), is marked down: {E + 1, down +
 *     it}. A joining node that died is dropped from `next`.
 *   - V has `next` (a change in progress): when every node of V.nodes not marked down reported
 *     `moves/E/<id> = drained`, commit the switch {E + 1, nodes: next, replicas: next_replicas}.
 *     If a node of the move is dead and a remove request names it, commit {E + 1} without it
 *     (the move restarts from the same primaries: I4).
 *   - V is settled: a down node that came back, or whose grace ran out, is dealt with
 *     (returns(), R5). Then, once every live node reported clean at E, take the oldest request:
 *     join (the node must be registered), leave, remove, or set-replicas. A remove of a node
 *     whose lease is alive is refused unless forced, and a forced one is carried out as a leave.
 * A CAS that fails means someone else moved the view: the step is simply tried again.
 */
import type { Etcd3 } from 'etcd3';
import { targetDown, viewDigest, ViewRings, type ClusterView } from '../routing/view.js';
import { NO_PRIMARY, type Placement } from '../routing/placement.js';
import { RING_SLOTS, type RingNode } from '../routing/ring.js';
import type { MemberRecord } from './etcd/members.js';
import { parseCleanReport } from './etcd/keys.js';
import { overfills, type NodeMemoryReport } from './capacity.js';
import { checkAdminRequest, ControllerElection, type AdminRequest, type ClusterKeys, type EtcdSession, type Members, type ViewStore } from './etcd/index.js';

export interface ControllerOptions {
  client: Etcd3;
  session: EtcdSession;
  store: ViewStore<ClusterView>;
  members: Members;
  keys: ClusterKeys;
  node_id: string;
  tick_ms: number;
  /** With N >= 2, how long a down node keeps its place before its copies are rebuilt elsewhere. */
  down_grace_ms: number;
  log: (message: string) => void;
}

interface PendingRequest {
  key: string;
  /** The request's mod revision: it is deleted only if nobody rewrote it since it was read. */
  mod_revision: string;
  request: AdminRequest & { force?: boolean };
}

export class Controller {
  private readonly options: ControllerOptions;
  private readonly election: ControllerElection;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private stepping = false;
  private last_message = '';
  /** When this controller first saw each node down (its own clock; a new controller starts the grace again). */
  private readonly down_since_ms = new Map<string, number>();
  /** Placements of the last view looked at: building them costs tens of ms, and the controller steps every tick. */
  private rings_cache: ViewRings | null = null;
  /** waitsForDown()'s answer for the last change looked at (it builds placements too). */
  private waits_cache: { digest: string; why: string | null } | null = null;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.election = new ControllerElection({ client: options.client, cluster: options.keys.cluster, session: options.session, node_id: options.node_id, log: options.log });
  }

  get is_leader(): boolean {
    return this.election.isLeader();
  }

  start(): void {
    void this.campaign();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.election.close();
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.election.campaign();
      } catch (error) {
        if (this.stopped) return;
        this.options.log(`controller: campaign failed (${(error as Error).message}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, this.options.tick_ms));
        continue;
      }
      this.options.log(`controller: ${this.options.node_id} is the controller`);
      while (!this.stopped && this.election.isLeader()) {
        await this.stepSafely();
        await new Promise((resolve) => {
          this.timer = setTimeout(resolve, this.options.tick_ms);
        });
      }
      if (!this.stopped) this.options.log(`controller: ${this.options.node_id} is no longer the controller`);
    }
  }

  private async stepSafely(): Promise<void> {
    if (this.stepping) return;
    this.stepping = true;
    try {
      await this.step();
    } catch (error) {
      this.say(`controller: step failed: ${(error as Error).message}`);
    } finally {
      this.stepping = false;
    }
  }

  /** Logs a message once per distinct situation (the controller steps every tick). */
  private say(message: string): void {
    if (message === this.last_message) return;
    this.last_message = message;
    this.options.log(message);
  }

  private async step(): Promise<void> {
    const { store, members, keys, client } = this.options;
    const stored = await store.readView();
    if (stored === null) return;
    const view = stored.view;
    const registered = await members.list();
    // Live: the lease is alive and, for an admitted node, it is the admitted incarnation.
    const live = new Set([...registered.values()].filter((m) => {
      const admitted = [...view.nodes, ...(view.next ?? [])].find((n) => n.id === m.node_id)?.incarnation;
      return admitted === undefined || m.incarnation === undefined || admitted === m.incarnation;
    }).map((m) => m.node_id));
    if (await this.failover(stored.mod_revision, view, live)) return;
    const requests = await this.requests();
    if (view.next !== undefined) {
      const drained = new Set((await client.getAll().prefix(`${keys.prefix}moves/${view.epoch}/`).keys()).map((key) => key.slice(key.lastIndexOf('/') + 1)));
      const dead = [...view.nodes, ...view.next].filter((n) => !live.has(n.id));
      // With one copy a dead node's keys are gone anyway: drop it at once. With more, it stays
      // down until this change is over, and is then removed by a change that copies its slots.
      const single = (view.replicas ?? 1) === 1 && (view.next_replicas ?? 1) === 1;
      const removal = single ? requests.find((r) => r.request.kind === 'remove' && dead.some((n) => n.id === nodeIdOf(r.request))) : undefined;
      if (removal !== undefined) {
        const id = nodeIdOf(removal.request)!;
        const nodes = view.nodes.filter((n) => n.id !== id);
        const rest = view.next.filter((n) => n.id !== id);
        if (nodes.length > 0 && rest.length > 0) {
          const next: ClusterView = { ...view, epoch: view.epoch + 1, nodes, next: rest };
          if (view.next_down !== undefined) next.next_down = view.next_down.filter((d) => d !== id);
          const down = (view.down ?? []).filter((d) => d !== id);
          if (down.length > 0) next.down = down;
          else {
            delete next.down;
            delete next.down_epoch;
          }
          if (sameMembers(nodes, rest) && (view.next_replicas ?? view.replicas) === view.replicas) {
            delete next.next;
            delete next.next_replicas;
            delete next.next_down;
          }
          await this.commit(stored.mod_revision, next, `remove dead ${id} during a move`, removal);
          return;
        }
      }
      const down = new Set(view.down ?? []);
      const sources = view.nodes.filter((n) => !down.has(n.id));
      if (sources.every((n) => drained.has(n.id))) {
        // A slot whose every copy went down during the change was streamed by nobody: switching
        // would make its targets in sync without its data. The change is given up instead (the
        // current nodes still own everything); down nodes are dealt with once the view is settled,
        // and a join or leave request is tried again.
        const why = (view.down ?? []).length > 0 ? this.whyWaitsForDown(view) : null;
        if (why !== null) {
          const next: ClusterView = { ...view, epoch: view.epoch + 1 };
          delete next.next;
          delete next.next_replicas;
          delete next.next_down;
          await this.commit(stored.mod_revision, next, `change given up: ${why.split(';')[0]}`, null);
          return;
        }
        await this.commit(stored.mod_revision, switchOf(view), 'switch: every primary drained', null);
        return;
      }
      this.say(`controller: epoch ${view.epoch}: waiting for ${sources.filter((n) => !drained.has(n.id)).map((n) => n.id).join(',')} to drain`);
      return;
    }
    if (await this.returns(stored.mod_revision, view, live, registered)) return;
    // Finished requests go; the rest wait their turn, oldest first.
    for (const pending of requests) {
      if (isDone(pending.request, view)) await this.drop(pending);
    }
    const first = requests.find((r) => !isDone(r.request, view));
    if (first === undefined) return;
    if (!(await this.cleanEverywhere(view, live))) return;
    await this.apply(stored.mod_revision, view, first, live, registered);
  }

  /**
   * Marks down every member of the view whose lease is gone or whose registration is another
   * incarnation (R5), in one commit; drops joining nodes that died from `next`. True if it
   * committed (or tried to).
   */
  private async failover(revision: number, view: ClusterView, live: Set<string>): Promise<boolean> {
    const down = new Set(view.down ?? []);
    const now_ms = Date.now();
    for (const id of down) if (!this.down_since_ms.has(id)) this.down_since_ms.set(id, now_ms);
    const failed = view.nodes.filter((n) => !down.has(n.id) && !live.has(n.id)).map((n) => n.id);
    const joiners_dead = (view.next ?? []).filter((n) => !view.nodes.some((m) => m.id === n.id) && !live.has(n.id)).map((n) => n.id);
    // A down node being copied back (down now, not in the target) that died again stays down.
    const returning_dead = view.next_down === undefined ? [] : [...down].filter((id) => !view.next_down!.includes(id) && !live.has(id));
    if (failed.length === 0 && joiners_dead.length === 0 && returning_dead.length === 0) return false;
    const next: ClusterView = { ...view, epoch: view.epoch + 1 };
    if (view.next_down !== undefined) next.next_down = [...new Set([...view.next_down, ...failed, ...returning_dead])];
    if (failed.length > 0) {
      next.down = [...down, ...failed];
      next.down_epoch = { ...(view.down_epoch ?? {}) };
      for (const id of failed) {
        next.down_epoch[id] = view.epoch + 1;
        this.down_since_ms.set(id, now_ms);
      }
    }
    if (joiners_dead.length > 0 && view.next !== undefined) {
      const rest = view.next.filter((n) => !joiners_dead.includes(n.id));
      next.next = rest;
      if (next.next_down !== undefined) next.next_down = next.next_down.filter((id) => rest.some((n) => n.id === id));
    }
    if (next.next !== undefined && isNoChange(next)) {
      delete next.next;
      delete next.next_replicas;
      delete next.next_down;
    }
    const what = [
      failed.length > 0 ? `${failed.join(',')} down (lease expired or restarted)` : '',
      joiners_dead.length > 0 ? `joining ${joiners_dead.join(',')} gone` : '',
      returning_dead.length > 0 ? `${returning_dead.join(',')} died again while being copied back` : '',
    ].filter(Boolean).join('; ');
    await this.commit(revision, next, what, null);
    return true;
  }

  /**
   * A down node that is back (a live registration of a new incarnation, or the same process
   * with a new lease), or whose grace ran out (R5):
   *   - back: a change copies it back (`next_down` without it): every primary of a slot it holds
   *     streams the slot to it, and at the switch it is in sync again. Slots with no live copy
   *     have no primary to stream from: it keeps its own copy of those, so it waits while any
   *     of them has a copy on a node still down that went down later (which may be newer).
   *     Before the change starts it must have reported clean: a down node drops its copies of
   *     slots with a live copy (ViewRings.keeps), so nothing deleted meanwhile comes back.
   *   - grace over, N >= 2, and every slot it holds has a live copy: a change removes it, and
   *     the nodes that rank in get copies (re-replication). If it runs, it joins again empty.
   *   - otherwise it waits, and the controller says why.
   */
  private async returns(revision: number, view: ClusterView, live: Set<string>, registered: Map<string, MemberRecord>): Promise<boolean> {
    const down = view.down ?? [];
    if (down.length === 0) return false;
    if (this.rings_cache?.view.epoch !== view.epoch) this.rings_cache = new ViewRings(view);
    const placement = this.rings_cache.current!;
    const k = placement.replicas;
    const down_epoch = (id: string): number => view.down_epoch?.[id] ?? 0;
    for (const id of down) {
      const back = registered.has(id);
      const grace_over = Date.now() - (this.down_since_ms.get(id) ?? Date.now()) >= this.options.down_grace_ms;
      if (!back && !(grace_over && placement.replicas >= 2)) continue;
      let slots_live = 0, slots_alone = 0, slots_behind = 0;
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        if (!placement.holds(id, (slot << 16) >>> 0)) continue;
        let has_live = false, newer = false;
        for (let i = 0; i < k; i++) {
          const other = placement.ring.nodes[placement.ranked[slot * k + i]!]!.id;
          if (other === id) continue;
          if (!placement.isDown(other)) has_live = true;
          else if (down_epoch(other) > down_epoch(id)) newer = true;
        }
        if (has_live) slots_live++;
        else if (newer) slots_behind++;
        else slots_alone++;
      }
      if (back && slots_behind === 0) {
        if (!(await this.cleanEverywhere(view, live, [id]))) return true;
        const next_down = down.filter((d) => d !== id);
        // Admit the incarnation that is back, so that it counts as live once it is in sync.
        const record = registered.get(id)!;
        const nodes = view.nodes.map((n) => (n.id === id ? { ...n, url: record.url, incarnation: record.incarnation } : n));
        const next: ClusterView = { ...view, epoch: view.epoch + 1, nodes, next: nodes, next_down };
        const problem = await this.overfull(view, next, registered);
        if (problem !== null) {
          this.say(`controller: ${id} is back, but copying it back waits: ${problem}`);
          continue;
        }
        await this.commit(revision, next,
          `copy ${id} back: ${slots_live} slots from their primaries, ${slots_alone} kept as it has them (no other copy is newer)`, null);
        return true;
      }
      if (!back && slots_alone === 0 && slots_behind === 0) {
        if (!(await this.cleanEverywhere(view, live))) return true;
        const nodes = view.nodes.filter((n) => n.id !== id);
        if (nodes.length === 0) continue;
        const next: ClusterView = { ...view, epoch: view.epoch + 1, next: nodes };
        const problem = await this.overfull(view, next, registered);
        if (problem !== null) {
          this.say(`controller: ${id}'s grace ran out, but rebuilding its copies would not fit, so it stays down: ${problem}`);
          continue;
        }
        await this.commit(revision, next, `remove down ${id} after its grace: its copies are rebuilt from the survivors`, null);
        return true;
      }
      this.say(`controller: ${id} is down${back ? ' and back' : ''}: ${slots_live} of its slots have a live copy, ${slots_alone} have none, ${slots_behind} have a newer copy on a node still down; it waits for those nodes (or an operator's remove)`);
    }
    return false;
  }

  /**
   * Why `next` would overfill a node (capacity.ts), or null. Memory comes from the nodes' clean
   * reports (used and capacity) and, for nodes not in the view yet, their registration.
   */
  private async overfull(view: ClusterView, next: ClusterView, registered: Map<string, MemberRecord>): Promise<string | null> {
    const { client, keys } = this.options;
    const clean = await client.getAll().prefix(`${keys.prefix}clean/`).strings();
    const memory = new Map<string, NodeMemoryReport>();
    for (const [id, record] of registered) {
      if (record.bytes_capacity !== undefined && !view.nodes.some((n) => n.id === id)) memory.set(id, { bytes_used: 0, bytes_capacity: record.bytes_capacity });
    }
    for (const node of view.nodes) {
      const report = parseCleanReport(clean[`${keys.prefix}clean/${node.id}`]);
      if (report !== null && report.bytes_capacity > 0) memory.set(node.id, report);
    }
    return overfills(view, next, memory);
  }

  /** Drops `pending` with a log line if `next` would overfill a node; true if it did. */
  private async refusedAsOverfull(view: ClusterView, next: ClusterView, registered: Map<string, MemberRecord>, pending: PendingRequest): Promise<boolean> {
    const problem = await this.overfull(view, next, registered);
    if (problem === null) return false;
    this.options.log(`controller: ${pending.request.kind} refused: ${problem}`);
    await this.drop(pending);
    return true;
  }

  /**
   * True (and says why) if the change `next` would change the replicas of a slot whose every
   * copy is on a down node: no primary can stream it, so the switch would make a node in sync
   * on it without the data, or drop the down nodes' copies. Such a change waits until those
   * nodes are back and copied back, or an operator removes them (a remove is not checked: it
   * may lose keys, and says so).
   */
  private waitsForDown(next: ClusterView, what: string): boolean {
    if ((next.down ?? []).length === 0) return false;
    const digest = viewDigest({ ...next, epoch: 0 });
    if (this.waits_cache?.digest !== digest) this.waits_cache = { digest, why: this.whyWaitsForDown(next) };
    if (this.waits_cache.why === null) return false;
    this.say(`controller: ${what} waits: ${this.waits_cache.why}`);
    return true;
  }

  private whyWaitsForDown(next: ClusterView): string | null {
    const rings = new ViewRings(next);
    const now = rings.current!, after = rings.target!;
    const replicasOf = (placement: Placement, slot: number): string => {
      const k = placement.replicas;
      return Array.from(placement.ranked.subarray(slot * k, slot * k + k), (i) => placement.ring.nodes[i]!.id).sort().join(',');
    };
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      if (now.primary_index[slot] !== NO_PRIMARY) {
        if (after.primary_index[slot] === NO_PRIMARY) return `slot ${slot} would have every copy on down ${replicasOf(after, slot)}, none of which has it; it waits for those nodes to come back (or an operator's remove)`;
        continue;
      }
      const before = replicasOf(now, slot), later = replicasOf(after, slot);
      if (before !== later) return `slot ${slot} has no live copy (its copies are on down ${before}), and the change would move it to ${later}; it waits for those nodes to come back (or an operator's remove)`;
      // A down node copied back keeps such a slot as it has it: only if no other copy went down later.
      const hash = (slot << 16) >>> 0;
      const epoch = (id: string): number => next.down_epoch?.[id] ?? 0;
      const newest = Math.max(...before.split(',').map(epoch));
      const behind = after.inSync(slot).find((n) => epoch(n.id) < newest);
      if (behind !== undefined && now.holds(behind.id, hash)) return `slot ${slot} has no live copy, and ${behind.id} would be in sync on it while a copy that went down later may be newer`;
    }
    return null;
  }

  /** True when every live node of the view reported clean at its epoch (a change may start). */
  private async cleanEverywhere(view: ClusterView, live: Set<string>, also: string[] = []): Promise<boolean> {
    const { client, keys } = this.options;
    const clean = await client.getAll().prefix(`${keys.prefix}clean/`).strings();
    const down = new Set(view.down ?? []);
    const dirty = view.nodes.filter((n) => (also.includes(n.id) || (live.has(n.id) && !down.has(n.id))) && parseCleanReport(clean[`${keys.prefix}clean/${n.id}`])?.epoch !== view.epoch).map((n) => n.id);
    if (dirty.length === 0) return true;
    this.say(`controller: epoch ${view.epoch}: waiting for ${dirty.join(',')} to finish deleting old copies before the next change`);
    return false;
  }

  private async apply(revision: number, view: ClusterView, pending: PendingRequest, live: Set<string>, registered: Map<string, MemberRecord>): Promise<void> {
    const { request } = pending;
    const without = (id: string): RingNode[] => view.nodes.filter((n) => n.id !== id);
    if (request.kind === 'join') {
      if (!live.has(request.node_id)) {
        this.say(`controller: join of ${request.node_id} waits for it to register`);
        return;
      }
      const node: RingNode = { id: request.node_id, url: request.url, weight: request.weight };
      const incarnation = registered.get(request.node_id)?.incarnation;
      if (incarnation !== undefined) node.incarnation = incarnation;
      const next: ClusterView = { ...view, epoch: view.epoch + 1, next: [...view.nodes, node] };
      if (this.waitsForDown(next, request.kind)) return;
      if (await this.refusedAsOverfull(view, next, registered, pending)) return;
      await this.commit(revision, next, `join ${node.id}`, null);
    } else if (request.kind === 'leave' || (request.kind === 'remove' && live.has(request.node_id))) {
      if (request.kind === 'remove' && request.force !== true) {
        this.options.log(`controller: remove of ${request.node_id} refused: its lease is alive (use --force to hand its keys off as a leave)`);
        await this.drop(pending);
        return;
      }
      if (view.nodes.length === 1) {
        this.options.log(`controller: ${request.kind} of ${request.node_id} refused: it is the last node`);
        await this.drop(pending);
        return;
      }
      const next: ClusterView = { ...view, epoch: view.epoch + 1, next: without(request.node_id) };
      if (this.waitsForDown(next, request.kind)) return;
      if (await this.refusedAsOverfull(view, next, registered, pending)) return;
      await this.commit(revision, next, `leave ${request.node_id}`, null);
    } else if (request.kind === 'remove') {
      const nodes = without(request.node_id);
      if (nodes.length === 0) {
        await this.drop(pending);
        return;
      }
      if ((view.replicas ?? 1) >= 2) {
        // The other copies of its slots are rebuilt on the nodes that rank in: a change, never a
        // plain drop, or those nodes would count as in sync without the data (R5, R6).
        const next: ClusterView = { ...view, epoch: view.epoch + 1, next: nodes };
        if (await this.refusedAsOverfull(view, next, registered, pending)) return;
        await this.commit(revision, next, `remove dead ${request.node_id}: its copies are rebuilt from the survivors`, null);
        return;
      }
      const down = (view.down ?? []).filter((id) => id !== request.node_id);
      const next: ClusterView = { ...view, epoch: view.epoch + 1, nodes, down };
      if (next.down_epoch !== undefined) next.down_epoch = Object.fromEntries(Object.entries(next.down_epoch).filter(([id]) => id !== request.node_id));
      if (down.length === 0) {
        delete next.down;
        delete next.down_epoch;
      }
      const copies = (view.replicas ?? 1) >= 2 ? 'keys it alone held are lost; other keys keep their copies' : 'its keys are lost';
      await this.commit(revision, next, `remove dead ${request.node_id} (${copies})`, pending);
    } else if (request.kind === 'set-min-replicas') {
      // Moves no data: one commit. It takes effect on each primary as it adopts the view.
      if (request.min_replicas === (view.min_replicas ?? 1)) {
        await this.drop(pending);
        return;
      }
      if (request.min_replicas > (view.replicas ?? 1)) {
        this.options.log(`controller: set min_replicas ${request.min_replicas} refused: it is more than replicas ${view.replicas ?? 1}, so every write would be refused (raise replicas first)`);
        await this.drop(pending);
        return;
      }
      const next: ClusterView = { ...view, epoch: view.epoch + 1 };
      if (request.min_replicas === 1) delete next.min_replicas;
      else next.min_replicas = request.min_replicas;
      await this.commit(revision, next, `set min_replicas ${view.min_replicas ?? 1} -> ${request.min_replicas}`, pending);
    } else if (request.kind === 'set-replicas') {
      if (request.replicas === (view.replicas ?? 1)) {
        await this.drop(pending);
        return;
      }
      if (request.replicas < (view.min_replicas ?? 1)) {
        this.options.log(`controller: set replicas ${request.replicas} refused: it is less than min_replicas ${view.min_replicas ?? 1}, so every write would be refused (lower min_replicas first)`);
        await this.drop(pending);
        return;
      }
      const next: ClusterView = { ...view, epoch: view.epoch + 1, next: view.nodes, next_replicas: request.replicas };
      if (this.waitsForDown(next, request.kind)) return;
      if (await this.refusedAsOverfull(view, next, registered, pending)) return;
      // The request stays until the factor is reached (isDone), like a join: a change given up
      // (a slot lost every copy mid-change) is tried again (test/chaos-set-replicas.test.ts).
      await this.commit(revision, next, `set replicas ${view.replicas ?? 1} -> ${request.replicas}`, null);
    } else {
      this.options.log(`controller: ${request.kind} requests are not supported yet; dropped`);
      await this.drop(pending);
    }
  }

  private async commit(revision: number, next: ClusterView, why: string, request: PendingRequest | null): Promise<void> {
    const result = await this.options.store.casView(revision, next);
    if (!result.ok) {
      this.say('controller: the view changed under this step; retrying');
      return;
    }
    this.options.log(`controller: epoch ${next.epoch}: ${why}`);
    if (request !== null) await this.drop(request);
  }

  /**
   * Deletes a request this step has dealt with, unless it was rewritten since it was read (a
   * `remove --force` written over a refused `remove` must not be deleted with it).
   */
  private async drop(pending: { key: string; mod_revision: string }): Promise<void> {
    const key = Buffer.from(pending.key);
    await this.options.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: pending.mod_revision }],
      success: [{ request_delete_range: { key } }],
      failure: [],
    });
  }

  /** Admin requests, oldest first (etcd create revision). Malformed ones are logged and deleted. */
  private async requests(): Promise<PendingRequest[]> {
    const { client, keys } = this.options;
    const response = await client.getAll().prefix(keys.requests_prefix).sort('Create', 'Ascend').exec();
    const result: PendingRequest[] = [];
    for (const kv of response.kvs) {
      const key = kv.key.toString();
      try {
        const raw = JSON.parse(kv.value.toString()) as Record<string, unknown>;
        const request = checkAdminRequest(raw) as AdminRequest & { force?: boolean };
        if (raw['force'] === true) request.force = true;
        result.push({ key, mod_revision: kv.mod_revision, request });
      } catch (error) {
        this.options.log(`controller: dropping malformed request ${key}: ${(error as Error).message}`);
        await this.drop({ key, mod_revision: kv.mod_revision });
      }
    }
    return result;
  }
}

/** The view that ends the change in progress: its target becomes current; down nodes it keeps stay down. */
function switchOf(view: ClusterView): ClusterView {
  const nodes = view.next!;
  const result: ClusterView = { epoch: view.epoch + 1, nodes };
  const replicas = view.next_replicas ?? view.replicas;
  if (replicas !== undefined) result.replicas = replicas;
  if (view.min_replicas !== undefined) result.min_replicas = view.min_replicas;
  const down = targetDown(view);
  if (down.length > 0) {
    result.down = down;
    result.down_epoch = Object.fromEntries(down.map((id) => [id, view.down_epoch?.[id] ?? view.epoch]));
  }
  return result;
}

/** True if a view's `next` changes nothing: same members, factor and down nodes. */
function isNoChange(view: ClusterView): boolean {
  const next = view.next!;
  const down = [...(view.down ?? [])].sort().join(',');
  return sameMembers(next, view.nodes) && (view.next_replicas ?? view.replicas) === view.replicas && [...targetDown(view)].sort().join(',') === down;
}

function isDone(request: AdminRequest, view: ClusterView): boolean {
  if (request.kind === 'join') return view.nodes.some((n) => n.id === request.node_id);
  if (request.kind === 'leave' || request.kind === 'remove') return !view.nodes.some((n) => n.id === request.node_id);
  if (request.kind === 'set-replicas') return (view.replicas ?? 1) === request.replicas;
  return false;
}

function nodeIdOf(request: AdminRequest): string | null {
  return request.kind === 'set-replicas' || request.kind === 'set-min-replicas' ? null : request.node_id;
}

function sameMembers(a: readonly RingNode[], b: readonly RingNode[]): boolean {
  return a.length === b.length && a.every((n) => b.some((m) => m.id === n.id));
}

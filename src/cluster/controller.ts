/**
 * The cluster controller (docs/MEMBERSHIP.md): carries out admin requests stored in etcd, one
 * change at a time, as compare-and-swap steps on the view. Any node may be it; one is elected
 * through etcd. Every step reads its whole input from etcd (view, members, requests, drained
 * and clean reports), so a controller that dies is replaced and the next one continues from
 * the committed state: nothing the controller knows lives only in its memory.
 *
 * One step, from the committed view V (epoch E):
 *   - V has `next` (a move in progress): when every node of V.nodes reported
 *     `moves/E/<id> = drained`, commit the switch {E + 1, nodes: next}. If a node of the move
 *     is dead and a remove request names it, commit {E + 1} without it (the move restarts
 *     from the same owners: I4).
 *   - V is settled: once every live node reported clean at E, take the oldest request:
 *     join (the node must be registered), leave, or remove. A remove of a node whose lease is
 *     alive is refused unless forced, and a forced one is carried out as a leave.
 * A CAS that fails means someone else moved the view: the step is simply tried again.
 */
import type { Etcd3 } from 'etcd3';
import type { ClusterView } from '../routing/view.js';
import type { RingNode } from '../routing/ring.js';
import { checkAdminRequest, ControllerElection, type AdminRequest, type ClusterKeys, type EtcdSession, type Members, type ViewStore } from './etcd/index.js';

export interface ControllerOptions {
  client: Etcd3;
  session: EtcdSession;
  store: ViewStore<ClusterView>;
  members: Members;
  keys: ClusterKeys;
  node_id: string;
  tick_ms: number;
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
    const live = new Set((await members.list()).keys());
    const requests = await this.requests();
    if (view.next !== undefined) {
      const drained = new Set((await client.getAll().prefix(`${keys.prefix}moves/${view.epoch}/`).keys()).map((key) => key.slice(key.lastIndexOf('/') + 1)));
      const dead = [...view.nodes, ...view.next].filter((n) => !live.has(n.id));
      const removal = requests.find((r) => r.request.kind === 'remove' && dead.some((n) => n.id === nodeIdOf(r.request)));
      if (removal !== undefined) {
        const id = nodeIdOf(removal.request)!;
        const nodes = view.nodes.filter((n) => n.id !== id);
        const rest = view.next.filter((n) => n.id !== id);
        if (nodes.length > 0 && rest.length > 0) {
          const next: ClusterView = sameMembers(nodes, rest) ? { epoch: view.epoch + 1, nodes } : { epoch: view.epoch + 1, nodes, next: rest };
          await this.commit(stored.mod_revision, next, `remove dead ${id} during a move`, removal);
          return;
        }
      }
      if (view.nodes.every((n) => drained.has(n.id))) {
        await this.commit(stored.mod_revision, { epoch: view.epoch + 1, nodes: view.next }, 'switch: every old owner drained', null);
        return;
      }
      this.say(`controller: epoch ${view.epoch}: waiting for ${view.nodes.filter((n) => !drained.has(n.id)).map((n) => n.id).join(',')} to drain`);
      return;
    }
    // Finished requests go; the rest wait their turn, oldest first.
    for (const pending of requests) {
      if (isDone(pending.request, view)) await this.drop(pending);
    }
    const first = requests.find((r) => !isDone(r.request, view));
    if (first === undefined) return;
    const clean = await client.getAll().prefix(`${keys.prefix}clean/`).strings();
    const dirty = view.nodes.filter((n) => live.has(n.id) && clean[`${keys.prefix}clean/${n.id}`] !== String(view.epoch)).map((n) => n.id);
    if (dirty.length > 0) {
      this.say(`controller: epoch ${view.epoch}: waiting for ${dirty.join(',')} to finish deleting old copies before the next change`);
      return;
    }
    await this.apply(stored.mod_revision, view, first, live);
  }

  private async apply(revision: number, view: ClusterView, pending: PendingRequest, live: Set<string>): Promise<void> {
    const { request } = pending;
    const without = (id: string): RingNode[] => view.nodes.filter((n) => n.id !== id);
    if (request.kind === 'join') {
      if (!live.has(request.node_id)) {
        this.say(`controller: join of ${request.node_id} waits for it to register`);
        return;
      }
      const node: RingNode = { id: request.node_id, url: request.url, weight: request.weight };
      await this.commit(revision, { epoch: view.epoch + 1, nodes: view.nodes, next: [...view.nodes, node] }, `join ${node.id}`, null);
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
      await this.commit(revision, { epoch: view.epoch + 1, nodes: view.nodes, next: without(request.node_id) }, `leave ${request.node_id}`, null);
    } else if (request.kind === 'remove') {
      const nodes = without(request.node_id);
      if (nodes.length === 0) {
        await this.drop(pending);
        return;
      }
      await this.commit(revision, { epoch: view.epoch + 1, nodes }, `remove dead ${request.node_id} (its keys are lost)`, pending);
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

function isDone(request: AdminRequest, view: ClusterView): boolean {
  if (request.kind === 'join') return view.nodes.some((n) => n.id === request.node_id);
  if (request.kind === 'leave' || request.kind === 'remove') return !view.nodes.some((n) => n.id === request.node_id);
  return false;
}

function nodeIdOf(request: AdminRequest): string | null {
  return request.kind === 'set-replicas' ? null : request.node_id;
}

function sameMembers(a: readonly RingNode[], b: readonly RingNode[]): boolean {
  return a.length === b.length && a.every((n) => b.some((m) => m.id === n.id));
}

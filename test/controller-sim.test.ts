/**
 * Seeded, in-process simulation of the cluster controller's state machine (issue #9,
 * docs/MEMBERSHIP.md, docs/REPLICATION.md), in the style of test/replication-sim.test.ts: one
 * PRNG seed decides every fault, report and admin request on a simulated clock, so a failing seed
 * replays exactly.
 *
 * The code under test is the real one: src/cluster/controller.ts's Controller.step(), with the
 * real ViewStore (signed views, compare-and-swap) and Members, over an in-memory fake of exactly
 * the etcd3 calls they make (kv.range, kv.txn, getAll().prefix()...), with etcd's create and mod
 * revisions. The election loop is not run: the sim calls step() once per controller tick, as the
 * elected controller's loop does. Date.now() is the simulated clock while a seed runs (the
 * controller's down grace reads it).
 *
 * A seed: a pool of 3-6 nodes, 1-4 of them in the first view, N = 1..3. Each tick (100 ms), each
 * live node may report clean at the current epoch (`clean/<id>`), and each live, admitted node of
 * a change that is not down may report drained (`moves/<E>/<id>`). Faults, each on in about half
 * the seeds at a random rate (swarm testing): leases expiring, nodes coming back (same
 * incarnation: a new lease; or a new one: a restart, which keeps its data dir), restarts while the
 * lease is alive, admin requests (join of a pool node, which starts it; leave; remove, forced or
 * not; set-replicas 1..3), controller crashes (a new Controller with empty memory, sometimes
 * right after a commit and before the request is deleted), and CAS races (the view key is
 * rewritten between the step's read and its compare-and-swap).
 *
 * The model: per slot (all 2^16), the set of nodes that hold every acknowledged write
 * ("holders"). Writes are assumed to happen in every view where the slot has a primary, so a node
 * outside the slot's in-sync set (and not a catching-up target) stops being a holder at once. A
 * switch makes the targets of a slot holders if the slot's primary before it was a holder and
 * reported drained at that epoch (it streamed the slot). A restarted node is assumed to keep its
 * data (--data-dir): with N = 1 nothing else can hold it. Checked after every committed view
 * (TigerBeetle-style asserts):
 *   - epochs grow by exactly one per commit, and every committed view passes checkView;
 *   - every node of every slot's in-sync set holds its data (R1): no acknowledged write is lost
 *     and no node serves or counts as in sync without the data, except where an explicit remove
 *     of dead nodes dropped the only copies of a slot (N = 1, or every copy dead: documented as
 *     lossy; counted as slots_lost);
 *   - a node is marked down only when its lease is gone or its registration is another
 *     incarnation (R5); a down node is never primary;
 *   - a down node leaves the view (or the target of a change) only by an explicit remove, or when
 *     every slot it holds has a live copy;
 *   - a down node is copied back only if it holds the newest data of every slot it holds that has
 *     no live copy (no other copy of them went down later);
 * and liveness: once faults stop (every node of the pool live, no new requests) the view settles
 * within SETTLE_TICKS: no `next`, nobody down, every request done or dropped.
 *
 * Bugs it found: a change (join, leave, set-replicas) started while a slot it moves had every
 * copy on down nodes (seed 8: the joiner became primary of a down node's slots without their
 * data); a remove of a dead node during a move left it in `next_down` (seed 23: a view that fails
 * checkView); the switch of a change during which every copy of a slot went down committed
 * anyway (it waits only for sources not down), making the slot's targets in sync without the
 * data (seeds 6, 37, 53, 66, 68, 103), and a leave could move a slot onto down nodes only (seed
 * 32): such a change now waits to start, or is given up at its switch.
 * Mutations caught (first failing seed, with the fixes in): removing a down node after its grace
 * without checking live copies (seed 39), copying back a node that is behind (seed 39), switching
 * without the drained reports (seed 3); and the first two bugs, before their fixes (seeds 8, 23).
 *
 *   PIKV_SIM_SEEDS=<count>  seeds to run (default 100: ~15-30 s on a 2-core box, most of it the
 *                           controller building placements; `npm run test:sim` runs 20,000)
 *   PIKV_SIM_FIRST=<n>      first seed (default 1)
 *   PIKV_SIM_SEED=<n>       replay exactly this seed
 *   PIKV_SIM_TRACE=1        print every simulated event (use with PIKV_SIM_SEED)
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { Controller } from '../src/cluster/controller.js';
import { ClusterKeys, Members, ViewStore, parseCleanReport, verifyView, type EtcdSession } from '../src/cluster/etcd/index.js';
import { Prng } from '../src/hashmap/fixtures/prng.js';
import { Placement } from '../src/routing/placement.js';
import { HashRing, RING_SLOTS, type RingNode } from '../src/routing/ring.js';
import { checkView, targetDown, type ClusterView } from '../src/routing/view.js';
import { simSeeds } from './helpers/sim-clock.js';

const CLUSTER = 'sim';
const SECRET = 'controller-sim-secret';
const TICK_MS = 100;
const SETTLE_TICKS = 1500;
const BASE_MS = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// A fake of the etcd3 calls the controller, ViewStore and Members make.

interface Entry { value: Buffer; create_revision: number; mod_revision: number; lease: string }
interface FakeKv { key: Buffer; value: Buffer; lease: string; create_revision: string; mod_revision: string; version: string }
interface Compare { key: Buffer; target: string; result: string; mod_revision?: number | string }
interface TxnOp { request_put?: { key: Buffer; value: Buffer; lease?: string }; request_delete_range?: { key: Buffer }; request_range?: { key: Buffer } }
interface TxnRequest { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] }

class FakeEtcd {
  revision = 1;
  readonly data = new Map<string, Entry>();
  /** Set by the sim: the next compare on the view key first sees the view rewritten by someone else. */
  race_view = false;
  /** Set by the sim: the next request delete fails, as if the controller died right there. */
  crash_on_drop = false;
  /** Every view value put, in order. */
  readonly view_puts: Buffer[] = [];

  constructor(private readonly view_key: string, private readonly requests_prefix: string) {}

  put(key: string, value: string | Buffer, lease = '0'): void {
    this.revision++;
    const old = this.data.get(key);
    const buffer = typeof value === 'string' ? Buffer.from(value) : value;
    this.data.set(key, { value: buffer, create_revision: old?.create_revision ?? this.revision, mod_revision: this.revision, lease });
    if (key === this.view_key) this.view_puts.push(buffer);
  }

  delete(key: string): void {
    if (!this.data.has(key)) return;
    this.revision++;
    this.data.delete(key);
  }

  get(key: string): string | undefined {
    return this.data.get(key)?.value.toString();
  }

  private kv(key: string, entry: Entry): FakeKv {
    return { key: Buffer.from(key), value: entry.value, lease: entry.lease, create_revision: String(entry.create_revision), mod_revision: String(entry.mod_revision), version: '1' };
  }

  private range(key: string): FakeKv[] {
    const entry = this.data.get(key);
    return entry === undefined ? [] : [this.kv(key, entry)];
  }

  prefixed(prefix: string, by_create: boolean): FakeKv[] {
    const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
    const kvs = keys.map((k) => this.kv(k, this.data.get(k)!));
    if (by_create) kvs.sort((a, b) => Number(a.create_revision) - Number(b.create_revision));
    return kvs;
  }

  private txn(request: TxnRequest): { succeeded: boolean; header: { revision: string }; responses: { response_range: { kvs: FakeKv[] } }[] } {
    for (const compare of request.compare) {
      const key = compare.key.toString();
      if (key === this.view_key && this.race_view) {
        this.race_view = false;
        const entry = this.data.get(key);
        if (entry !== undefined) this.put(key, entry.value); // same value, new mod revision
      }
    }
    const deletes = request.success.filter((op) => op.request_delete_range !== undefined && op.request_delete_range.key.toString().startsWith(this.requests_prefix));
    if (deletes.length > 0 && this.crash_on_drop) {
      this.crash_on_drop = false;
      throw new SimCrash('controller crashed before deleting a request');
    }
    const ok = request.compare.every((c) => {
      assert.equal(c.target, 'Mod');
      assert.equal(c.result, 'Equal');
      return (this.data.get(c.key.toString())?.mod_revision ?? 0) === Number(c.mod_revision);
    });
    const responses: { response_range: { kvs: FakeKv[] } }[] = [];
    for (const op of ok ? request.success : request.failure) {
      if (op.request_put !== undefined) this.put(op.request_put.key.toString(), op.request_put.value, op.request_put.lease ?? '0');
      else if (op.request_delete_range !== undefined) this.delete(op.request_delete_range.key.toString());
      else if (op.request_range !== undefined) responses.push({ response_range: { kvs: this.range(op.request_range.key.toString()) } });
    }
    return { succeeded: ok, header: { revision: String(this.revision) }, responses };
  }

  /** The subset of Etcd3 used by Controller, ViewStore (readView, casView) and Members.list. */
  client(): Etcd3 {
    const getAll = () => {
      let prefix = '';
      let by_create = false;
      const builder = {
        prefix: (p: string) => { prefix = p; return builder; },
        sort: (target: string, order: string) => { assert.equal(target, 'Create'); assert.equal(order, 'Ascend'); by_create = true; return builder; },
        keys: async () => this.prefixed(prefix, by_create).map((kv) => kv.key.toString()),
        strings: async () => Object.fromEntries(this.prefixed(prefix, by_create).map((kv) => [kv.key.toString(), kv.value.toString()])),
        exec: async () => ({ kvs: this.prefixed(prefix, by_create), header: { revision: String(this.revision) } }),
      };
      return builder;
    };
    const fake = {
      kv: {
        range: async (request: { key: Buffer }) => ({ kvs: this.range(request.key.toString()), header: { revision: String(this.revision) } }),
        txn: async (request: TxnRequest) => this.txn(request),
      },
      getAll,
    };
    // Only the calls above exist; anything else the controller started calling would throw a TypeError and fail the seed.
    return fake as unknown as Etcd3;
  }
}

class SimCrash extends Error {}

// ---------------------------------------------------------------------------------------------
// Placements for the model, with rings cached by membership (building one costs milliseconds).

const ring_cache = new Map<string, HashRing>();

function ringOf(nodes: readonly RingNode[]): HashRing {
  const key = nodes.map((n) => `${n.id}:${n.weight}`).sort().join(',');
  let ring = ring_cache.get(key);
  if (ring === undefined) {
    ring = new HashRing(nodes.map((n) => ({ id: n.id, url: 'ws://sim:1', weight: n.weight })));
    ring_cache.set(key, ring);
  }
  return ring;
}

function currentOf(view: ClusterView): Placement {
  return new Placement(ringOf(view.nodes), view.replicas ?? 1, new Set(view.down ?? []));
}

function targetOf(view: ClusterView): Placement | null {
  return view.next === undefined ? null : new Placement(ringOf(view.next), view.next_replicas ?? view.replicas ?? 1, new Set(targetDown(view)));
}

/** Per slot, bit masks over the pool: the slot's replicas, its in-sync set, and its primary. */
interface Masks { replicas: Uint8Array; in_sync: Uint8Array; primary: Uint8Array }

function masksOf(placement: Placement, bit: ReadonlyMap<string, number>): Masks {
  const k = placement.replicas;
  const node_bits = placement.ring.nodes.map((n) => bit.get(n.id)!);
  const replicas = new Uint8Array(RING_SLOTS), in_sync = new Uint8Array(RING_SLOTS), primary = new Uint8Array(RING_SLOTS);
  const down = placement.ring.nodes.map((n) => placement.isDown(n.id));
  for (let slot = 0; slot < RING_SLOTS; slot++) {
    let r = 0, s = 0, p = 0;
    for (let i = 0; i < k; i++) {
      const index = placement.ranked[slot * k + i]!;
      r |= node_bits[index]!;
      if (!down[index]) {
        s |= node_bits[index]!;
        if (p === 0) p = node_bits[index]!;
      }
    }
    replicas[slot] = r;
    in_sync[slot] = s;
    primary[slot] = p;
  }
  return { replicas, in_sync, primary };
}

// ---------------------------------------------------------------------------------------------
// One seed.

interface SimNode { id: string; url: string; bit: number; incarnation: string; live: boolean; lease: number }

interface Counts {
  seeds: number; ticks: number; commits: number; switches: number; failovers: number; copy_backs: number; grace_removals: number;
  lossy_removes: number; slots_lost: number; requests: number; crashes: number; crashes_mid_commit: number; races: number;
  expiries: number; returns: number; restarts: number; settle_ticks_max: number;
}

const zeroCounts = (): Counts => ({
  seeds: 0, ticks: 0, commits: 0, switches: 0, failovers: 0, copy_backs: 0, grace_removals: 0, lossy_removes: 0, slots_lost: 0,
  requests: 0, crashes: 0, crashes_mid_commit: 0, races: 0, expiries: 0, returns: 0, restarts: 0, settle_ticks_max: 0,
});

function ids(nodes: readonly RingNode[] | undefined): string {
  return (nodes ?? []).map((n) => n.id).sort().join(',');
}

async function runSeed(seed: number, counts: Counts, trace: boolean): Promise<void> {
  const rng = new Prng(seed);
  const keys = new ClusterKeys(CLUSTER);
  const etcd = new FakeEtcd(keys.view, keys.requests_prefix);
  const client = etcd.client();
  let now_ms = 0;
  const say = (line: string): void => { if (trace) console.log(`[${String(now_ms).padStart(7)}] ${line}`); };
  const store = new ViewStore<ClusterView>({ client, cluster: CLUSTER, secret: SECRET, check: checkView, log: say });
  const members = new Members({ client, cluster: CLUSTER, log: say });
  counts.seeds++;

  // Swarm testing: each fault is on in about half the seeds, at a random rate per tick.
  const rate = (max: number): number => (rng.chance(0.5) ? max * (0.2 + 0.8 * rng.below(1000) / 1000) : 0);
  const p_expire = rate(0.03), p_return = rate(0.05), p_restart = rate(0.01), p_request = rate(0.04);
  const p_crash = rate(0.02), p_crash_drop = rate(0.2), p_race = rate(0.1);
  const p_clean = 0.2 + rng.below(80) / 100, p_drain = 0.1 + rng.below(80) / 100;
  const down_grace_ms = [0, 300, 2_000, 10_000][rng.below(4)]!;
  const fault_ticks = 40 + rng.below(160);

  const pool: SimNode[] = [];
  const pool_size = 3 + rng.below(4);
  let incarnations = 0;
  for (let i = 0; i < pool_size; i++) pool.push({ id: `n${i}`, url: `ws://10.0.0.${i + 1}:7070`, bit: 1 << i, incarnation: `i${++incarnations}`, live: false, lease: 0 });
  const bit = new Map(pool.map((n) => [n.id, n.bit]));
  let leases = 0;
  const register = (node: SimNode, incarnation: string): void => {
    node.incarnation = incarnation;
    node.live = true;
    node.lease = ++leases;
    etcd.put(keys.member(node.id), JSON.stringify({ url: node.url, weight: 1, started_at_ms: BASE_MS + now_ms, incarnation }), String(node.lease));
  };
  const expire = (node: SimNode): void => {
    node.live = false;
    etcd.delete(keys.member(node.id));
  };

  const initial = 1 + rng.below(Math.min(4, pool_size));
  const replicas = 1 + rng.below(3);
  for (const node of pool.slice(0, initial)) register(node, node.incarnation);
  const first: ClusterView = { epoch: 1, nodes: pool.slice(0, initial).map((n) => ({ id: n.id, url: n.url, weight: 1, incarnation: n.incarnation })) };
  if (replicas !== 1) first.replicas = replicas;
  assert.ok((await store.casView(0, first)).ok);
  etcd.view_puts.length = 0;
  say(`seed ${seed}: pool ${pool_size}, view ${ids(first.nodes)}, N=${replicas}, grace ${down_grace_ms} ms, faults for ${fault_ticks} ticks; rates expire ${p_expire.toFixed(3)} return ${p_return.toFixed(3)} restart ${p_restart.toFixed(3)} request ${p_request.toFixed(3)} crash ${p_crash.toFixed(3)} race ${p_race.toFixed(3)}`);

  // The model.
  let view = first;
  const holders = new Uint8Array(RING_SLOTS);
  /** Slots whose every copy an explicit remove dropped: they start again empty. */
  const lost_slots = new Uint8Array(RING_SLOTS);
  holders.set(masksOf(currentOf(first), bit).in_sync);
  let whys: string[] = [];
  const newController = (): Controller => new Controller({
    client, session: new EventEmitter() as unknown as EtcdSession /* the election (not run here) only subscribes to it */,
    store, members, keys, node_id: 'controller', tick_ms: TICK_MS, down_grace_ms,
    log: (line) => {
      say(line);
      const match = /^controller: epoch (\d+): (.*)$/.exec(line);
      if (match !== null) whys[Number(match[1])] = match[2]!;
    },
  });
  let controller = newController();
  // step() is private: the sim drives it directly, once per tick, instead of the election loop.
  const step = (c: Controller): Promise<void> => (c as unknown as { step(): Promise<void> }).step();

  /** What a node does each tick: report clean at the current epoch, and drained for a change. */
  const reports = (): void => {
    for (const node of pool) {
      if (!node.live) continue;
      const member = view.nodes.find((n) => n.id === node.id) ?? view.next?.find((n) => n.id === node.id);
      if (member === undefined) continue;
      if (parseCleanReport(etcd.get(`${keys.prefix}clean/${node.id}`))?.epoch !== view.epoch && rng.chance(p_clean)) {
        etcd.put(`${keys.prefix}clean/${node.id}`, String(view.epoch));
        say(`${node.id} clean at ${view.epoch}`);
      }
      const admitted = view.nodes.find((n) => n.id === node.id)?.incarnation === node.incarnation;
      const drained_key = `${keys.prefix}moves/${view.epoch}/${node.id}`;
      if (view.next !== undefined && admitted && !(view.down ?? []).includes(node.id) && etcd.get(drained_key) === undefined && rng.chance(p_drain)) {
        etcd.put(drained_key, 'drained');
        say(`${node.id} drained at ${view.epoch}`);
      }
    }
  };

  const requestsNow = (): { kind: string; node_id?: string; force?: boolean }[] =>
    etcd.prefixed(keys.requests_prefix, true).map((kv) => JSON.parse(kv.value.toString()) as { kind: string; node_id?: string; force?: boolean });
  let request_ids = 0;
  const request = (body: Record<string, unknown>): void => {
    counts.requests++;
    etcd.put(keys.request(`r${++request_ids}`), JSON.stringify(body));
    say(`request ${JSON.stringify(body)}`);
  };

  const faults = (): void => {
    for (const node of pool) {
      const in_view = view.nodes.some((n) => n.id === node.id) || view.next?.some((n) => n.id === node.id) === true;
      if (node.live && in_view && rng.chance(p_expire)) {
        counts.expiries++;
        expire(node);
        say(`${node.id} lease expired`);
      } else if (!node.live && node.lease > 0 && rng.chance(p_return)) {
        counts.returns++;
        const same = rng.chance(0.5);
        register(node, same ? node.incarnation : `i${++incarnations}`);
        say(`${node.id} back (${same ? 'same incarnation, new lease' : `restarted as ${node.incarnation}`})`);
      } else if (node.live && rng.chance(p_restart)) {
        counts.restarts++;
        register(node, `i${++incarnations}`);
        say(`${node.id} restarted as ${node.incarnation} before its lease expired`);
      }
    }
    if (rng.chance(p_request)) {
      const node = pool[rng.below(pool.length)]!;
      const kind = rng.below(4);
      if (kind === 0) {
        if (!node.live && rng.chance(0.7)) register(node, `i${++incarnations}`);
        request({ kind: 'join', node_id: node.id, url: node.url, weight: 1 });
      } else if (kind === 1) request({ kind: 'leave', node_id: node.id });
      else if (kind === 2) request(rng.chance(0.3) ? { kind: 'remove', node_id: node.id, force: true } : { kind: 'remove', node_id: node.id });
      else request({ kind: 'set-replicas', replicas: 1 + rng.below(3) });
    }
    if (rng.chance(p_crash)) {
      counts.crashes++;
      controller = newController();
      say('controller crashed: a new one takes over');
    }
  };

  /** Checks one committed view against the one before it and updates the model. */
  const committed = (prev: ClusterView, next: ClusterView, why: string, live: ReadonlySet<string>, pending: { kind: string; node_id?: string }[]): void => {
    const where = `epoch ${next.epoch} (${why})`;
    assert.equal(next.epoch, prev.epoch + 1, `${where}: the epoch must grow by one`);
    assert.deepEqual(checkView(JSON.parse(JSON.stringify(next))), checkView(next), `${where}: not a valid view`);
    counts.commits++;
    const prev_down = new Set(prev.down ?? []);
    const next_down = new Set(next.down ?? []);
    const removing = (id: string): boolean => pending.some((r) => r.kind === 'remove' && r.node_id === id);
    // R5: marked down only when its lease is gone or it is another incarnation.
    for (const id of next_down) {
      if (prev_down.has(id)) continue;
      counts.failovers++;
      assert.ok(!live.has(id), `${where}: ${id} marked down while its admitted incarnation is live`);
    }
    const prev_cur = masksOf(currentOf(prev), bit);
    const cur = masksOf(currentOf(next), bit);
    const target = targetOf(next);
    const tgt = target === null ? null : masksOf(target, bit);
    // A down node leaves the view, or the target of a change, only by an explicit remove or when
    // every slot it holds has a live copy.
    for (const id of prev_down) {
      const b = bit.get(id)!;
      const gone_now = !next.nodes.some((n) => n.id === id);
      const gone_later = next.next !== undefined && !next.next.some((n) => n.id === id) && prev.next?.some((n) => n.id === id) !== false;
      if (!gone_now && !gone_later) continue;
      if (removing(id)) continue;
      if (gone_now && prev.next !== undefined && !prev.next.some((n) => n.id === id)) continue; // the switch of a change that already removed it
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        if ((prev_cur.replicas[slot]! & b) !== 0) assert.ok((prev_cur.in_sync[slot]! & ~b) !== 0, `${where}: down ${id} removed without a remove request while slot ${slot} has no live copy`);
      }
      if (gone_later && !gone_now) counts.grace_removals++;
    }
    // Copy-back: a down node not down in the target must hold the newest data of every slot it holds that has no live copy.
    if (next.next !== undefined) {
      const stays_down = new Set(targetDown(next));
      for (const id of next_down) {
        if (stays_down.has(id) || !next.next.some((n) => n.id === id)) continue;
        if (prev.next !== undefined && !targetDown(prev).includes(id) && prev.next.some((n) => n.id === id)) continue; // already being copied back
        counts.copy_backs++;
        const b = bit.get(id)!;
        for (let slot = 0; slot < RING_SLOTS; slot++) {
          if ((cur.replicas[slot]! & b) !== 0 && cur.in_sync[slot] === 0 && lost_slots[slot] === 0) assert.ok((holders[slot]! & b) !== 0, `${where}: ${id} is copied back but is behind on slot ${slot} (no live copy; newer data on ${[...pool].filter((n) => (holders[slot]! & n.bit) !== 0).map((n) => n.id).join(',') || 'nobody'})`);
        }
      }
    }
    // The switch: each slot's targets received it from its primary, if that primary held it.
    const is_switch = why.startsWith('switch');
    if (is_switch) {
      counts.switches++;
      assert.ok(prev.next !== undefined && ids(prev.next) === ids(next.nodes) && next.next === undefined, `${where}: a switch must make next current`);
      const prev_tgt = masksOf(targetOf(prev)!, bit);
      // Only a primary that reported drained at that epoch has handed its slots over (I3).
      let drained = 0;
      for (const node of pool) if (etcd.get(`${keys.prefix}moves/${prev.epoch}/${node.id}`) !== undefined) drained |= node.bit;
      for (let slot = 0; slot < RING_SLOTS; slot++) {
        const p = prev_cur.primary[slot]!;
        if ((p & drained) !== 0 && (holders[slot]! & p) !== 0) holders[slot] = holders[slot]! | prev_tgt.in_sync[slot]!;
      }
    }
    // Lossy: a remove of a dead node at N = 1 (documented: its keys are lost).
    const lossy = /^remove dead (\S+) (\(its keys are lost\)|during a move)/.exec(why);
    if (lossy !== null) {
      assert.ok(removing(lossy[1]!), `${where}: lossy remove of ${lossy[1]} without a remove request`);
      counts.lossy_removes++;
    }
    // An explicit remove of a dead node may lose the slots only it (and other removed dead nodes) held.
    let removed_dead = 0;
    for (const r of pending) if (r.kind === 'remove' && r.node_id !== undefined && !live.has(r.node_id)) removed_dead |= bit.get(r.node_id) ?? 0;
    let members_mask = 0;
    for (const n of [...next.nodes, ...(next.next ?? [])]) members_mask |= bit.get(n.id)!;
    const names = (mask: number): string => pool.filter((n) => (mask & n.bit) !== 0).map((n) => n.id).join(',') || 'nobody';
    let lost = 0;
    for (let slot = 0; slot < RING_SLOTS; slot++) {
      const before = holders[slot]!;
      const in_sync = cur.in_sync[slot]!;
      // A node that left the view holds nothing any more; while the slot has a primary, writes go
      // on, and only its in-sync set and the catching-up targets keep up.
      let h = before & members_mask;
      if (in_sync !== 0) h &= in_sync | (tgt === null ? 0 : tgt.in_sync[slot]!);
      if (in_sync === 0 && h === 0 && before !== 0) {
        // Every copy left the view: only an explicit remove of dead nodes may do that.
        assert.ok((before & ~removed_dead) === 0, `${where}: slot ${slot}'s only copies (${names(before)}) left the view without a remove request`);
        lost++;
        lost_slots[slot] = 1;
      } else if (in_sync !== 0 && (in_sync & ~h) !== 0) {
        if (lost_slots[slot] === 1 && before === 0) {
          // A slot lost earlier by an explicit remove starts again, empty, on its new replicas.
        } else if (before !== 0 && (before & ~removed_dead) === 0) {
          lost++;
        } else {
          assert.fail(`${where}: slot ${slot} is in sync on ${names(in_sync)} (primary ${names(cur.primary[slot]!)}), but only ${names(before)} held its data`);
        }
        lost_slots[slot] = 0;
        h = in_sync;
      }
      holders[slot] = h;
    }
    counts.slots_lost += lost;
    for (const id of next_down) assert.ok(!pool.some((n) => n.id === id && cur.primary.includes(n.bit)), `${where}: down ${id} is a primary`);
  };

  const stepOnce = async (): Promise<void> => {
    const live = new Set([...(await members.list()).values()].filter((m) => {
      const admitted = [...view.nodes, ...(view.next ?? [])].find((n) => n.id === m.node_id)?.incarnation;
      return admitted === undefined || admitted === m.incarnation;
    }).map((m) => m.node_id));
    const pending = requestsNow();
    if (rng.chance(p_race)) {
      etcd.race_view = true;
      counts.races++;
    }
    if (rng.chance(p_crash_drop)) etcd.crash_on_drop = true;
    whys = [];
    try {
      await step(controller);
    } catch (error) {
      if (!(error instanceof SimCrash)) throw error;
      counts.crashes_mid_commit++;
      controller = newController();
      say('controller crashed after its commit, before deleting the request: a new one takes over');
    }
    etcd.race_view = false;
    etcd.crash_on_drop = false;
    const puts = etcd.view_puts.splice(0);
    for (const value of puts) {
      const next = verifyView(CLUSTER, value, SECRET, checkView);
      if (next.epoch === view.epoch) continue; // the race's rewrite of the same view
      committed(view, next, whys[next.epoch] ?? '?', live, pending);
      view = next;
    }
  };

  const realNow = Date.now;
  Date.now = () => BASE_MS + now_ms;
  try {
    for (let t = 0; t < fault_ticks; t++) {
      now_ms += TICK_MS;
      counts.ticks++;
      faults();
      reports();
      await stepOnce();
    }
    // Faults stop: every node of the pool is live, no new requests.
    say('faults stop: every node comes back');
    for (const node of pool) if (!node.live) register(node, rng.chance(0.5) && node.lease > 0 ? node.incarnation : `i${++incarnations}`);
    let settled_for = 0;
    for (let t = 0; t < SETTLE_TICKS && settled_for < 5; t++) {
      now_ms += TICK_MS;
      counts.ticks++;
      reports();
      await stepOnce();
      const settled = view.next === undefined && (view.down ?? []).length === 0 && requestsNow().length === 0;
      settled_for = settled ? settled_for + 1 : 0;
      if (settled_for === 1) counts.settle_ticks_max = Math.max(counts.settle_ticks_max, t);
    }
    assert.ok(settled_for >= 5, `liveness: not settled ${SETTLE_TICKS} ticks after the faults stopped: ${JSON.stringify(view)}; requests ${JSON.stringify(requestsNow())}`);
  } finally {
    Date.now = realNow;
  }
}

describe('Controller state machine against a model (seeded simulation)', () => {
  const { first, count, trace } = simSeeds(100);

  it(`keeps the view's invariants and settles for ${count} seed(s) from ${first}`, { timeout: Math.max(120_000, count * 1000) }, async () => {
    const total = zeroCounts();
    const failed: string[] = [];
    const started = performance.now();
    for (let seed = first; seed < first + count; seed++) {
      try {
        await runSeed(seed, total, trace);
      } catch (error) {
        failed.push(`seed ${seed}: ${(error as Error).message.split('\n')[0]}\n  replay: PIKV_SIM_SEED=${seed} PIKV_SIM_TRACE=1 node --test dist/test/controller-sim.test.js`);
        if (failed.length === 1) console.error(error);
        if (failed.length >= 5) break;
      }
    }
    console.log(`controller sim: ${count} seed(s) from ${first} in ${Math.round(performance.now() - started)} ms; ${JSON.stringify(total)}`);
    if (failed.length > 0) console.log(`failing seeds:\n${failed.join('\n')}`);
    assert.deepEqual(failed, [], `failing seeds:\n${failed.join('\n')}`);
    if (count >= 100) {
      // Guard against a simulator that quietly stopped reaching a case.
      for (const [name, n] of Object.entries(total)) assert.ok(n > 0, `no ${name} in ${count} seeds: the simulator lost a case`);
    }
  });
});

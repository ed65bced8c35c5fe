/**
 * Seeded, in-process simulation of the hand-off stream (cluster/move-stream.ts), in the style of
 * FoundationDB's and TigerBeetle's simulators: one PRNG seed decides every write, every network
 * delay and every fault, and a simulated clock orders them, so a failing seed replays exactly.
 *
 * The sender side plays the old owner: an initial scan of random values, then random PUT/DELETE
 * writes on a few keys (keys are overwritten and deleted again and again), each applied to the
 * model map and appended to the stream at once, as Migration.capture does. The simulated link
 * carries frames to a receiver that plays the new owner. Faults, chosen per seed (swarm
 * testing: each seed enables a random subset at random rates):
 *   - frames delayed by random amounts, some past the request timeout (applied late, after the
 *     sender gave up on them);
 *   - answers delayed independently, so they come back out of order;
 *   - an answer lost after the frame WAS applied (the sender sees a timeout);
 *   - a frame lost before the receiver (never applied; the sender sees a timeout);
 *   - ops of a frame refused at the receiver (OUT_OF_MEMORY: the rest of the frame is applied);
 *   - the connection dropping (unapplied frames of the dead connection are dropped, every pending
 *     request is rejected) and coming back as a new connection;
 *   - the link shown down for a while with its connection still open (missed heartbeats).
 * A resent frame that was applied before is applied again (duplicate delivery).
 * Each connection is FIFO, like a WebSocket: frames are applied in the order they were sent.
 * The clock and the link are shared with test/replication-sim.test.ts (test/helpers/sim-clock.ts,
 * test/helpers/sim-link.ts).
 *
 * Checked after every event: at most STREAM_FRAMES_INFLIGHT_MAX frames unacknowledged (as the
 * stream counts them, and as the link sees them since the last failure), keys_acked ≤ keys_sent,
 * keys_acked never decreases, and whenever the stream is idle, every appended op is
 * acknowledged and the receiver holds exactly the sender's state (invariant I3 in
 * docs/MEMBERSHIP.md). At the end, once faults stop, the stream must become idle (liveness) and
 * the receiver must equal the sender exactly: a stale value or a resurrected key fails.
 *
 *   PIKV_SIM_SEEDS=<count>  seeds to run (default 300; `npm run test:sim` runs 20,000)
 *   PIKV_SIM_FIRST=<n>      first seed (default 1), to soak other ranges
 *   PIKV_SIM_SEED=<n>       replay exactly this seed
 *   PIKV_SIM_TRACE=1        print every simulated event (use with PIKV_SIM_SEED)
 *   PIKV_SIM_ZOMBIE=1       also apply frames of dead connections (outside the model; fails)
 */
import { OpRef } from '../src/engine/op-ref.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoveStream, RESEND_DELAY_MS, STREAM_FRAMES_INFLIGHT_MAX } from '../src/cluster/move-stream.js';
import type { PeerLink } from '../src/cluster/peer-link.js';
import type { RingNode } from '../src/routing/ring.js';
import type { ColumnBatch } from '../src/client/client.js';
import { Op, Status } from '../src/protocol/constants.js';
import { Prng } from '../src/hashmap/fixtures/prng.js';
import { Clock, drain, simSeeds } from './helpers/sim-clock.js';
import { SimLink, zeroLinkCounts, type FrameReceiver, type LinkCounts, type LinkFaults } from './helpers/sim-link.js';

const DEST: RingNode = { id: 'b', url: 'ws://sim:1', weight: 1 };
/** Migration's flush timer while sealing (migration.ts TIMER_IDLE_MS): it is what flushes a stream again after the link comes back. */
const DRIVER_TICK_MS = 20;
/**
 * Opt-in (PIKV_SIM_ZOMBIE=1), off in CI: frames of a dead connection are still applied at the
 * receiver when they arrive, after the connection died, instead of being dropped. The stream
 * assumes they are dropped; this knob shows what breaks when they are not (see MEMBERSHIP.md).
 */
const ZOMBIE = process.env['PIKV_SIM_ZOMBIE'] === '1';
/** Simulated time a seed may take before it is declared stuck. */
const SIM_TIME_MAX_MS = 10 * 60_000;

// ---------------------------------------------------------------- per-seed parameters

interface Params extends LinkFaults {
  keys: number;
  scan: number;
  writes: number;
  delete_p: number;
  /** Max ms between two write events; writes of one event share a frame. */
  write_gap_ms: number;
  burst_max: number;
  /** Chance per fault tick that the connection drops / that the link is shown down with the connection open. */
  drop_p: number;
  flap_p: number;
}

function params(prng: Prng): Params {
  // Swarm testing: each fault is on in about half the seeds, at a random rate, so seeds differ
  // in kind (a seed with only reordering, one with only drops) and not just in timing.
  const on = (max: number): number => (prng.chance(0.5) ? prng.nextU32() / 0x1_0000_0000 * max : 0);
  const keys = 1 + prng.below(8);
  // A few bulk seeds write bursts of thousands of ops, so batches fill (OUT_BATCH_OPS_MAX), the
  // queue holds several of them, and a failure puts frames back in front of a long queue.
  const bulk = prng.chance(1 / 16);
  return {
    keys,
    scan: prng.below(keys + 1),
    writes: bulk ? prng.below(40_000) : prng.below(400),
    delete_p: 0.1 + prng.below(40) / 100,
    write_gap_ms: 1 + prng.below(10),
    burst_max: bulk ? 1 + prng.below(20_000) : 1 + prng.below(4),
    request_timeout_ms: 50 + prng.below(1000),
    delay_max_ms: 1 + prng.below(30),
    long_delay_p: on(0.05),
    answer_delay_max_ms: 1 + prng.below(40),
    answer_lost_p: on(0.1),
    frame_lost_p: on(0.1),
    refuse_p: on(0.05),
    drop_p: on(0.1),
    flap_p: on(0.1),
  };
}

// ---------------------------------------------------------------- simulated network

/** What the network and the stream did in one seed; summed over all seeds to show every fault was exercised. */
interface Counts extends LinkCounts {
  flaps: number;
  /** Times the stream's queue held more than one batch (a full batch waiting behind the frames in flight). */
  queue_backlog_seen: number;
}

const zeroCounts = (): Counts => ({ ...zeroLinkCounts(), flaps: 0, queue_backlog_seen: 0 });

/** The receiving node: applies a frame's ops in order, as the new owner's partitions do. */
class Receiver implements FrameReceiver {
  readonly map = new Map<string, string>();

  apply(frame: ColumnBatch, refuse: () => boolean): Uint8Array {
    const status = new Uint8Array(frame.op.length);
    let key_offset = 0, value_offset = 0;
    for (let i = 0; i < frame.op.length; i++) {
      const key = Buffer.from(frame.keys.subarray(key_offset, key_offset + frame.key_lengths[i]!)).toString('latin1');
      const value = Buffer.from(frame.values.subarray(value_offset, value_offset + frame.value_lengths[i]!)).toString('latin1');
      key_offset += frame.key_lengths[i]!;
      value_offset += frame.value_lengths[i]!;
      if (refuse()) {
        status[i] = Status.OUT_OF_MEMORY;
      } else if (frame.op[i] === Op.PUT) {
        this.map.set(key, value);
        status[i] = Status.OK;
      } else if (frame.op[i] === Op.DELETE) {
        status[i] = this.map.delete(key) ? Status.OK : Status.NOT_FOUND;
      } else {
        throw new Error(`unexpected op ${frame.op[i]} in a move frame`);
      }
    }
    return status;
  }
}

// ---------------------------------------------------------------- one seed

const sorted = (map: Map<string, string>): [string, string][] => [...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

async function runSeed(seed: number, counts: Counts, trace: boolean): Promise<void> {
  const prng = new Prng(seed);
  const p = params(prng);
  const clock = new Clock();
  const receiver = new Receiver();
  const model = new Map<string, string>();
  let faults_on = true;
  let writes_done = false;
  const schedule = clock.schedule('resend delay over');
  // `stream` is assigned right below; the link reads its failure count lazily.
  let stream: MoveStream | null = null;
  const link = new SimLink(clock, prng, p, receiver, counts, () => stream?.failures ?? 0, () => faults_on, { zombie: ZOMBIE });
  // MoveStream reads only `up` and `send` of its PeerLink; SimLink provides exactly those.
  const shape: Pick<PeerLink, 'up' | 'send'> = link;
  const s = new MoveStream(DEST, () => shape as PeerLink, () => {}, schedule);
  stream = s;
  const log = (line: string): void => { if (trace) console.log(`[seed ${seed} t=${clock.now}] ${line}`); };
  if (trace) log(`params ${JSON.stringify(p)}`);

  let appended = 0;
  const append = (op: number, key: string, value: string): void => {
    const k = Buffer.from(key, 'latin1');
    const v = Buffer.from(value, 'latin1');
    s.tail.add(new OpRef().set(null, 0, op, 0, k, 0, k.length, v, 0, v.length));
    appended++;
  };

  // The scan: every entry the old owner holds for the moving keys, sent first.
  for (let i = 0; i < p.scan; i++) {
    const key = `k${prng.below(p.keys)}`;
    const value = `${key}=scan${i}`;
    model.set(key, value);
    append(Op.PUT, key, value);
  }
  s.flush();

  // Captured writes, applied to the model and appended in the same step (Migration.capture runs
  // on the worker's reply, before anything else can touch the key).
  let written = 0;
  const writeEvent = (): void => {
    const burst = 1 + prng.below(p.burst_max);
    for (let b = 0; b < burst && written < p.writes; b++, written++) {
      // A stream too far behind refuses writes of its keys (CLUSTER_BUSY): not applied here either.
      if (s.overloaded) continue;
      const key = `k${prng.below(p.keys)}`;
      if (prng.chance(p.delete_p)) {
        if (!model.has(key)) continue; // the old owner only captures deletes that removed something (status OK)
        model.delete(key);
        append(Op.DELETE, key, '');
        log(`DELETE ${key}`);
      } else {
        const value = `${key}=w${written}`;
        model.set(key, value);
        append(Op.PUT, key, value);
        log(`PUT ${key} ${value}`);
      }
    }
    // Migration flushes on setImmediate after a capture: writes of one turn share a frame.
    clock.after(0, 'flush after writes', () => s.flush());
    if (written < p.writes) clock.after(prng.below(p.write_gap_ms + 1), 'writes', writeEvent);
    else {
      writes_done = true;
      // Faults go on for a while after the last write, then stop, so the stream can drain.
      clock.after(prng.below(3 * p.request_timeout_ms + RESEND_DELAY_MS), 'faults off', () => {
        faults_on = false;
        link.heal();
      });
    }
  };
  clock.after(0, 'writes', writeEvent);

  // The network's own faults: connection drops (reconnect later) and link flaps (connection kept).
  const faultTick = (): void => {
    if (!faults_on) return;
    if (link.up && prng.chance(p.drop_p)) {
      link.drop();
      log(`connection ${link.connection.id} dropped`);
      clock.after(1 + prng.below(2 * RESEND_DELAY_MS), 'reconnect', () => {
        if (!link.up) { link.reconnect(); log(`connection ${link.connection.id} up`); }
      });
    } else if (link.up && prng.chance(p.flap_p)) {
      link.up = false;
      counts.flaps++;
      log('link shown down, connection kept');
      clock.after(1 + prng.below(2 * RESEND_DELAY_MS), 'link up again', () => {
        if (!link.up && link.connection.alive) link.up = true;
      });
    }
    clock.after(1 + prng.below(50), 'fault tick', faultTick);
  };
  clock.after(prng.below(20), 'fault tick', faultTick);

  // Migration's timer: flushes every stream while the move is on (it stops once drained).
  const driverTick = (): void => {
    s.flush();
    if (!(writes_done && s.idle)) clock.after(DRIVER_TICK_MS, 'driver tick', driverTick);
  };
  clock.after(DRIVER_TICK_MS, 'driver tick', driverTick);

  let acked_before = 0;
  const check = (where: string): void => {
    const fail = (what: string): never => assert.fail(`${what} (t=${clock.now} ms, after ${where})`);
    if (s.congested && s.frames_inflight < STREAM_FRAMES_INFLIGHT_MAX) counts.queue_backlog_seen++;
    if (s.frames_inflight > STREAM_FRAMES_INFLIGHT_MAX) fail(`frames_inflight ${s.frames_inflight} > ${STREAM_FRAMES_INFLIGHT_MAX}`);
    const at_link = link.currentInflight();
    if (at_link > STREAM_FRAMES_INFLIGHT_MAX) fail(`${at_link} frames of the current generation unanswered at the link > ${STREAM_FRAMES_INFLIGHT_MAX}`);
    if (s.keys_acked > s.keys_sent) fail(`keys_acked ${s.keys_acked} > keys_sent ${s.keys_sent}`);
    if (s.keys_acked < acked_before) fail(`keys_acked went back from ${acked_before} to ${s.keys_acked}`);
    if (s.keys_acked > appended) fail(`keys_acked ${s.keys_acked} > ops appended ${appended}`);
    acked_before = s.keys_acked;
    if (s.idle) {
      if (s.frames_inflight !== 0) fail(`idle with ${s.frames_inflight} frames unacknowledged`);
      if (s.keys_acked !== appended) fail(`idle with keys_acked ${s.keys_acked} != ops appended ${appended}`);
      assert.deepEqual(sorted(receiver.map), sorted(model), `idle, but the receiver differs from the sender (t=${clock.now} ms, after ${where})`);
    }
  };

  check('start');
  for (;;) {
    const event = clock.next();
    if (event === null) break;
    if (clock.now > SIM_TIME_MAX_MS) assert.fail(`not idle after ${SIM_TIME_MAX_MS} ms of simulated time (failures: ${s.failures}, last: ${s.failure})`);
    log(event.label);
    event.run();
    if (link.settled_since_drain) {
      link.settled_since_drain = false;
      await drain();
    }
    check(event.label);
  }
  // Nothing is left to happen: the move must be over, with the receiver at the sender's state.
  assert.ok(writes_done, 'every write was made');
  assert.ok(s.idle, `the stream never became idle (failures: ${s.failures}, last: ${s.failure})`);
  assert.deepEqual(sorted(receiver.map), sorted(model), 'the receiver differs from the sender');
  s.stop();
}

// ---------------------------------------------------------------- the test

describe('MoveStream under a simulated faulty network', () => {
  const { first, count, trace } = simSeeds(300);

  it(`converges to the sender's exact state for ${count} seed(s) from ${first}`, { timeout: Math.max(60_000, count * 200) }, async () => {
    const total = zeroCounts();
    const failed: string[] = [];
    const started = Date.now();
    for (let seed = first; seed < first + count; seed++) {
      try {
        await runSeed(seed, total, trace);
      } catch (error) {
        failed.push(`seed ${seed}: ${(error as Error).message.split('\n')[0]}\n  replay: PIKV_SIM_SEED=${seed} PIKV_SIM_TRACE=1 npm run test:sim`);
        if (failed.length === 1) console.error(error);
        if (failed.length >= 5) break;
      }
    }
    console.log(`move-stream sim: ${count} seed(s) from ${first} in ${Date.now() - started} ms; ${JSON.stringify(total)}`);
    assert.deepEqual(failed, [], `failing seeds:\n${failed.join('\n')}`);
    if (count >= 100) {
      // Guard against a simulator that quietly stopped injecting faults: over many seeds, each
      // kind must have happened.
      for (const [name, n] of Object.entries(total)) if (name !== 'zombie_frames_applied' || ZOMBIE) assert.ok(n > 0, `no ${name} in ${count} seeds: the simulator lost a fault`);
    }
  });
});

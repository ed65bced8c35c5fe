/**
 * A simulated peer connection for the seeded simulations (test/move-stream-sim.test.ts,
 * test/replication-sim.test.ts): the part of PeerLink a MoveStream uses (`up`, `send`), over a
 * network whose every delay and fault is drawn from the simulation's PRNG and ordered by its
 * clock.
 *
 * Each connection is FIFO, like a WebSocket: frames are applied at the receiver in the order they
 * were sent. Faults, each at a per-seed rate and only while `faulty()`:
 *   - frames held back past the request timeout (applied late, after the sender gave up on them);
 *   - answers delayed independently, so they come back out of order;
 *   - an answer lost after the frame WAS applied (the sender sees a timeout);
 *   - a frame lost before the receiver (never applied; the sender sees a timeout);
 *   - ops of a frame refused at the receiver (OUT_OF_MEMORY: the rest of the frame is applied);
 * and, driven by the simulation: the connection dropping (its unapplied frames are dropped, every
 * pending request is rejected) and a new connection, or the link shown down with its connection
 * still open (missed heartbeats).
 */
import type { ColumnBatch, ColumnResults } from '../../src/client/client.js';
import type { Prng } from '../../src/hashmap/fixtures/prng.js';
import type { Clock, SimEvent } from './sim-clock.js';

/** The link's per-seed fault rates. */
export interface LinkFaults {
  request_timeout_ms: number;
  delay_max_ms: number;
  /** Chance that a frame is held back by up to twice the request timeout. */
  long_delay_p: number;
  answer_delay_max_ms: number;
  answer_lost_p: number;
  frame_lost_p: number;
  /** Chance per op that the receiver refuses it (OUT_OF_MEMORY). */
  refuse_p: number;
}

/** What the network did; summed over all seeds to show every fault was exercised. */
export interface LinkCounts {
  frames_sent: number;
  frames_applied: number;
  frames_applied_again: number;
  frames_delayed_past_timeout: number;
  answers_lost: number;
  frames_lost: number;
  ops_refused: number;
  frames_dropped_with_connection: number;
  connection_drops: number;
  timeouts: number;
  late_answers: number;
  answers_out_of_order: number;
  /** Answers (OK or not) to frames sent before the stream's latest failure: MoveStream must ignore them. */
  answers_from_older_generation: number;
  /** Only with zombie delivery: frames of a dead connection applied after it died. */
  zombie_frames_applied: number;
}

export const zeroLinkCounts = (): LinkCounts => ({
  frames_sent: 0, frames_applied: 0, frames_applied_again: 0, frames_delayed_past_timeout: 0, answers_lost: 0, frames_lost: 0,
  ops_refused: 0, frames_dropped_with_connection: 0, connection_drops: 0, timeouts: 0, late_answers: 0, answers_out_of_order: 0,
  answers_from_older_generation: 0, zombie_frames_applied: 0,
});

/** The node at the other end: applies a frame's ops in order and returns one status per op. */
export interface FrameReceiver {
  /** `refuse()`: true when this op must be refused (a drawn OUT_OF_MEMORY fault). */
  apply(frame: ColumnBatch, refuse: () => boolean): Uint8Array;
}

export interface SimLinkOptions {
  /** Prefixes this link's event labels in traces ('' for a simulation with one link). */
  name?: string;
  /**
   * Outside the model the streams assume: frames of a dead connection are still applied at the
   * receiver when they arrive (the sender's side had already written them), instead of dropped.
   */
  zombie?: boolean;
}

interface Connection { id: number; alive: boolean; last_arrival: number; pending: Set<Request> }

interface Request {
  id: number;
  frame: ColumnBatch;
  /** Identity of the sender's batch (its op column's buffer), to count frames applied twice. */
  batch_id: ArrayBufferLike;
  connection: Connection;
  /** The stream's failure count when sent: frames sent since the last failure are the current generation. */
  generation: number;
  settled: boolean;
  timeout: SimEvent;
  resolve: (results: ColumnResults) => void;
  reject: (error: Error) => void;
}

export class SimLink {
  up = true;
  connection: Connection;
  /** Set when a send promise settles: the run loop then lets the stream's callbacks run (drain()). */
  settled_since_drain = false;
  private connections = 0;
  private requests = 0;
  private readonly outstanding = new Set<Request>();
  private readonly applied_batches = new WeakSet<ArrayBufferLike>();
  /** Id of the newest request answered so far, to count answers overtaking older ones. */
  private newest_answered = -1;
  private readonly name: string;
  private readonly zombie: boolean;

  constructor(
    private readonly clock: Clock,
    private readonly prng: Prng,
    private readonly p: LinkFaults,
    private readonly receiver: FrameReceiver,
    private readonly counts: LinkCounts,
    /** The sending stream's failure count (MoveStream.failures). */
    private readonly generation: () => number,
    private readonly faulty: () => boolean,
    options: SimLinkOptions = {},
  ) {
    this.name = options.name ?? '';
    this.zombie = options.zombie ?? false;
    this.connection = this.connect();
  }

  /** Frames of the current generation (sent since the last failure) still unanswered at the link. */
  currentInflight(): number {
    let n = 0;
    for (const request of this.outstanding) if (request.generation === this.generation()) n++;
    return n;
  }

  send(batch: ColumnBatch): Promise<ColumnResults> {
    if (!this.up) return Promise.reject(new Error('NODE_DOWN (sim)'));
    // The wire copies the frame now; the sender may append to its batch later.
    const frame: ColumnBatch = {
      op: Uint8Array.from(batch.op), key_lengths: Uint32Array.from(batch.key_lengths), value_lengths: Uint32Array.from(batch.value_lengths),
      keys: Uint8Array.from(batch.keys), values: Uint8Array.from(batch.values),
    };
    if (batch.ring_epoch !== undefined) frame.ring_epoch = batch.ring_epoch;
    if (batch.migrate !== undefined) frame.migrate = batch.migrate;
    if (batch.commit_id !== undefined) frame.commit_id = batch.commit_id;
    if (batch.commit_watermark !== undefined) frame.commit_watermark = batch.commit_watermark;
    const connection = this.connection;
    this.counts.frames_sent++;
    return new Promise<ColumnResults>((resolve, reject) => {
      const id = this.requests++;
      const request: Request = {
        id, frame, batch_id: batch.op.buffer, connection, generation: this.generation(), settled: false, resolve, reject,
        timeout: this.clock.after(this.p.request_timeout_ms, `${this.name}timeout #${id}`, () => {
          this.counts.timeouts++;
          this.settle(request, new Error(`TIMEOUT #${id} (sim)`));
        }),
      };
      this.outstanding.add(request);
      connection.pending.add(request);
      const faulty = this.faulty();
      let delay = this.prng.below(this.p.delay_max_ms + 1);
      if (faulty && this.prng.chance(this.p.long_delay_p)) {
        delay += this.prng.below(2 * this.p.request_timeout_ms);
        if (delay >= this.p.request_timeout_ms) this.counts.frames_delayed_past_timeout++;
      }
      // FIFO per connection: a frame never overtakes one sent before it on the same connection.
      const arrival = Math.max(connection.last_arrival, this.clock.now + delay);
      connection.last_arrival = arrival;
      const lost = faulty && this.prng.chance(this.p.frame_lost_p);
      this.clock.after(arrival - this.clock.now, `${this.name}deliver #${id} (${frame.op.length} ops) on connection ${connection.id}`, () => this.deliver(request, lost));
    });
  }

  /** The connection breaks: frames not yet applied are gone, and every request on it fails at once. */
  drop(): void {
    const dead = this.connection;
    dead.alive = false;
    this.counts.connection_drops++;
    for (const request of [...dead.pending]) this.settle(request, new Error(`connection ${dead.id} lost (sim)`));
    this.up = false;
  }

  /** A new connection (a reconnect is never the old FIFO). */
  reconnect(): void {
    this.connection = this.connect();
    this.up = true;
  }

  /** Faults are over: the link comes back, on a new connection if the old one broke. */
  heal(): void {
    if (this.up) return;
    if (!this.connection.alive) this.reconnect();
    else this.up = true;
  }

  private connect(): Connection {
    return { id: this.connections++, alive: true, last_arrival: 0, pending: new Set() };
  }

  private deliver(request: Request, lost: boolean): void {
    if (!request.connection.alive) {
      if (!this.zombie) {
        this.counts.frames_dropped_with_connection++;
        return;
      }
      // Outside the model the design assumes: the receiver still reads a frame the sender's
      // side of the dead connection had already written (its answer is lost with the socket).
      this.receiver.apply(request.frame, () => false);
      this.counts.zombie_frames_applied++;
      return;
    }
    if (lost) {
      this.counts.frames_lost++;
      return; // never applied; the sender's timeout fires
    }
    const status = this.receiver.apply(request.frame, () => {
      const refused = this.faulty() && this.prng.chance(this.p.refuse_p);
      if (refused) this.counts.ops_refused++;
      return refused;
    });
    this.counts.frames_applied++;
    if (this.applied_batches.has(request.batch_id)) this.counts.frames_applied_again++;
    this.applied_batches.add(request.batch_id);
    if (this.faulty() && this.prng.chance(this.p.answer_lost_p)) {
      this.counts.answers_lost++;
      return; // applied, but the sender never hears of it
    }
    const results: ColumnResults = { status, value_lengths: new Uint32Array(status.length), values: new Uint8Array(0) };
    this.clock.after(this.prng.below(this.p.answer_delay_max_ms + 1), `${this.name}answer #${request.id}`, () => {
      if (!request.connection.alive) return; // the answer died with its connection
      if (request.settled) {
        this.counts.late_answers++; // the client already failed this request: it drops the answer
        return;
      }
      if (request.id < this.newest_answered) this.counts.answers_out_of_order++;
      this.newest_answered = Math.max(this.newest_answered, request.id);
      if (request.generation !== this.generation()) this.counts.answers_from_older_generation++;
      this.settle(request, results);
    });
  }

  private settle(request: Request, outcome: ColumnResults | Error): void {
    if (request.settled) return;
    request.settled = true;
    request.timeout.cancelled = true;
    this.outstanding.delete(request);
    request.connection.pending.delete(request);
    this.settled_since_drain = true;
    if (outcome instanceof Error) request.reject(outcome);
    else request.resolve(outcome);
  }
}

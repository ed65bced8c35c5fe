/**
 * Counters of the data path, kept cheap enough to leave on: one increment per op in a flat
 * Float64Array (op slot × status slot × origin), and one histogram observation per request,
 * both done once when the request is answered (Dispatcher.submit), never per op as it is
 * routed. No labels are built, no Map is touched and nothing is allocated on that path; the
 * names are attached only when /metrics is rendered (render-metrics.ts).
 *
 * Measured before choosing (shared machine, Node 20, 2e6 ops in batches of 64): this loop and
 * one observation cost ~560 ns per batch; prom-client's labelled Counter.inc() costs ~170 ns
 * per call (~1,350 ns per batch for one inc plus one observe), so prom-client would need the
 * same per-op loop first and then cost more. docs/OBSERVABILITY.md has the numbers.
 *
 * `--metrics off` leaves this object out of the dispatcher entirely, so the cost of the
 * metrics can be measured against a node without them (docs/OBSERVABILITY.md, "Cost").
 */
import { Op } from '../../protocol/constants.js';
import { FixedHistogram, LATENCY_BOUNDS_S } from './histogram.js';

// GET, PUT and DELETE are the data ops, numbered 1..3 (counted as one range below).
if (Op.PUT !== Op.GET + 1 || Op.DELETE !== Op.GET + 2) throw new Error('data op codes must be 1..3');

/** Ops 0..14 get their own slot; anything above (240, the test hook) shares the last. */
export const OP_SLOTS = 16;
/** Status bytes 0..30 get their own slot; anything above shares the last. */
export const STATUS_SLOTS = 32;
/** Who sent the request: a client, or a peer node forwarding or replicating. */
export const ORIGINS = ['client', 'peer'] as const;
export type Origin = (typeof ORIGINS)[number];

export class RequestMetrics {
  /** ops[(origin · OP_SLOTS + op_slot) · STATUS_SLOTS + status_slot] */
  readonly ops = new Float64Array(ORIGINS.length * OP_SLOTS * STATUS_SLOTS);
  /** Client requests' time from submit to answer, in seconds. */
  readonly latency = new FixedHistogram(LATENCY_BOUNDS_S);
  /** Client requests answered (a request is a batch of any number of ops). */
  requests = 0;
  /** GET, PUT and DELETE ops answered to clients, any status: what the dashboard's ops/s is made of (not pings or status reads). */
  client_ops = 0;

  /** One answered request: its ops by type and status, and its latency if a client sent it. */
  record(op: Uint8Array, status: Uint8Array, peer: boolean, elapsed_s: number): void {
    const ops = this.ops;
    const base = peer ? OP_SLOTS * STATUS_SLOTS : 0;
    const count = status.length;
    let data_ops = 0;
    for (let i = 0; i < count; i++) {
      const op_code = op[i]!;
      if (op_code >= Op.GET && op_code <= Op.DELETE) data_ops++;
      const status_code = status[i]!;
      const op_slot = op_code < OP_SLOTS ? op_code : OP_SLOTS - 1;
      const status_slot = status_code < STATUS_SLOTS ? status_code : STATUS_SLOTS - 1;
      ops[base + op_slot * STATUS_SLOTS + status_slot]! += 1;
    }
    if (peer) return;
    this.requests += 1;
    this.client_ops += data_ops;
    this.latency.observe(elapsed_s);
  }

  /** Ops answered with `op_slot` and `status_slot` for `origin`. */
  opsOf(origin: Origin, op_slot: number, status_slot: number): number {
    return this.ops[(ORIGINS.indexOf(origin) * OP_SLOTS + op_slot) * STATUS_SLOTS + status_slot]!;
  }
}

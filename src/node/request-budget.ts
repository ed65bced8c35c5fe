/**
 * One client connection's share of the node's budgets, shared by both front ends: the
 * WebSocket connection (connection.ts) and the RESP connection (resp/resp-connection.ts).
 *
 * It counts the connection's unanswered requests, the request bytes they hold against the
 * node's node_inflight_bytes_max, and the response bytes on their way: bytes the socket has
 * not written yet (the caller passes them in), values already found for unanswered requests
 * (counted by their real sizes as workers find them), and, for GETs not yet executed, an
 * estimate learnt from this connection's recent answers. The first request is always
 * admitted, so one legal response always fits.
 *
 * When the socket goes, cancelAll() drops everything at once: requests not yet executed never
 * run, and the connection's share of the node's budgets is released now, not when the
 * workers finish.
 */
import type { PendingRequest, ResponseBudget } from '../engine/pending-request.js';

/** What a budget needs from the node: its in-flight byte count and the resume hook. */
export interface BudgetHost {
  inflight_bytes: number;
  overBudget(): boolean;
  /** Called when requests finish or are dropped, so paused connections may be read again. */
  onRequestDone(): void;
}

/** What the server needs of any client connection, WebSocket or RESP. */
/** How a connection reached the node: /metrics counts open connections by it. */
export type ConnectionProtocol = 'ws' | 'http' | 'resp' | 'peer';

export interface ServedConnection {
  readonly protocol: ConnectionProtocol;
  readonly requests_inflight: number;
  readonly is_paused: boolean;
  /** Resumes reading if this connection is paused and no limit holds it back any more. */
  maybeResume(): void;
  /** Called about once a second: closes the connection if it broke a time limit. */
  checkTimers(now_ms: number): void;
  /** Graceful stop: tell the client the node is going away, once its answers are out. */
  closeForShutdown(): void;
  /** After the shutdown grace: tear the socket down. */
  destroy(): void;
}

/** The GET size estimate falls at most this fast (a shift of 2 quarters it per answer). */
const ESTIMATE_DECAY_SHIFT = 2;
/**
 * The estimate never falls below this, so a run of misses cannot open the gate to thousands of
 * GETs of unknown size; 16 requests of 1,024 GETs still fit the default 16 MiB budget.
 */
const GET_BYTES_ESTIMATE_MIN = 1024;

export class RequestBudget implements ResponseBudget {
  requests_inflight = 0;
  /** Values found so far for this connection's unanswered requests (PendingRequest.settleValue adds). */
  response_bytes_found = 0;
  readonly requests_inflight_max: number;
  readonly send_bytes_max: number;
  /**
   * Expected bytes of one GET's value, learnt from answers: starts at value_bytes_max so that a
   * fresh connection cannot pipeline many large GETs before the first answer teaches it.
   */
  private get_bytes_estimate: number;
  /** GETs in unanswered requests, counted at get_bytes_estimate each. */
  private gets_inflight = 0;
  private readonly inflight = new Set<PendingRequest>();
  /** When the unwritten bytes last went past the slow-client limit; 0 while under it. */
  private over_send_limit_since_ms = 0;
  private readonly host: BudgetHost;

  constructor(host: BudgetHost, limits: { requests_inflight_max: number; send_bytes_max: number; value_bytes_max: number }) {
    this.host = host;
    this.requests_inflight_max = limits.requests_inflight_max;
    this.send_bytes_max = limits.send_bytes_max;
    this.get_bytes_estimate = limits.value_bytes_max;
  }

  /** Counts a request before dispatcher.submit, which may answer it at once (finish() undoes this). */
  open(request_bytes: number): void {
    this.requests_inflight++;
    this.host.inflight_bytes += request_bytes;
  }

  /**
   * After submit: a request not answered inside it is tracked until finish() or cancelAll().
   * Settled is not enough to skip it: a settled request may still be held for its copies or be
   * decoded for a plain reader, and a 1 KiB stored value can decode to 1 MiB.
   */
  track(request: PendingRequest, gets: number): void {
    if (request.answered) return;
    request.gets = gets;
    this.gets_inflight += gets;
    request.budget = this;
    this.response_bytes_found += request.value_bytes_found;
    this.inflight.add(request);
  }

  /**
   * A request is answered: releases its share. False when it was cancelled (the client is
   * gone and cancelAll() already released it): then nothing may be sent for it.
   */
  finish(request: PendingRequest): boolean {
    request.answered = true;
    if (request.cancelled) return false;
    this.inflight.delete(request);
    this.requests_inflight--;
    this.host.inflight_bytes -= request.frame_bytes;
    if (request.budget !== null) this.response_bytes_found -= request.value_bytes_found;
    request.budget = null;
    this.learnGetSize(request);
    return true;
  }

  /** The client is gone: cancel what is running and give back its share of the node's budgets. */
  cancelAll(): void {
    for (const request of this.inflight) {
      request.cancel();
      this.host.inflight_bytes -= request.frame_bytes;
    }
    this.inflight.clear();
    this.requests_inflight = 0;
    this.gets_inflight = 0;
    if (this.response_bytes_found !== 0) throw new Error(`connection gone with ${this.response_bytes_found} response bytes still counted`);
    this.host.onRequestDone();
  }

  /** True while the connection must not be read: too many requests or response bytes on their way, or the node is full. */
  mustPause(unwritten_bytes: number): boolean {
    return (
      this.requests_inflight >= this.requests_inflight_max ||
      (this.requests_inflight > 0 && this.responseBytesOnTheirWay(unwritten_bytes) >= this.send_bytes_max) ||
      unwritten_bytes >= this.send_bytes_max ||
      this.host.overBudget()
    );
  }

  /**
   * True once the client has left more than max(send limit, response_bytes_max) unwritten for
   * slow_client_timeout_ms, as Redis's client-output-buffer-limit. One legal response (up to
   * response_bytes_max) being written never makes a client slow by itself.
   */
  isSlow(unwritten_bytes: number, now_ms: number, response_bytes_max: number, slow_client_timeout_ms: number): boolean {
    if (unwritten_bytes < Math.max(this.send_bytes_max, response_bytes_max)) {
      this.over_send_limit_since_ms = 0;
      return false;
    }
    if (this.over_send_limit_since_ms === 0) this.over_send_limit_since_ms = now_ms;
    return now_ms - this.over_send_limit_since_ms >= slow_client_timeout_ms;
  }

  /** Unwritten bytes, values found for unanswered requests, and the estimate for GETs not yet run. */
  private responseBytesOnTheirWay(unwritten_bytes: number): number {
    return unwritten_bytes + this.response_bytes_found + this.gets_inflight * this.get_bytes_estimate;
  }

  /**
   * Updates the GET size estimate from an answered request: up at once to its largest value,
   * down slowly, so a run of large values is never under-counted for long.
   */
  private learnGetSize(request: PendingRequest): void {
    this.gets_inflight -= request.gets;
    if (this.gets_inflight < 0) throw new Error(`connection: ${this.gets_inflight} GETs in flight`);
    if (request.gets === 0) return;
    let largest = 0;
    for (let i = 0; i < request.op_count; i++) largest = Math.max(largest, request.value_length[i]!);
    this.get_bytes_estimate = Math.max(largest, GET_BYTES_ESTIMATE_MIN, this.get_bytes_estimate >>> ESTIMATE_DECAY_SHIFT);
  }
}

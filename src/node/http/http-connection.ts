/**
 * One HTTP client socket (keep-alive: any number of requests, one after another, or pipelined):
 * runs its requests (http-exchange.ts) under the same RequestBudget as a WebSocket or RESP
 * connection, and applies the same limits the same way.
 *
 * - A request is started only while the budget allows: fewer than
 *   connection_requests_inflight_max unanswered, response bytes on their way under
 *   connection_send_bytes_max, and the node under node_inflight_bytes_max. Otherwise it waits
 *   here, in order, and the socket is not read (socket-flow.ts) until answers go out; TCP flow
 *   control then slows the client. Node writes the answers in request order.
 * - A client that leaves answers over connection_send_bytes_max unread, reading nothing of
 *   them for slow_client_timeout_ms, is closed (SLOW_CLIENT), as is one that keeps more than
 *   the largest legal answer unread that long (the budget's isSlow); one whose body takes
 *   longer than frame_timeout_ms gets 408 and is closed (slowloris).
 * - When the socket goes, its requests are cancelled and its share of the budgets released.
 *
 * Node's own HTTP server enforces the rest: header size (431), the time to send a request's
 * headers (handshake_timeout_ms), and the keep-alive idle time (http_keep_alive_timeout_ms).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { PendingRequest } from '../../engine/pending-request.js';
import type { RequestBatch, WireCodec } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { ServerConfig } from '../config.js';
import type { Dispatcher } from '../dispatcher.js';
import { RequestBudget, type BudgetHost, type ServedConnection } from '../request-budget.js';
import type { ExchangeHost, HttpExchange } from './http-exchange.js';
import { codeReply, sendError } from './replies.js';
import type { GuardSettings } from './request-guard.js';
import type { Observe } from '../observe/observe.js';
import { lingerOnClose, pauseHttpSocket, resumeHttpSocket } from './socket-flow.js';

/** Most bytes of JSON per op beside its value: a per-op error with its message. */
const JSON_OP_BYTES_MAX = 256;

/**
 * The largest legal answer: a JSON batch answer carries up to response_bytes_max of values,
 * at most doubled by JSON escaping (base64 is 4/3), plus each op's code and message. One
 * legal answer being written never makes a client slow by itself.
 */
function jsonAnswerBytesMax(config: ServerConfig): number {
  return 2 * config.response_bytes_max + config.batch_ops_max * JSON_OP_BYTES_MAX;
}

/** A connection closed after an internal error that has not written its answer by then is torn down. */
const CLOSE_GRACE_MS = 1_000;
/** How long a connection closed with a body unread keeps reading and dropping it (nginx's lingering_time is 30 s). */
const LINGER_MS = 5_000;

/** What a connection needs from the HTTP front end and the node. */
export interface HttpConnectionHost extends BudgetHost {
  readonly config: ServerConfig;
  readonly codec: WireCodec;
  readonly dispatcher: Dispatcher;
  readonly guard: GuardSettings;
  readonly shutting_down: boolean;
  readonly observe: Observe;
  onPaused(connection: ServedConnection): void;
  onClosed(connection: HttpConnection): void;
  log(message: string): void;
  logLimited(message: string): void;
}

export class HttpConnection implements ServedConnection, ExchangeHost {
  readonly protocol = 'http';
  readonly address: string;
  private readonly socket: Socket;
  private readonly host: HttpConnectionHost;
  private readonly budget: RequestBudget;
  /** Requests that arrived while the budget was spent, oldest first; started in this order. */
  private readonly held: HttpExchange[] = [];
  /** Started requests whose answer has not finished (reading a body, running, or being written). */
  private readonly open = new Set<HttpExchange>();
  /**
   * Answer bytes handed to Node and not yet written to the socket: an answer counts until its
   * response emits 'finish', which Node does once the socket has taken its last byte.
   */
  private unwritten_bytes = 0;
  private paused = false;
  /** Inside maybeResume's loop: an answer given inside it must not start another loop. */
  private draining = false;
  private gone = false;
  /** When answers over the send limit stopped moving (stalled()); 0 while they move or are under it. */
  private stalled_since_ms = 0;
  /** Answer bytes not yet taken by the kernel at the last check, to see whether the client reads. */
  private stall_pending_bytes = 0;
  /** Closing after an answer (lingerAfterAnswer, internalError): nothing more is served. */
  private closing = false;
  private next_request_id = 1;

  constructor(socket: Socket, host: HttpConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.address = socket.remoteAddress ?? '?';
    this.budget = new RequestBudget(host, {
      requests_inflight_max: host.config.connection_requests_inflight_max,
      send_bytes_max: host.config.connection_send_bytes_max,
      value_bytes_max: host.config.value_bytes_max,
    });
    socket.once('close', () => this.onGone());
  }

  get config(): ServerConfig {
    return this.host.config;
  }

  get codec(): WireCodec {
    return this.host.codec;
  }

  get guard(): GuardSettings {
    return this.host.guard;
  }

  get shutting_down(): boolean {
    return this.host.shutting_down;
  }

  get observe(): Observe {
    return this.host.observe;
  }

  get requests_inflight(): number {
    return this.budget.requests_inflight;
  }

  get is_paused(): boolean {
    return this.paused;
  }

  /** True while an answer is being written: an error found by Node's parser must not be written into it. */
  get answering(): boolean {
    for (const exchange of this.open) if (exchange.res.headersSent && !exchange.res.writableFinished) return true;
    return false;
  }

  /** A new request on this socket: started now, or held until the budget allows. */
  accept(exchange: HttpExchange): void {
    // Bytes after a refused body are not requests worth answering: the socket closes soon.
    if (this.gone || this.closing) return;
    if (this.held.length > 0 || this.mustPause()) {
      this.held.push(exchange);
      this.pause();
      return;
    }
    this.begin(exchange);
  }

  private begin(exchange: HttpExchange): void {
    this.open.add(exchange);
    exchange.res.once('close', () => this.open.delete(exchange));
    try {
      exchange.start();
    } catch (error) {
      this.internalError(error, exchange.res);
    }
  }

  /**
   * A bug, not bad input (see Connection.handleFrame): the node holds every key in memory, so
   * one bad request must not take the process down. Answer 500 if nothing was sent yet, log,
   * and drop this client (its request may be half routed); the others are served on.
   */
  internalError(error: unknown, res: ServerResponse): void {
    this.host.log(`internal error on an HTTP request from ${this.address}; closing its connection: ${(error as Error).stack ?? String(error)}`);
    this.closing = true; // nothing more is served on it
    this.held.length = 0;
    if (res.headersSent) {
      this.socket.destroy();
      return;
    }
    // Node closes the socket once this answer is written (Connection: close); if it never is, the timer does.
    sendError(res, { ...codeReply(ErrorCode.INTERNAL, 'internal server error; see the server log'), close: true });
    const socket = this.socket;
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  // ---- ExchangeHost ----

  nextRequestId(): number {
    return this.next_request_id++;
  }

  logLimited(message: string): void {
    this.host.logLimited(message);
  }

  submit(batch: RequestBatch, bytes: number, gets: number, res: ServerResponse, answered: (request: PendingRequest) => void): void {
    if (this.gone) return;
    this.budget.open(bytes);
    let request: PendingRequest;
    try {
      request = this.host.dispatcher.submit(batch, bytes, (done) => this.onAnswered(done, res, answered));
    } catch (error) {
      this.host.inflight_bytes -= bytes; // counted by open(), never tracked, so cancelAll() would miss it
      this.internalError(error, res);
      return;
    }
    // A request answered inside submit() (fast path, health) has already been released by onAnswered().
    this.budget.track(request, gets);
    if (this.mustPause()) this.pause();
  }

  lingerAfterAnswer(): void {
    if (this.closing) return;
    this.closing = true;
    this.held.length = 0;
    lingerOnClose(this.socket, LINGER_MS);
  }

  sent(res: ServerResponse, bytes: number): void {
    this.unwritten_bytes += bytes;
    let counted = true;
    const written = (): void => {
      if (!counted) return;
      counted = false;
      this.unwritten_bytes -= bytes;
      this.maybeResume();
    };
    res.once('finish', written);
    res.once('close', written);
  }

  private onAnswered(request: PendingRequest, res: ServerResponse, answered: (request: PendingRequest) => void): void {
    // A cancelled request's share was released when the socket went; its answer goes nowhere.
    if (!this.budget.finish(request)) return;
    // Runs inside the dispatcher's completion of the request: a throw must not get into it.
    try {
      answered(request);
    } catch (error) {
      this.internalError(error, res);
    }
    this.host.onRequestDone();
    this.maybeResume();
  }

  // ---- flow ----

  private mustPause(): boolean {
    return this.budget.mustPause(this.unwritten_bytes);
  }

  private pause(): void {
    if (this.gone) return;
    // Set again even when already paused: Node resumes the socket on its own when writes drain.
    pauseHttpSocket(this.socket);
    if (this.paused) return;
    this.paused = true;
    this.host.onPaused(this);
  }

  maybeResume(): void {
    if (this.gone || !this.paused || this.draining) return;
    this.draining = true;
    while (this.held.length > 0 && !this.gone && !this.mustPause()) this.begin(this.held.shift()!);
    this.draining = false;
    if (this.gone || this.held.length > 0 || this.mustPause()) return;
    this.paused = false;
    resumeHttpSocket(this.socket);
  }

  checkTimers(now_ms: number): void {
    if (this.gone) return;
    const config = this.host.config;
    if (this.budget.isSlow(this.unwritten_bytes, now_ms, jsonAnswerBytesMax(config), config.slow_client_timeout_ms)) {
      this.host.logLimited(`closing an HTTP connection from ${this.address} (SLOW_CLIENT): its unread answers stayed over ${this.budget.send_bytes_max} bytes for ${config.slow_client_timeout_ms} ms`);
      this.socket.destroy();
      return;
    }
    if (this.stalled(now_ms)) {
      this.host.logLimited(`closing an HTTP connection from ${this.address} (SLOW_CLIENT): it read nothing of ${this.unwritten_bytes} bytes of answers for ${config.slow_client_timeout_ms} ms`);
      this.socket.destroy();
      return;
    }
    for (const exchange of this.open) {
      const since_ms = exchange.body_since_ms;
      if (since_ms !== 0 && now_ms - since_ms >= config.frame_timeout_ms) exchange.timeOut();
    }
  }

  /**
   * True once the client has read nothing of answers over connection_send_bytes_max for
   * slow_client_timeout_ms. The budget stops admitting its requests at that size, so isSlow's
   * larger threshold is never reached by an HTTP client that simply stops reading; without
   * this it would hold its socket and answer forever (HTTP's keep-alive timeout only runs
   * between requests). A client that reads, however slowly, is never cut by it.
   */
  private stalled(now_ms: number): boolean {
    const pending_bytes = this.unwritten_bytes + this.socket.writableLength;
    if (this.unwritten_bytes < this.budget.send_bytes_max || pending_bytes < this.stall_pending_bytes) {
      this.stall_pending_bytes = pending_bytes;
      this.stalled_since_ms = 0;
      return false;
    }
    this.stall_pending_bytes = pending_bytes;
    if (this.stalled_since_ms === 0) this.stalled_since_ms = now_ms;
    return now_ms - this.stalled_since_ms >= this.host.config.slow_client_timeout_ms;
  }

  /** Every request started has been answered (or given up on) by now; held ones are answered SHUTTING_DOWN. */
  closeForShutdown(): void {
    while (this.held.length > 0 && !this.gone) this.begin(this.held.shift()!);
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The socket is gone: drop held requests, stop reading bodies, cancel what runs, release its budgets. */
  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.held.length = 0;
    for (const exchange of this.open) exchange.abandon();
    this.open.clear();
    this.budget.cancelAll();
    this.host.onClosed(this);
  }
}

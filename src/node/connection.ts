/**
 * One client's WebSocket: reads request frames, answers them, and applies backpressure.
 *
 * A connection stops being read (ws.pause) while it has too many requests in flight, too many
 * response bytes on their way to the client, or while the whole node is over its in-flight
 * byte budget; it is read again once those drop. Nothing is ever buffered without bound.
 *
 * Response bytes on their way are: what ws has not written yet (bufferedAmount), values
 * already found for unanswered requests, and an estimate for GETs not yet executed; that
 * accounting is the RequestBudget (request-budget.ts) the RESP front end shares. A client
 * that stays past the limit for slow_client_timeout_ms is closed, as Redis's
 * client-output-buffer-limit does.
 *
 * When the socket goes, everything it owned goes with it at once: frames not yet read are
 * dropped, its requests are cancelled (ops still queued for a partition never execute; ops
 * inside a worker finish and their answers are discarded), and its share of the node's
 * budgets is released.
 *
 * A connection authenticated as a cluster peer uses peer_requests_inflight_max,
 * peer_send_bytes_max and its own in-flight byte budget (peer_inflight_bytes_max) instead of
 * the connection_* limits and the node's budget, and is never closed as slow, idle or for
 * frame time: it carries a whole node's forwarded traffic, and its heartbeat decides whether
 * it is healthy. A peer's control channel takes only control ops, in small frames, under
 * limits of its own (peer-limits.ts).
 *
 * Bad frames are answered with an error and the connection stays open, unless it keeps
 * sending them faster than connection_errors_per_second_max, when it is closed with 1008.
 */
import type { WebSocket } from 'ws';
import { ErrorCode, type ErrorCodeName } from '../protocol/errors.js';
import { RequestDecodeError, type WireCodec } from '../protocol/codec.js';
import { responseFrameBytes, writeResponseHead } from '../protocol/response-writer.js';
import type { ServerConfig } from './config.js';
import type { Dispatcher, SubmitOptions } from './dispatcher.js';
import { POOLED_FRAME_BYTES_MIN, type FramePool } from './frame-pool.js';
import type { PendingRequest } from '../engine/pending-request.js';
import { Op } from '../protocol/constants.js';
import { RequestBudget, type BudgetHost, type ConnectionProtocol, type ServedConnection } from './request-budget.js';
import type { PeerChannel } from '../protocol/auth.js';
import { CONTROL_FRAME_BYTES_MAX, CONTROL_INFLIGHT_BYTES_MAX, CONTROL_OPS, CONTROL_REQUESTS_INFLIGHT_MAX, CONTROL_SEND_BYTES_MAX, PeerBudgetHost } from './peer-limits.js';

/** What a connection needs from the node it belongs to. */
export interface ConnectionHost extends BudgetHost {
  readonly config: ServerConfig;
  readonly codec: WireCodec;
  readonly dispatcher: Dispatcher;
  /** Large response frames, lent to the socket and given back by ws.send's callback. */
  readonly frame_pool: FramePool;
  readonly shutting_down: boolean;
  onPaused(connection: ServedConnection): void;
  log(message: string): void;
  /** False once a newer connection from the same peer id on the same channel was opened (see Connection.fenced). */
  isLatestPeerConnection(peer_id: string, channel: PeerChannel, sequence: number): boolean;
}

/** WebSocket close codes (RFC 6455). */
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_INTERNAL_ERROR = 1011;
const SEND_OPTIONS = { binary: true } as const;
/** respond() copies every value into the response frame before it returns (Dispatcher's kept fast-path buffer relies on it). */
const CLIENT_SUBMIT: SubmitOptions = { values_copied_in_done: true };
const PEER_SUBMIT: SubmitOptions = { peer: true, values_copied_in_done: true };
/** A closed connection that has not finished its closing handshake by then is torn down. */
const CLOSE_GRACE_MS = 1_000;

/** What ws keeps of a frame it has not fully received (ws 8 Receiver internals; read only). */
interface ReceiverInternals {
  _bufferedBytes?: number;
  _fragments?: unknown[];
}

export class Connection implements ServedConnection {
  readonly protocol: ConnectionProtocol;
  readonly ws: WebSocket;
  /** Remote IP address, for the per-address limit. */
  readonly address: string;
  /**
   * Requests in flight, response bytes on their way, and the node's in-flight bytes. Its limits
   * are connection_* for clients, peer_* for peers: a peer link carries all the forwarded ops
   * of the other node's clients, so client-sized limits would throttle the whole cluster to
   * one client's share.
   */
  private readonly budget: RequestBudget;
  private gone = false;
  private last_activity_ms = Date.now();
  /** When the frame now being received began; 0 when no partial frame is held. */
  private partial_frame_since_ms = 0;
  /** Keepalive the client asked for (x-pikv-keepalive-ms); 0 = none. */
  private readonly keepalive_ms: number;
  private keepalive_timer: NodeJS.Timeout | null = null;
  private pong_pending = false;
  private paused = false;
  private errors_this_second = 0;
  private error_window_start_ms = 0;
  private readonly host: ConnectionHost;
  private readonly onDone = (request: PendingRequest): void => this.respond(request);
  /**
   * Completion of a send. An error means the socket failed: the client is gone, and nothing
   * it left queued may run (resuming here used to run thousands of held GETs for a dead socket).
   */
  private readonly onDrained = (error?: Error): void => {
    if (error !== undefined && error !== null) {
      this.onGone();
      return;
    }
    this.maybeResume();
  };
  /**
   * Frames ws delivered after ws.pause(). It stops reading the socket, but still emits every
   * frame of the chunk it has already read: that can be hundreds of small requests. Answering
   * them at once let a client that never reads make the node queue far more than
   * connection_send_bytes_max (12 requests of 16 GETs of an 8 MiB value, sent in one write,
   * queued 1.5 GiB of responses). They wait here, in order, until the connection may be read
   * again; at most the rest of one socket read, so this stays bounded.
   */
  private readonly held: { frame: Buffer; is_binary: boolean }[] = [];
  private draining = false;

  /** Authenticated with the cluster secret (src/protocol/auth.ts): may send cluster and data-move ops. */
  private readonly peer: boolean;
  /** The id the peer proved in its handshake, and this connection's place among its connections. */
  private readonly peer_id: string;
  /** A peer's data or control connection (peer-limits.ts); 'data' for clients, where it means nothing. */
  private readonly peer_channel: PeerChannel;
  private readonly peer_sequence: number;
  private fenced_logged = false;

  constructor(ws: WebSocket, host: ConnectionHost, options: { peer: boolean; address: string; keepalive_ms: number; peer_id?: string; peer_channel?: PeerChannel; peer_sequence?: number }) {
    this.ws = ws;
    this.peer = options.peer;
    this.protocol = options.peer ? 'peer' : 'ws';
    this.peer_id = options.peer_id ?? '';
    this.peer_channel = options.peer_channel ?? 'data';
    this.peer_sequence = options.peer_sequence ?? 0;
    this.budget = new RequestBudget(...budgetFor(host, options.peer, this.peer_channel));
    this.address = options.address;
    this.keepalive_ms = options.keepalive_ms;
    this.host = host;
    ws.on('message', (data: Buffer, is_binary: boolean) => this.onMessage(data, is_binary));
    // ws reports protocol violations (bad opcodes, oversized frames) here and closes the socket itself.
    ws.on('error', (error: Error & { code?: string }) => host.log(`connection error: ${error.code ?? ''} ${error.message}`));
    ws.on('close', () => this.onGone());
    if (this.keepalive_ms > 0) {
      ws.on('pong', () => {
        this.pong_pending = false;
      });
      this.keepalive_timer = setInterval(() => this.keepalive(), this.keepalive_ms);
      this.keepalive_timer.unref();
    }
    // After ws's own 'data' listener has parsed the chunk: is part of a frame left over?
    const socket = (ws as unknown as { _socket?: { on(event: 'data', listener: () => void): void } })._socket;
    socket?.on('data', () => this.onSocketData());
  }

  /**
   * A peer connection that is no longer its peer's newest one applies no data op. A peer link
   * opens a new connection only after giving up on the old one (a reset after a timeout), so
   * any data still arriving on the old one is a frame its sender no longer waits for: a
   * forwarded write or a stream frame that, applied now, could put an old value over one
   * written since through the new connection or another node (docs/MEMBERSHIP.md).
   */
  private fenced(): boolean {
    if (!this.peer || this.peer_id === '' || this.host.isLatestPeerConnection(this.peer_id, this.peer_channel, this.peer_sequence)) return false;
    if (!this.fenced_logged) {
      this.fenced_logged = true;
      this.host.log(`refusing data from an old ${this.peer_channel} connection of peer "${this.peer_id}" (a newer one is open)`);
    }
    return true;
  }

  /** True once the socket has closed or failed; nothing more is read, run or sent for it. */
  get is_gone(): boolean {
    return this.gone;
  }

  get requests_inflight(): number {
    return this.budget.requests_inflight;
  }

  closeForShutdown(): void {
    this.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
  }

  destroy(): void {
    this.ws.terminate();
  }

  /**
   * The client is gone: drop what it sent but we have not run, cancel what is running, and
   * give back its share of the node's budgets now, not when the workers finish.
   */
  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    if (this.keepalive_timer !== null) clearInterval(this.keepalive_timer);
    this.held.length = 0;
    this.budget.cancelAll();
  }

  private onSocketData(): void {
    this.last_activity_ms = Date.now();
    const receiver = (this.ws as unknown as { _receiver?: ReceiverInternals })._receiver;
    const partial = receiver !== undefined && ((receiver._bufferedBytes ?? 0) > 0 || (receiver._fragments?.length ?? 0) > 0);
    if (!partial) this.partial_frame_since_ms = 0;
    else if (this.partial_frame_since_ms === 0) this.partial_frame_since_ms = this.last_activity_ms;
  }

  /**
   * Called about once a second by the server: closes this connection if it broke a time limit
   * (slow reader, partial frame, idle).
   */
  checkTimers(now_ms: number): void {
    if (this.gone || this.ws.readyState !== this.ws.OPEN) return;
    // An authenticated peer is never cut for being slow, idle or mid-frame: a busy board that
    // reads slowly or sends a large data-move frame over Wi-Fi is still healthy, and its link's
    // heartbeat (peer-link.ts) is what decides whether it is up. Its reads still pause at
    // peer_send_bytes_max, so what it can make this node hold stays bounded.
    if (this.peer) return;
    const config = this.host.config;
    if (this.budget.isSlow(this.ws.bufferedAmount, now_ms, config.response_bytes_max, config.slow_client_timeout_ms)) {
      this.closeFor(CLOSE_POLICY_VIOLATION, 'SLOW_CLIENT', `its unread answers stayed over ${this.budget.send_bytes_max} bytes for ${config.slow_client_timeout_ms} ms`);
      return;
    }
    // A paused socket is not read, so a partial frame there is our doing, not the client's.
    if (this.partial_frame_since_ms !== 0 && !this.paused && now_ms - this.partial_frame_since_ms >= config.frame_timeout_ms) {
      this.closeFor(CLOSE_POLICY_VIOLATION, 'FRAME_TIMEOUT', `it held a partial frame for ${config.frame_timeout_ms} ms`);
      return;
    }
    if (config.idle_timeout_ms > 0 && this.requests_inflight === 0 && now_ms - this.last_activity_ms >= config.idle_timeout_ms) {
      this.closeFor(CLOSE_NORMAL, 'IDLE', `it was idle for ${config.idle_timeout_ms} ms`);
      return;
    }
  }

  /** Every keepalive_ms: closes the connection if the last ping went unanswered, else pings. */
  private keepalive(): void {
    if (this.gone || this.ws.readyState !== this.ws.OPEN) return;
    if (this.pong_pending) {
      this.closeFor(CLOSE_POLICY_VIOLATION, 'KEEPALIVE_TIMEOUT', `it did not answer a ping within ${this.keepalive_ms} ms`);
      return;
    }
    this.pong_pending = true;
    this.ws.ping();
  }

  /** Closes with a code the client can read (if it still reads), and tears the socket down soon after. */
  private closeFor(code: number, reason: string, why: string): void {
    this.host.log(`closing a connection from ${this.address} (${reason}): ${why}`);
    this.ws.close(code, reason);
    const ws = this.ws;
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    // Its requests are of no use any more; release them now rather than after the grace.
    this.onGone();
  }

  get is_paused(): boolean {
    return this.paused;
  }

  /** Resumes reading if this connection is paused and no limit holds it back any more. */
  maybeResume(): void {
    if (this.gone || !this.paused || this.mustPause()) return;
    this.paused = false;
    // Answering a held frame can call back into maybeResume (via onRequestDone); the loop
    // further up the stack then carries on.
    if (this.draining) return;
    this.draining = true;
    while (!this.paused && this.held.length > 0) {
      const { frame, is_binary } = this.held.shift()!;
      this.handleFrame(frame, is_binary);
    }
    this.draining = false;
    if (!this.paused) this.ws.resume();
  }

  private mustPause(): boolean {
    return this.budget.mustPause(this.ws.bufferedAmount);
  }

  private onMessage(frame: Buffer, is_binary: boolean): void {
    // ws keeps delivering frames that were already on the wire after close() (until the peer's
    // close frame arrives). Their answers could not be sent, and for a connection closed for
    // TOO_MANY_ERRORS each one used to be decoded and log another line: a 50k-frame flood
    // wrote 50k lines to stderr. Drop them unread.
    if (this.gone || this.ws.readyState !== this.ws.OPEN) return;
    this.last_activity_ms = Date.now();
    if (this.paused || this.held.length > 0) {
      this.held.push({ frame, is_binary });
      return;
    }
    this.handleFrame(frame, is_binary);
  }

  private handleFrame(frame: Buffer, is_binary: boolean): void {
    if (this.gone || this.ws.readyState !== this.ws.OPEN) return;
    if (!is_binary) {
      this.rejectFrame(null, ErrorCode.TEXT_FRAME, 'text frames are not accepted; send binary CBOR frames');
      return;
    }
    const control = this.peer && this.peer_channel === 'control';
    let batch;
    try {
      batch = this.host.codec.decodeRequest(frame, this.host.config.batch_ops_max);
    } catch (error) {
      if (!(error instanceof RequestDecodeError)) throw error;
      this.rejectFrame(error.request_id, error.code, error.message);
      return;
    }
    if (this.host.shutting_down) {
      this.sendError(batch.id, ErrorCode.SHUTTING_DOWN, 'the server is shutting down');
      return;
    }
    if (this.peer) {
      batch.peer = true;
      batch.peer_id = this.peer_id;
    }
    let gets = 0;
    let data_ops = 0;
    const ops = batch.op;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op === Op.GET) gets++;
      // Every op that reads or writes keys (GET, PUT, DELETE, the conditional ops, EXPIRE, PERSIST, TTL, DELETE_EXPIRED, ...).
      if (!CONTROL_OPS.has(op)) data_ops++;
    }
    if (control && frame.length > CONTROL_FRAME_BYTES_MAX) {
      // Checked after decoding, so that the refusal carries the request's id.
      this.sendError(batch.id, ErrorCode.BAD_REQUEST, `a peer control channel takes frames of at most ${CONTROL_FRAME_BYTES_MAX} bytes; send data on the data channel`);
      return;
    }
    if (control && (data_ops > 0 || batch.migrate === true)) {
      // Bulk data on the control channel would make heartbeats wait behind it again.
      this.sendError(batch.id, ErrorCode.BAD_REQUEST, 'a peer control channel carries only control ops (heartbeat, view, admin, drained, ring, status, ping); send data on the data channel');
      return;
    }
    if (data_ops > 0 && this.fenced()) {
      this.sendError(batch.id, ErrorCode.STALE_RING, 'a newer connection from this peer exists; data on this one is not applied');
      return;
    }
    this.budget.open(frame.length);
    try {
      const request = this.host.dispatcher.submit(batch, frame.length, this.onDone, this.peer ? PEER_SUBMIT : CLIENT_SUBMIT);
      // A request answered inside submit() (fast path, ping) has already been released by respond().
      this.budget.track(request, gets);
    } catch (error) {
      // A bug, not bad input: input errors never throw past the codec. The node holds every
      // key in memory, so one bad request must not take the process down: answer INTERNAL,
      // drop this connection (its request may be half routed), and keep serving the others.
      this.host.log(`internal error on request ${batch.id}; closing its connection: ${(error as Error).stack ?? String(error)}`);
      this.sendError(batch.id, ErrorCode.INTERNAL, 'internal server error; see the server log');
      this.ws.close(CLOSE_INTERNAL_ERROR, 'INTERNAL');
      return;
    }
    this.pauseIfNeeded();
  }

  private pauseIfNeeded(): void {
    if (this.paused || !this.mustPause()) return;
    this.paused = true;
    this.ws.pause();
    this.host.onPaused(this);
  }

  private respond(request: PendingRequest): void {
    // A cancelled request's share was released by onGone(); its late answers go nowhere.
    if (!this.budget.finish(request)) return;
    if (this.ws.readyState === this.ws.OPEN) {
      // limitValues() first: it may turn ops past the response size limit into RESPONSE_TOO_LARGE.
      const values_bytes = request.limitValues();
      // `vc` only when a result is still encoded, which the dispatcher leaves only for a request with `ac`.
      const value_codec = request.value_codec !== null && request.value_codec.some((codec) => codec !== 0) ? request.value_codec : null;
      const frame_bytes = responseFrameBytes(request.id, request.op_count, values_bytes, value_codec !== null);
      const pooled = frame_bytes >= POOLED_FRAME_BYTES_MIN;
      const frame = pooled ? this.host.frame_pool.take(frame_bytes) : Buffer.allocUnsafe(frame_bytes);
      const values_offset = writeResponseHead(frame, request.id, request.status, request.value_length, values_bytes, value_codec);
      request.copyValues(frame, values_offset);
      if (pooled) this.sendPooled(frame);
      else this.send(frame);
    }
    this.host.onRequestDone();
  }

  /**
   * Sends a frame. While the client keeps up, frames go out with no completion callback (a
   * closure and a tick per response, on the path of every unbatched request). Once what is
   * queued for this socket (ws.bufferedAmount) reaches half of connection_send_bytes_max,
   * frames carry a callback, so a connection paused for a slow reader is resumed when the
   * last of them drains: any send that can push the queue past the limit has one.
   */
  private send(frame: Buffer): void {
    if (this.ws.bufferedAmount + frame.length < this.budget.send_bytes_max / 2) {
      this.ws.send(frame, SEND_OPTIONS);
      return;
    }
    this.ws.send(frame, SEND_OPTIONS, this.onDrained);
    this.pauseIfNeeded();
  }

  /** Sends a frame from the pool; ws's callback (written, or failed) gives it back. */
  private sendPooled(frame: Buffer): void {
    const pool = this.host.frame_pool;
    this.ws.send(frame, SEND_OPTIONS, (error?: Error) => {
      pool.give(frame);
      this.onDrained(error);
    });
    if (this.ws.bufferedAmount >= this.budget.send_bytes_max / 2) this.pauseIfNeeded();
  }

  private sendError(id: number | null, code: ErrorCodeName, message: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.send(this.host.codec.encodeError({ id, code, message }));
  }

  private rejectFrame(id: number | null, code: ErrorCodeName, message: string): void {
    const now_ms = Date.now();
    if (now_ms - this.error_window_start_ms >= 1000) {
      this.error_window_start_ms = now_ms;
      this.errors_this_second = 0;
    }
    this.errors_this_second++;
    if (this.errors_this_second > this.host.config.connection_errors_per_second_max) {
      this.host.log(`closing a connection that sent over ${this.host.config.connection_errors_per_second_max} bad frames in one second`);
      this.ws.close(CLOSE_POLICY_VIOLATION, 'TOO_MANY_ERRORS');
      return;
    }
    this.sendError(id, code, message);
  }
}

/**
 * A connection's budget host and limits: clients share the node's in-flight budget and have
 * the connection_* limits; a peer's data channel has the peer_* limits and a budget of its own;
 * a peer's control channel has the small fixed control limits (peer-limits.ts).
 */
function budgetFor(host: ConnectionHost, peer: boolean, channel: PeerChannel): [BudgetHost, { requests_inflight_max: number; send_bytes_max: number; value_bytes_max: number }] {
  const config = host.config;
  if (!peer) {
    return [host, { requests_inflight_max: config.connection_requests_inflight_max, send_bytes_max: config.connection_send_bytes_max, value_bytes_max: config.value_bytes_max }];
  }
  if (channel === 'control') {
    return [new PeerBudgetHost(host, CONTROL_INFLIGHT_BYTES_MAX), { requests_inflight_max: CONTROL_REQUESTS_INFLIGHT_MAX, send_bytes_max: CONTROL_SEND_BYTES_MAX, value_bytes_max: config.value_bytes_max }];
  }
  return [new PeerBudgetHost(host, config.peer_inflight_bytes_max), { requests_inflight_max: config.peer_requests_inflight_max, send_bytes_max: config.peer_send_bytes_max, value_bytes_max: config.value_bytes_max }];
}

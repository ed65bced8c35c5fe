/**
 * One client's WebSocket: reads request frames, answers them, and applies backpressure.
 *
 * A connection stops being read (ws.pause) while it has too many requests in flight, too many
 * response bytes the client has not taken, or while the whole node is over its in-flight
 * byte budget; it is read again once those drop. Nothing is ever buffered without bound.
 * Bad frames are answered with an error and the connection stays open, unless it keeps
 * sending them faster than connection_errors_per_second_max, when it is closed with 1008.
 */
import type { WebSocket } from 'ws';
import { ErrorCode, type ErrorCodeName } from '../protocol/errors.js';
import { RequestDecodeError, type WireCodec } from '../protocol/codec.js';
import { responseFrameBytes, writeResponseHead } from '../protocol/response-writer.js';
import type { ServerConfig } from './config.js';
import type { Dispatcher } from './dispatcher.js';
import type { PendingRequest } from '../engine/pending-request.js';

/** What a connection needs from the node it belongs to. */
export interface ConnectionHost {
  readonly config: ServerConfig;
  readonly codec: WireCodec;
  readonly dispatcher: Dispatcher;
  readonly shutting_down: boolean;
  inflight_bytes: number;
  overBudget(): boolean;
  onPaused(connection: Connection): void;
  onRequestDone(): void;
  log(message: string): void;
}

/** WebSocket close codes (RFC 6455). */
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_INTERNAL_ERROR = 1011;
const SEND_OPTIONS = { binary: true } as const;

export class Connection {
  readonly ws: WebSocket;
  requests_inflight = 0;
  private paused = false;
  private errors_this_second = 0;
  private error_window_start_ms = 0;
  private readonly host: ConnectionHost;
  private readonly onDone = (request: PendingRequest): void => this.respond(request);
  private readonly onDrained = (): void => this.maybeResume();
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

  /** Authenticated with the cluster secret (src/cluster/auth.ts): may send cluster and data-move ops. */
  private readonly peer: boolean;

  constructor(ws: WebSocket, host: ConnectionHost, peer = false) {
    this.ws = ws;
    this.peer = peer;
    this.host = host;
    ws.on('message', (data: Buffer, is_binary: boolean) => this.onMessage(data, is_binary));
    // ws reports protocol violations (bad opcodes, oversized frames) here and closes the socket itself.
    ws.on('error', (error: Error & { code?: string }) => host.log(`connection error: ${error.code ?? ''} ${error.message}`));
  }

  get is_paused(): boolean {
    return this.paused;
  }

  /** Resumes reading if this connection is paused and no limit holds it back any more. */
  maybeResume(): void {
    if (!this.paused || this.mustPause()) return;
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
    const config = this.host.config;
    return (
      this.requests_inflight >= config.connection_requests_inflight_max ||
      this.ws.bufferedAmount >= config.connection_send_bytes_max ||
      this.host.overBudget()
    );
  }

  private onMessage(frame: Buffer, is_binary: boolean): void {
    // ws keeps delivering frames that were already on the wire after close() (until the peer's
    // close frame arrives). Their answers could not be sent, and for a connection closed for
    // TOO_MANY_ERRORS each one used to be decoded and log another line: a 50k-frame flood
    // wrote 50k lines to stderr. Drop them unread.
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (this.paused || this.held.length > 0) {
      this.held.push({ frame, is_binary });
      return;
    }
    this.handleFrame(frame, is_binary);
  }

  private handleFrame(frame: Buffer, is_binary: boolean): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (!is_binary) {
      this.rejectFrame(null, ErrorCode.TEXT_FRAME, 'text frames are not accepted; send binary CBOR frames');
      return;
    }
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
    if (this.peer) batch.peer = true;
    this.requests_inflight++;
    this.host.inflight_bytes += frame.length;
    try {
      this.host.dispatcher.submit(batch, frame.length, this.onDone);
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
    this.requests_inflight--;
    this.host.inflight_bytes -= request.frame_bytes;
    if (this.ws.readyState === this.ws.OPEN) {
      // limitValues() first: it may turn ops past the response size limit into RESPONSE_TOO_LARGE.
      const values_bytes = request.limitValues();
      const frame = Buffer.allocUnsafe(responseFrameBytes(request.id, request.op_count, values_bytes));
      const values_offset = writeResponseHead(frame, request.id, request.status, request.value_length, values_bytes);
      request.copyValues(frame, values_offset);
      this.send(frame);
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
    if (this.ws.bufferedAmount + frame.length < this.host.config.connection_send_bytes_max / 2) {
      this.ws.send(frame, SEND_OPTIONS);
      return;
    }
    this.ws.send(frame, SEND_OPTIONS, this.onDrained);
    this.pauseIfNeeded();
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

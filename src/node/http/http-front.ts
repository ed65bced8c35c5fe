/**
 * The HTTP API on the node's WebSocket port (docs/PROTOCOL.md, "HTTP"): the node's Node.js
 * HTTP server already takes every socket of that port; upgrades go to the WebSocket server as
 * before, and plain requests come here.
 *
 * This module sets the server's own limits (header size, header time, keep-alive idle time),
 * admits each socket's first request as a connection (connections_max counts WebSocket, RESP
 * and HTTP connections together; connections_per_ip_max was applied to the socket already),
 * gives each socket an HttpConnection, and answers in JSON the malformed requests Node's parser
 * rejects before there is a request object.
 */
import type { IncomingMessage, Server as HttpServer, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WireCodec } from '../../protocol/codec.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { ServerConfig } from '../config.js';
import type { Dispatcher } from '../dispatcher.js';
import { LogLimiter } from '../log-limiter.js';
import type { BudgetHost, ServedConnection } from '../request-budget.js';
import { HttpConnection, type HttpConnectionHost } from './http-connection.js';
import { HttpExchange } from './http-exchange.js';
import { codeReply, rawErrorResponse, sendError, type ErrorReply } from './replies.js';
import type { GuardSettings } from './request-guard.js';
import type { Observe } from '../observe/observe.js';

/** What the HTTP front end needs from the node (PikvServer). */
export interface HttpNode extends BudgetHost {
  readonly config: ServerConfig;
  readonly codec: WireCodec;
  readonly dispatcher: Dispatcher;
  readonly shutting_down: boolean;
  readonly observe: Observe;
  log(message: string): void;
  onPaused(connection: ServedConnection): void;
  hasRoomForConnection(): boolean;
  addConnection(connection: ServedConnection): void;
  removeConnection(connection: ServedConnection): void;
  /** The socket sent a plain HTTP request: it is no longer a handshake in progress. */
  handshakeDone(socket: Socket): void;
}

/** Node's default header limit; raised when keys may be longer than it allows in a path. */
const HEADER_BYTES_DEFAULT = 16 * 1024;
/** Room for the request line's method and version and the usual headers, beside the key. */
const HEADER_BYTES_BESIDE_KEY = 8 * 1024;
/** A key's bytes take up to 3 characters each in a path (%XX). */
const PATH_CHARS_PER_KEY_BYTE = 3;

/**
 * Options for the node's HTTP server. The header limit fits a path with a key of
 * key_bytes_max bytes, every byte percent-encoded; a request's headers must arrive within
 * handshake_timeout_ms; a body's time is checked by HttpConnection (frame_timeout_ms), so
 * Node's whole-request timeout is off (it would also count time the node itself held the
 * socket paused); `check_ms` is how often Node checks its timers.
 */
export function httpServerOptions(config: ServerConfig, check_ms: number): ServerOptions {
  return {
    maxHeaderSize: headerBytesMax(config),
    headersTimeout: config.handshake_timeout_ms,
    requestTimeout: 0,
    keepAliveTimeout: config.http_keep_alive_timeout_ms,
    connectionsCheckingInterval: check_ms,
  };
}

export function headerBytesMax(config: ServerConfig): number {
  return Math.max(HEADER_BYTES_DEFAULT, PATH_CHARS_PER_KEY_BYTE * config.key_bytes_max + HEADER_BYTES_BESIDE_KEY);
}

/** How long a socket closed for a malformed request is still read (and dropped) before it is destroyed. */
const CLIENT_ERROR_LINGER_MS = 2_000;

export class HttpFront implements HttpConnectionHost {
  readonly guard: GuardSettings;
  private readonly node: HttpNode;
  private readonly connections = new WeakMap<Socket, HttpConnection>();
  private readonly limited_log: LogLimiter;

  constructor(node: HttpNode, guard: GuardSettings) {
    this.node = node;
    this.guard = guard;
    this.limited_log = new LogLimiter((message) => node.log(message), 'HTTP connection');
  }

  /** Takes the plain requests and parser errors of the node's HTTP server. */
  attach(server: HttpServer): void {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, false));
    // With a listener here Node does not send "100 Continue" by itself: a body over the limit is
    // refused before the client sends it (curl waits for it past 1 MiB).
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    server.on('clientError', (error: Error & { code?: string }, socket: Socket) => this.onClientError(error, socket));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expect_continue: boolean): void {
    const socket = req.socket;
    let connection = this.connections.get(socket);
    if (connection === undefined) {
      this.node.handshakeDone(socket);
      if (!this.node.hasRoomForConnection()) {
        this.logLimited(`refused an HTTP connection from ${socket.remoteAddress ?? '?'}: connections_max (${this.node.config.connections_max}) connections are open`);
        sendError(res, { ...codeReply(ErrorCode.TOO_MANY_CONNECTIONS), close: true });
        return;
      }
      connection = new HttpConnection(socket, this);
      this.connections.set(socket, connection);
      this.node.addConnection(connection);
    }
    connection.accept(new HttpExchange(req, res, expect_continue, connection));
  }

  /**
   * A request Node's parser rejected (malformed, headers too large, headers too slow), or a
   * socket error. Answered as Node would, but in JSON, unless an answer is already under way on
   * that socket (then it is only closed: bytes written now would corrupt that answer).
   */
  private onClientError(error: Error & { code?: string }, socket: Socket): void {
    const code = error.code ?? '';
    const connection = this.connections.get(socket);
    if (code === 'ECONNRESET' || !socket.writable || connection?.answering === true) {
      socket.destroy();
      return;
    }
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT' && connection === undefined) {
      // A socket that never completed a request is an unfinished handshake: closed without an
      // answer, as the handshake sweep (server.ts) closes it, whichever comes first.
      this.logLimited(`closing a socket from ${socket.remoteAddress ?? '?'}: no complete request or WebSocket upgrade within ${this.node.config.handshake_timeout_ms} ms (HANDSHAKE_TIMEOUT)`);
      socket.destroy();
      return;
    }
    const reply = this.clientErrorReply(code, socket);
    // end(), not destroy(): closing a socket with unread bytes in it (the rest of a 1 MiB
    // header) sends a reset, and the client's kernel then drops the answer before it is read.
    // What still comes in is read and dropped for a bounded time, then the socket goes.
    socket.end(rawErrorResponse(reply));
    socket.on('data', () => {});
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  private clientErrorReply(code: string, socket: Socket): ErrorReply {
    const config = this.node.config;
    const address = socket.remoteAddress ?? '?';
    switch (code) {
      case 'HPE_HEADER_OVERFLOW':
        this.logLimited(`refused an HTTP request from ${address}: its headers passed ${headerBytesMax(config)} bytes`);
        return { status: 431, code: ErrorCode.HEADERS_TOO_LARGE, message: `the request line and headers may have at most ${headerBytesMax(config)} bytes` };
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        this.logLimited(`closing an HTTP connection from ${address}: a request's headers took over ${config.handshake_timeout_ms} ms (HANDSHAKE_TIMEOUT)`);
        return { status: 408, code: ErrorCode.REQUEST_TIMEOUT, message: `the request's headers did not arrive within ${config.handshake_timeout_ms} ms (handshake_timeout_ms)` };
      case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
        return { status: 413, code: ErrorCode.BODY_TOO_LARGE, message: 'chunk extensions too large' };
      default:
        this.logLimited(`refused a malformed HTTP request from ${address} (${code || 'parse error'})`);
        return { status: 400, code: ErrorCode.BAD_REQUEST, message: `malformed HTTP request (${code || 'parse error'})` };
    }
  }

  // HttpConnectionHost, delegated to the node.
  get config(): ServerConfig {
    return this.node.config;
  }

  get codec(): WireCodec {
    return this.node.codec;
  }

  get dispatcher(): Dispatcher {
    return this.node.dispatcher;
  }

  get shutting_down(): boolean {
    return this.node.shutting_down;
  }

  get observe(): Observe {
    return this.node.observe;
  }

  get inflight_bytes(): number {
    return this.node.inflight_bytes;
  }

  set inflight_bytes(bytes: number) {
    this.node.inflight_bytes = bytes;
  }

  overBudget(): boolean {
    return this.node.overBudget();
  }

  onRequestDone(): void {
    this.node.onRequestDone();
  }

  onPaused(connection: ServedConnection): void {
    this.node.onPaused(connection);
  }

  onClosed(connection: HttpConnection): void {
    this.node.removeConnection(connection);
  }

  log(message: string): void {
    this.node.log(message);
  }

  logLimited(message: string): void {
    this.limited_log.write(message);
  }
}

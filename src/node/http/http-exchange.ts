/**
 * One HTTP request and its answer: the checks on its headers (request-guard.ts, routes.ts),
 * its body (body-reader.ts), the batch it becomes for the dispatcher, and the answer made from
 * the dispatcher's results. Every data request is a batch through the same Dispatcher.submit
 * as WebSocket frames and RESP reads, so routing, forwarding, replication and per-op limits
 * are the same; the connection (http-connection.ts) runs it under its request budget.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PendingRequest } from '../../engine/pending-request.js';
import { RequestDecodeError, type RequestBatch, type WireCodec } from '../../protocol/codec.js';
import { Op, Status } from '../../protocol/constants.js';
import { defaultMessage, ErrorCode, statusName } from '../../protocol/errors.js';
import { responseFrameBytes, writeResponseHead } from '../../protocol/response-writer.js';
import type { ServerConfig } from '../config.js';
import { BatchBodyError, parseJsonBatch, renderJsonResults } from './batch-json.js';
import { BodyReader, declaredBytes, hasBody, type BodyOutcome } from './body-reader.js';
import { codeReply, sendBody, sendError, sendNoContent, type ErrorReply } from './replies.js';
import { checkAccess, checkSite, mediaTypeOf, type GuardSettings } from './request-guard.js';
import { isRefusal, routeOf } from './routes.js';
import type { Observe } from '../observe/observe.js';
import { answerObserve, type ObserveRoute } from './observe-answers.js';

/** What an exchange needs from its connection. */
export interface ExchangeHost {
  readonly config: ServerConfig;
  readonly codec: WireCodec;
  readonly guard: GuardSettings;
  readonly shutting_down: boolean;
  /** The node's metrics, summaries and dashboard (src/node/observe/). */
  readonly observe: Observe;
  /**
   * Runs `batch` through the dispatcher under the connection's budget; `answered` is called
   * once it is answered, and never if the connection goes first. `bytes` is what it holds of
   * the node's in-flight budget.
   */
  submit(batch: RequestBatch, bytes: number, gets: number, res: ServerResponse, answered: (request: PendingRequest) => void): void;
  /** `bytes` were handed to `res` and count as unwritten until it finishes. */
  sent(res: ServerResponse, bytes: number): void;
  /**
   * This answer closes the connection while the client may still be sending a body we did not
   * read: keep reading and dropping it for a while after the answer, and serve nothing more.
   */
  lingerAfterAnswer(): void;
  nextRequestId(): number;
  logLimited(message: string): void;
  /** A bug, not bad input: answer 500 if nothing was sent yet, log it, and drop the connection. */
  internalError(error: unknown, res: ServerResponse): void;
}

/**
 * A body this small that a refusal leaves unread is read and dropped by Node, so the connection
 * can stay open; a larger one, or one of unknown length, closes it instead of reading it all.
 */
const DISCARD_BYTES_MAX = 64 * 1024;
const OCTET_STREAM = 'application/octet-stream';
const JSON_TYPE = 'application/json';
const CBOR_TYPE = 'application/cbor';
const EMPTY = Buffer.alloc(0);

export class HttpExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The client sent `Expect: 100-continue` and waits for our go before sending its body. */
  private readonly expect_continue: boolean;
  private readonly host: ExchangeHost;
  private reader: BodyReader | null = null;

  constructor(req: IncomingMessage, res: ServerResponse, expect_continue: boolean, host: ExchangeHost) {
    this.req = req;
    this.res = res;
    this.expect_continue = expect_continue;
    this.host = host;
  }

  /** When this exchange began reading its body; 0 when it is not reading one. */
  get body_since_ms(): number {
    return this.reader?.since_ms ?? 0;
  }

  /** Runs the checks, then reads the body or submits. */
  start(): void {
    const { req, host } = this;
    if (host.shutting_down) return this.refuse({ ...codeReply(ErrorCode.SHUTTING_DOWN), close: true });
    const site = checkSite(req, host.guard);
    if (site !== null) return this.refuseLogged(site);
    const route = routeOf(req.method ?? '', req.url ?? '');
    if (isRefusal(route)) return this.refuse(route);
    const access = checkAccess(req, route, host.guard);
    if (access !== null) return this.refuseLogged(access);
    if (route.kind === 'health') return this.health();
    if (route.kind === 'batch') return this.batch();
    if (route.kind === 'kv') return this.kv(route.key, route.ttl_ms);
    return this.observeRoute(route);
  }

  /** The body was not received within frame_timeout_ms (slowloris): 408, and the connection closes at once. */
  timeOut(): void {
    this.stopReading();
    this.host.logLimited(`closing an HTTP connection from ${this.req.socket.remoteAddress ?? '?'} (REQUEST_TIMEOUT): its body took over ${this.host.config.frame_timeout_ms} ms`);
    this.host.sent(this.res, sendError(this.res, { ...codeReply(ErrorCode.REQUEST_TIMEOUT, `the body was not received within ${this.host.config.frame_timeout_ms} ms (frame_timeout_ms)`), close: true }));
  }

  /** The connection is gone: stop reading. Its requests were cancelled by the budget. */
  abandon(): void {
    this.stopReading();
  }

  // ---- routes ----

  private kv(key: Buffer, ttl_ms: number): void {
    const { config } = this.host;
    const method = this.req.method;
    if (key.length > config.key_bytes_max) {
      return this.refuse(codeReply(ErrorCode.KEY_TOO_LARGE, `the key has ${key.length} bytes; key_bytes_max is ${config.key_bytes_max}`));
    }
    if (method === 'GET' || method === 'HEAD') return this.submitOne(Op.GET, key, EMPTY);
    if (method === 'DELETE') return this.submitOne(Op.DELETE, key, EMPTY);
    if (declaredBytes(this.req) > config.value_bytes_max) return this.refuse(this.valueTooLarge(`Content-Length is ${declaredBytes(this.req)}`));
    this.readBody(config.value_bytes_max, (outcome) => {
      if ('too_large' in outcome) return this.refuse({ ...this.valueTooLarge('the body is longer'), close: true });
      this.submitOne(Op.PUT, key, outcome.body, ttl_ms);
    });
  }

  private batch(): void {
    const { config } = this.host;
    const type = mediaTypeOf(this.req);
    if (type !== JSON_TYPE && type !== CBOR_TYPE) {
      return this.refuse(codeReply(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `a batch body is ${JSON_TYPE} or ${CBOR_TYPE}, not ${JSON.stringify(type.slice(0, 100))}`));
    }
    if (declaredBytes(this.req) > config.frame_bytes_max) return this.refuse(this.bodyTooLarge(`Content-Length is ${declaredBytes(this.req)}`));
    this.readBody(config.frame_bytes_max, (outcome) => {
      if ('too_large' in outcome) return this.refuse({ ...this.bodyTooLarge('the body is longer'), close: true });
      if (type === JSON_TYPE) this.submitJson(outcome.body);
      else this.submitCbor(outcome.body);
    });
  }

  private health(): void {
    // Through the dispatcher like any op: CLUSTER_STATUS is what pikv cluster status reads.
    const batch = single(this.host.nextRequestId(), Op.CLUSTER_STATUS, EMPTY, EMPTY);
    this.submit(batch, 0, 0, (request) => {
      if (request.status[0] !== Status.OK) return this.answerError(request, 0);
      const status = this.host.codec.decodeValue(valueOf(request, 0)) as { node_id?: unknown; epoch?: unknown; etcd?: { serving?: unknown } | null };
      // Without etcd (a lone node, gossip) a node serves whenever it runs; with etcd, while it holds the view in a live session.
      const serving = !this.host.shutting_down && (status.etcd === null || status.etcd === undefined || status.etcd.serving === true);
      const fields = { node_id: status.node_id, epoch: status.epoch, serving };
      // Not serving: 503, so a load balancer or `curl --fail` sees it; the body has the same fields.
      const code = this.host.shutting_down ? ErrorCode.SHUTTING_DOWN : ErrorCode.CLUSTER_UNAVAILABLE;
      if (serving) this.host.sent(this.res, sendBody(this.res, 200, `${JSON_TYPE}; charset=utf-8`, Buffer.from(`${JSON.stringify(fields)}\n`)));
      else this.host.sent(this.res, sendError(this.res, { ...codeReply(code), fields }));
    });
  }

  /** Metrics, dashboard files, summaries and the event stream: no body, no dispatcher. */
  private observeRoute(route: ObserveRoute): void {
    const answer = answerObserve(route, this.host.observe, this.res);
    if (answer.refusal !== undefined) return this.refuse(answer.refusal);
    if (answer.sent !== undefined) this.host.sent(this.res, answer.sent);
    answer.pending?.then(
      (bytes) => this.host.sent(this.res, bytes),
      (error: unknown) => this.host.internalError(error, this.res),
    );
  }

  // ---- batches ----

  /** One op; `ttl_ms` > 0 goes as the wire's relative `tl`, so this node's clock makes it absolute (docs/PROTOCOL.md, "Expiry"). */
  private submitOne(op: number, key: Buffer, value: Buffer, ttl_ms = 0): void {
    const batch = single(this.host.nextRequestId(), op, key, value);
    if (ttl_ms > 0) batch.ttl = new Float64Array([ttl_ms]);
    this.submit(batch, key.length + value.length, op === Op.GET ? 1 : 0, (request) => {
      request.limitValues();
      if (request.status[0] !== Status.OK) return this.answerError(request, 0);
      if (op !== Op.GET) return sendNoContent(this.res);
      this.host.sent(this.res, sendBody(this.res, 200, OCTET_STREAM, valueOf(request, 0)));
    });
  }

  private submitJson(body: Buffer): void {
    let parsed;
    try {
      parsed = parseJsonBatch(body, this.host.nextRequestId(), this.host.config.batch_ops_max);
    } catch (error) {
      if (!(error instanceof BatchBodyError)) throw error;
      return this.refuse(codeReply(error.code, error.message));
    }
    const { batch, gets, base64_values } = parsed;
    this.submit(batch, body.length, gets, (request) => {
      request.limitValues();
      this.host.sent(this.res, sendBody(this.res, 200, `${JSON_TYPE}; charset=utf-8`, renderJsonResults(request, batch.op, base64_values)));
    });
  }

  /** pikv's wire format (docs/PROTOCOL.md, "Request"); the answer is the same response map a WebSocket gets. */
  private submitCbor(body: Buffer): void {
    let batch: RequestBatch;
    try {
      batch = this.host.codec.decodeRequest(body, this.host.config.batch_ops_max);
    } catch (error) {
      if (!(error instanceof RequestDecodeError)) throw error;
      return this.refuse(codeReply(error.code, error.message));
    }
    let gets = 0;
    for (let i = 0; i < batch.op.length; i++) if (batch.op[i] === Op.GET) gets++;
    this.submit(batch, body.length, gets, (request) => {
      const values_bytes = request.limitValues();
      const frame = Buffer.allocUnsafe(responseFrameBytes(request.id, request.op_count, values_bytes));
      request.copyValues(frame, writeResponseHead(frame, request.id, request.status, request.value_length, values_bytes));
      this.host.sent(this.res, sendBody(this.res, 200, CBOR_TYPE, frame));
    });
  }

  private submit(batch: RequestBatch, bytes: number, gets: number, answered: (request: PendingRequest) => void): void {
    // Shutdown may have begun while the body was read.
    if (this.host.shutting_down) return this.refuse(codeReply(ErrorCode.SHUTTING_DOWN));
    this.host.submit(batch, bytes, gets, this.res, answered);
  }

  // ---- answers ----

  /** A single-key op's error (or NOT_FOUND) as its HTTP status and JSON body; never called for OK. */
  private answerError(request: PendingRequest, index: number): void {
    const name = statusName(request.status[index]!);
    const code = name === 'OK' ? ErrorCode.INTERNAL : name;
    const { config } = this.host;
    const note = code === ErrorCode.VALUE_TOO_LARGE ? ` (value_bytes_max is ${config.value_bytes_max})` : '';
    this.host.sent(this.res, sendError(this.res, codeReply(code, `${defaultMessage(code)}${note}`)));
  }

  private valueTooLarge(detail: string): ErrorReply {
    return codeReply(ErrorCode.VALUE_TOO_LARGE, `${detail}; value_bytes_max is ${this.host.config.value_bytes_max}`);
  }

  private bodyTooLarge(detail: string): ErrorReply {
    return codeReply(ErrorCode.BODY_TOO_LARGE, `${detail}; a batch body may have at most frame_bytes_max = ${this.host.config.frame_bytes_max} bytes`);
  }

  /**
   * Answers without running anything. A body left unread closes the connection (lingering, so
   * the client can read the answer) unless it is small enough for Node to read and drop: an
   * unread body would be taken for the next request.
   */
  private refuse(reply: ErrorReply): void {
    const { req } = this;
    const unread = this.reader === null && hasBody(req) && !req.complete &&
      (this.expect_continue || req.headers['transfer-encoding'] !== undefined || declaredBytes(req) > DISCARD_BYTES_MAX);
    if (unread || reply.close === true) this.host.lingerAfterAnswer();
    this.host.sent(this.res, sendError(this.res, unread ? { ...reply, close: true } : reply));
  }

  /** A refusal the operator should see (token, Host, cross-site): logged, at most a few lines a second. */
  private refuseLogged(reply: ErrorReply): void {
    this.host.logLimited(`refused an HTTP ${this.req.method ?? ''} from ${this.req.socket.remoteAddress ?? '?'} (${reply.code}): ${reply.message}`);
    this.refuse(reply);
  }

  // ---- body ----

  private readBody(limit_bytes: number, onBody: (outcome: BodyOutcome) => void): void {
    // The client held its body back until told to send it (curl does so past 1 MiB).
    if (this.expect_continue) this.res.writeContinue();
    this.reader = new BodyReader(this.req, limit_bytes, (outcome) => {
      this.reader = null;
      // Runs from the request stream's events: a throw here would end the process.
      try {
        onBody(outcome);
      } catch (error) {
        this.host.internalError(error, this.res);
      }
    });
  }

  private stopReading(): void {
    this.reader?.stop();
    this.reader = null;
  }
}

/** A one-op batch. */
function single(id: number, op: number, key: Buffer, value: Buffer): RequestBatch {
  return {
    id, op: Uint8Array.of(op), key_lengths: Uint32Array.of(key.length), value_lengths: Uint32Array.of(value.length), keys: key, values: value,
  };
}

/** Op `index`'s value, copied out of the workers' reply buffers. After request.limitValues(). */
function valueOf(request: PendingRequest, index: number): Buffer {
  const value = Buffer.allocUnsafe(request.value_length[index]!);
  request.copyValue(index, value, 0);
  return value;
}

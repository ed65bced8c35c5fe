/**
 * How the HTTP API answers: JSON error bodies with pikv's stable codes, the HTTP status each
 * code maps to, and the headers every response carries. docs/PROTOCOL.md, "HTTP", has the table.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { ErrorCode, RETRYABLE_CODES, defaultMessage, type ErrorCodeName } from '../../protocol/errors.js';

/** Seconds a client told to come back (503) should wait: cluster changes and restarts settle in about that. */
export const RETRY_AFTER_S = 1;

/**
 * Sent with every response. no-store: a value must never be served from a cache after it
 * changed. nosniff: a browser opening a value's URL must not run it as HTML or script.
 * Deliberately no Access-Control-* header: no other site's page may read answers.
 */
const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } as const;

export interface ErrorReply {
  status: number;
  code: ErrorCodeName;
  message: string;
  /** Close the connection after this answer (a body left unread, a broken stream). */
  close?: boolean;
  /** Extra headers (Allow, WWW-Authenticate). */
  headers?: Record<string, string>;
  /** Extra fields of the JSON body, before error and message (health: node_id, epoch, serving). */
  fields?: Record<string, unknown>;
}

/** The HTTP status for a pikv code, whether an op's (status byte) or a whole request's. */
export function httpStatusOf(code: ErrorCodeName | 'OK'): number {
  switch (code) {
    case 'OK': return 200;
    case ErrorCode.NOT_FOUND: return 404;
    case ErrorCode.KEY_TOO_LARGE:
    case ErrorCode.BAD_OP:
    case ErrorCode.UNKNOWN_OP:
    case ErrorCode.BAD_FRAME:
    case ErrorCode.BAD_REQUEST:
    case ErrorCode.BAD_EXPIRY:
    case ErrorCode.UNSUPPORTED_VERSION: return 400;
    // The node cannot honour a TTL now (its clock is not synchronised); another node may.
    case ErrorCode.CLOCK_UNSYNCED: return 503;
    case ErrorCode.AUTH_FAILED: return 401;
    case ErrorCode.CROSS_SITE: return 403;
    case ErrorCode.UNKNOWN_ROUTE: return 404;
    case ErrorCode.METHOD_NOT_ALLOWED: return 405;
    case ErrorCode.REQUEST_TIMEOUT: return 408;
    case ErrorCode.UNSUPPORTED_MEDIA_TYPE: return 415;
    case ErrorCode.BAD_HOST: return 421;
    case ErrorCode.HEADERS_TOO_LARGE: return 431;
    case ErrorCode.VALUE_TOO_LARGE:
    case ErrorCode.BODY_TOO_LARGE:
    case ErrorCode.TOO_MANY_OPS: return 413;
    // 507 Insufficient Storage: the node is full; retrying will not help until keys are deleted.
    case ErrorCode.OUT_OF_MEMORY: return 507;
    // One GET's value always fits a response, so this is the worker's reply packet under load: retry.
    case ErrorCode.RESPONSE_TOO_LARGE: return 503;
    default: return RETRYABLE_CODES.has(code) ? 503 : 500;
  }
}

/** Writes `{"error": CODE, "message": ...}` with the code's status; 503s carry Retry-After. */
export function sendError(res: ServerResponse, reply: ErrorReply): number {
  const body = Buffer.from(`${JSON.stringify({ ...reply.fields, error: reply.code, message: reply.message })}\n`);
  const headers: Record<string, string | number> = {
    ...COMMON_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': body.length,
    ...reply.headers,
  };
  if (reply.status === 503) headers['retry-after'] = RETRY_AFTER_S;
  if (reply.close === true) headers['connection'] = 'close';
  res.writeHead(reply.status, headers);
  res.end(body);
  return body.length;
}

/** An error reply for a pikv code with its status and default message (or `message`). */
export function codeReply(code: ErrorCodeName, message?: string): ErrorReply {
  return { status: httpStatusOf(code), code, message: message ?? defaultMessage(code) };
}

/** Writes a successful answer; returns the body's bytes. */
export function sendBody(res: ServerResponse, status: number, content_type: string, body: Buffer, close = false): number {
  const headers: Record<string, string | number> = { ...COMMON_HEADERS, 'content-type': content_type, 'content-length': body.length };
  if (close) headers['connection'] = 'close';
  res.writeHead(status, headers);
  res.end(body);
  return body.length;
}

/** 204 No Content: a PUT or DELETE that was applied. */
export function sendNoContent(res: ServerResponse, close = false): void {
  res.writeHead(204, close ? { ...COMMON_HEADERS, connection: 'close' } : COMMON_HEADERS);
  res.end();
}

/**
 * The raw bytes of an error answer written straight to a socket, for errors Node's HTTP parser
 * reports before there is a request or response object (malformed requests, header timeouts,
 * oversized headers): the same JSON as sendError, and the connection is closed.
 */
export function rawErrorResponse(reply: ErrorReply): Buffer {
  const body = `${JSON.stringify({ error: reply.code, message: reply.message })}\n`;
  const reason = STATUS_CODES[reply.status] ?? 'Error';
  return Buffer.from(
    `HTTP/1.1 ${reply.status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `cache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Stable error codes, shared by server, client and CLI.
 *
 * Callers branch on `code`, never on message text. Per-op codes map one-to-one onto the
 * status bytes in constants.ts; request-level and client-side codes have no status byte.
 *
 * An op answered with an error code was not applied and never will be (not even by crash
 * recovery replaying the log): the node answers only once its log agrees. The exceptions mean
 * "may or may not have been applied": WORKER_RESTARTED (the only such status a single node
 * sends; with --data-dir the op's fate is settled before the partition serves anything
 * again, so reads show it consistently), NODE_DOWN (a forward whose owner went silent), and
 * on the client side TIMEOUT and CONNECTION_LOST. docs/PROTOCOL.md, "What an answer promises".
 */
import { Status, type StatusCode } from './constants.js';

export const ErrorCode = {
  // Per-op outcomes (also status bytes).
  NOT_FOUND: 'NOT_FOUND',
  KEY_TOO_LARGE: 'KEY_TOO_LARGE',
  VALUE_TOO_LARGE: 'VALUE_TOO_LARGE',
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  UNKNOWN_OP: 'UNKNOWN_OP',
  WORKER_RESTARTED: 'WORKER_RESTARTED',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  INTERNAL: 'INTERNAL',
  BAD_OP: 'BAD_OP',
  RESPONSE_TOO_LARGE: 'RESPONSE_TOO_LARGE',
  DISK_ERROR: 'DISK_ERROR',
  STALE_RING: 'STALE_RING',
  NODE_DOWN: 'NODE_DOWN',
  AUTH_FAILED: 'AUTH_FAILED',
  CLUSTER_BUSY: 'CLUSTER_BUSY',
  CLUSTER_UNAVAILABLE: 'CLUSTER_UNAVAILABLE',
  NOT_ENOUGH_REPLICAS: 'NOT_ENOUGH_REPLICAS',
  BAD_EXPIRY: 'BAD_EXPIRY',
  CLOCK_UNSYNCED: 'CLOCK_UNSYNCED',
  VALUE_CORRUPT: 'VALUE_CORRUPT',
  // Whole-request errors, sent as {err, msg}.
  BAD_FRAME: 'BAD_FRAME',
  BAD_REQUEST: 'BAD_REQUEST',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  TOO_MANY_OPS: 'TOO_MANY_OPS',
  TEXT_FRAME: 'TEXT_FRAME',
  // Whole-request errors of the HTTP API only (docs/PROTOCOL.md, "HTTP"), sent as {"error", "message"}.
  UNKNOWN_ROUTE: 'UNKNOWN_ROUTE',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  BAD_HOST: 'BAD_HOST',
  CROSS_SITE: 'CROSS_SITE',
  BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  TOO_MANY_CONNECTIONS: 'TOO_MANY_CONNECTIONS',
  // Client side only.
  CLIENT_CLOSED: 'CLIENT_CLOSED',
  CONNECTION_LOST: 'CONNECTION_LOST',
  CONNECT_FAILED: 'CONNECT_FAILED',
  TIMEOUT: 'TIMEOUT',
  CLIENT_OVERLOADED: 'CLIENT_OVERLOADED',
  BAD_ARGUMENT: 'BAD_ARGUMENT',
  BAD_RESPONSE: 'BAD_RESPONSE',
  /** Peer handshake: the other side could not prove the cluster secret on this connection. */
  PEER_AUTH_FAILED: 'PEER_AUTH_FAILED',
  /** Peer handshake: the two nodes speak different peer protocol versions. */
  PEER_VERSION_MISMATCH: 'PEER_VERSION_MISMATCH',
} as const;
export type ErrorCodeName = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes after which the same op may safely be sent again (it was not executed, or is idempotent to retry). */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.WORKER_RESTARTED, ErrorCode.SHUTTING_DOWN, ErrorCode.DISK_ERROR, ErrorCode.STALE_RING, ErrorCode.NODE_DOWN, ErrorCode.CLUSTER_BUSY,
  ErrorCode.CLUSTER_UNAVAILABLE, ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.CLOCK_UNSYNCED,
]);

const STATUS_NAMES: ReadonlyMap<number, ErrorCodeName> = new Map<number, ErrorCodeName>([
  [Status.NOT_FOUND, ErrorCode.NOT_FOUND],
  [Status.KEY_TOO_LARGE, ErrorCode.KEY_TOO_LARGE],
  [Status.VALUE_TOO_LARGE, ErrorCode.VALUE_TOO_LARGE],
  [Status.OUT_OF_MEMORY, ErrorCode.OUT_OF_MEMORY],
  [Status.UNKNOWN_OP, ErrorCode.UNKNOWN_OP],
  [Status.WORKER_RESTARTED, ErrorCode.WORKER_RESTARTED],
  [Status.SHUTTING_DOWN, ErrorCode.SHUTTING_DOWN],
  [Status.INTERNAL, ErrorCode.INTERNAL],
  [Status.BAD_OP, ErrorCode.BAD_OP],
  [Status.RESPONSE_TOO_LARGE, ErrorCode.RESPONSE_TOO_LARGE],
  [Status.DISK_ERROR, ErrorCode.DISK_ERROR],
  [Status.STALE_RING, ErrorCode.STALE_RING],
  [Status.NODE_DOWN, ErrorCode.NODE_DOWN],
  [Status.AUTH_FAILED, ErrorCode.AUTH_FAILED],
  [Status.CLUSTER_BUSY, ErrorCode.CLUSTER_BUSY],
  [Status.CLUSTER_UNAVAILABLE, ErrorCode.CLUSTER_UNAVAILABLE],
  [Status.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS],
  [Status.BAD_EXPIRY, ErrorCode.BAD_EXPIRY],
  [Status.CLOCK_UNSYNCED, ErrorCode.CLOCK_UNSYNCED],
  [Status.VALUE_CORRUPT, ErrorCode.VALUE_CORRUPT],
]);

/** The stable code of a status byte; unknown bytes from a newer server read as INTERNAL. */
export function statusName(status: number): ErrorCodeName | 'OK' {
  if (status === Status.OK) return 'OK';
  return STATUS_NAMES.get(status) ?? ErrorCode.INTERNAL;
}

const MESSAGES: Readonly<Record<ErrorCodeName, string>> = {
  NOT_FOUND: 'key not found',
  KEY_TOO_LARGE: 'key is longer than the server allows',
  VALUE_TOO_LARGE: 'value is longer than the server allows',
  OUT_OF_MEMORY: 'the partition has reached its memory limit; puts fail until memory is freed',
  UNKNOWN_OP: 'unknown op code',
  WORKER_RESTARTED: 'the partition worker restarted while this op was in flight; it may or may not have been applied (reads show which, and recovery agrees); safe to retry',
  SHUTTING_DOWN: 'the server is shutting down',
  INTERNAL: 'internal server error',
  BAD_OP: 'op is malformed (e.g. a value on an op that takes none)',
  RESPONSE_TOO_LARGE: 'the results of this request would exceed the response size limit; ask for fewer or smaller values at once',
  DISK_ERROR: 'the write could not be logged to disk (disk full or failing) and was not applied, nor will it be after a restart; retry once space is freed',
  STALE_RING: 'this node does not own the key in its ring view; refresh the ring and resend',
  NODE_DOWN: 'the node that owns this key is down or did not answer in time; the op may or may not have been applied',
  AUTH_FAILED: 'missing or wrong cluster secret or client token',
  CLUSTER_UNAVAILABLE: 'this node does not hold the current cluster view from etcd (starting, or cut off from etcd); it serves nothing until it does; retry, or try another node',
  CLUSTER_BUSY: 'another membership change is still moving data, or nodes are still deleting old copies after one; retry when it has finished',
  NOT_ENOUGH_REPLICAS: "fewer copies of this key's range are up than the cluster's min_replicas: a write before it was applied was refused; one after it was applied (its copies fell below the limit while it waited) may or may not persist; retry once nodes are back or re-replication has finished",
  BAD_EXPIRY: 'the expiry is not a valid time (xp: a whole number of ms since the Unix epoch, or -1 on a PUT to keep the current one; tl: a whole number of ms >= 0), or the op takes none',
  CLOCK_UNSYNCED: 'this node\'s clock is not known to be synchronised (NTP), so it refuses ops that depend on the time (expiries, TTL reads); fix its time sync (docs/PROTOCOL.md, "Expiry")',
  VALUE_CORRUPT: 'the stored value is compressed and does not decode (checksum failure, unknown codec, or larger than value_bytes_max once decoded); it was written corrupt',
  BAD_FRAME: 'frame is not valid CBOR',
  BAD_REQUEST: 'request does not have the shape described in docs/PROTOCOL.md',
  UNSUPPORTED_VERSION: 'protocol version not supported',
  TOO_MANY_OPS: 'request has more ops than the server allows',
  TEXT_FRAME: 'text frames are not accepted; send binary CBOR frames',
  UNKNOWN_ROUTE: 'no such route; the HTTP API is GET, PUT and DELETE /v1/kv/<key>, POST /v1/batch and GET /v1/health (docs/PROTOCOL.md)',
  METHOD_NOT_ALLOWED: 'this route does not take that method (the Allow header lists those it takes)',
  BAD_HOST: 'the Host header does not name this node (its listen or advertised address, localhost, or one of its interface addresses)',
  CROSS_SITE: 'refused as a possible cross-site request: a write needs Content-Type application/json or application/cbor, or the bearer token, and no foreign Origin',
  BODY_TOO_LARGE: 'the request body is larger than the node allows',
  UNSUPPORTED_MEDIA_TYPE: 'the body must be application/json or application/cbor',
  REQUEST_TIMEOUT: 'the request was not received in time',
  HEADERS_TOO_LARGE: 'the request line and headers are larger than the node allows',
  TOO_MANY_CONNECTIONS: 'the node has connections_max connections open; retry later',
  CLIENT_CLOSED: 'client was closed',
  CONNECTION_LOST: 'connection to the server was lost; the op may or may not have been applied',
  CONNECT_FAILED: 'could not connect to the server',
  TIMEOUT: 'request timed out; the op may or may not have been applied',
  CLIENT_OVERLOADED: 'too many ops pending in this client',
  BAD_ARGUMENT: 'invalid argument',
  BAD_RESPONSE: 'server sent a response this client cannot read',
  PEER_AUTH_FAILED: 'the other end of a peer connection could not prove the cluster secret',
  PEER_VERSION_MISMATCH: 'the two nodes speak different peer protocol versions; run the same pikv version everywhere',
};

export function defaultMessage(code: ErrorCodeName): string {
  return MESSAGES[code];
}

/** The one error type pikv throws or rejects with. */
export class PikvError extends Error {
  readonly code: ErrorCodeName;
  readonly retryable: boolean;
  constructor(code: ErrorCodeName, message?: string) {
    super(message ?? MESSAGES[code]);
    this.name = 'PikvError';
    this.code = code;
    this.retryable = RETRYABLE_CODES.has(code);
  }
}

export function statusError(status: StatusCode | number): PikvError {
  const name = statusName(status);
  return new PikvError(name === 'OK' ? ErrorCode.INTERNAL : name);
}

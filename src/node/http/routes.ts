/**
 * The HTTP API's routes (docs/PROTOCOL.md, "HTTP"): a request target and method become what
 * to do, or the reason it is refused. Nothing here touches the node.
 *
 *   GET|HEAD|PUT|DELETE /v1/kv/<key>   one key; the key is the rest of the path, percent-decoded;
 *                                      PUT takes ?ttl=SECONDS (a whole number >= 1)
 *   POST /v1/batch                     many ops, JSON or CBOR body
 *   GET|HEAD /v1/health                node id, epoch, serving
 *   GET|HEAD /metrics                  Prometheus text (docs/OBSERVABILITY.md)
 *   GET|HEAD / and /dashboard/<file>   the dashboard page and its files
 *   GET|HEAD /v1/summary               this node at a glance (JSON); ?history=1 adds 10 minutes of samples
 *   GET|HEAD /v1/cluster               every member's summary and the ring (JSON); ?history=1 as above
 *   GET /v1/events                     the dashboard's Server-Sent Events: /v1/cluster once a second
 *
 * Keys in the path: everything after `/v1/kv/` up to `?`, percent-decoded to bytes, so any key
 * can be reached: `a/b` is the key "a/b", `%2F` is a slash, `%FF` the byte 0xFF, and `+` is a
 * plus sign (paths are not form-encoded). Non-ASCII text sent raw or percent-encoded is its
 * UTF-8 bytes.
 */
import { ErrorCode, type ErrorCodeName } from '../../protocol/errors.js';

export type Route =
  /** `ttl_ms`: from PUT's `?ttl=SECONDS`; 0 when absent. */
  | { kind: 'kv'; key: Buffer; ttl_ms: number }
  | { kind: 'batch' }
  | { kind: 'health' }
  | { kind: 'metrics' }
  | { kind: 'asset'; name: string }
  | { kind: 'summary'; history: boolean }
  | { kind: 'cluster'; history: boolean }
  | { kind: 'events' };

/** Read-only routes that show the node's state (src/node/observe/): GET and HEAD only. */
const OBSERVE_METHODS = 'GET, HEAD';
const DASHBOARD_PREFIX = '/dashboard/';

export interface RouteRefusal {
  status: number;
  code: ErrorCodeName;
  message: string;
  /** Allow (405: the methods the route takes), Upgrade (426). */
  headers?: Record<string, string>;
}

const KV_PREFIX = '/v1/kv/';
const API_PREFIX = '/v1/';
const KV_METHODS = 'GET, HEAD, PUT, DELETE';
const BATCH_METHODS = 'POST';
const HEALTH_METHODS = 'GET, HEAD';
/** Writes: they must pass the cross-site check (request-guard.ts). */
export const WRITE_METHODS: ReadonlySet<string> = new Set(['PUT', 'DELETE', 'POST']);

/** What a request asks for, or why it is refused; `method` as Node gives it (upper case). */
export function routeOf(method: string, url: string): Route | RouteRefusal {
  const query_at = url.indexOf('?');
  const path = query_at < 0 ? url : url.slice(0, query_at);
  const query = query_at < 0 ? '' : url.slice(query_at + 1);
  const observe = observeRoute(method, path, query);
  if (observe !== null) return observe;
  if (!path.startsWith(API_PREFIX)) {
    // Anything else on the port is probably a WebSocket client that forgot to upgrade, or a
    // person trying the port: say what the port speaks (426, as before the HTTP API existed).
    return {
      status: 426, code: ErrorCode.UNKNOWN_ROUTE, headers: { upgrade: 'websocket' },
      message: 'this port speaks WebSocket with binary CBOR frames (docs/PROTOCOL.md) and HTTP under /v1/: GET, PUT and DELETE /v1/kv/<key>, POST /v1/batch, GET /v1/health',
    };
  }
  if (path.startsWith(KV_PREFIX)) {
    if (!KV_METHODS.split(', ').includes(method)) return notAllowed(method, KV_METHODS);
    const ttl_ms = checkQuery(query, method);
    if (typeof ttl_ms !== 'number') return ttl_ms;
    const key = percentDecode(path.slice(KV_PREFIX.length));
    if (key === null) return badRequest('the key in the path has a malformed percent-escape (% must be followed by two hex digits)');
    if (key.length === 0) return badRequest('no key in the path (listing keys is not supported); the empty key is reachable through POST /v1/batch');
    return { kind: 'kv', key, ttl_ms };
  }
  if (path === '/v1/batch') {
    if (method !== 'POST') return notAllowed(method, BATCH_METHODS);
    return query === '' ? { kind: 'batch' } : badRequest('POST /v1/batch takes no query parameters');
  }
  if (path === '/v1/health') {
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(method, HEALTH_METHODS);
    return { kind: 'health' };
  }
  return { status: 404, code: ErrorCode.UNKNOWN_ROUTE, message: `no route ${JSON.stringify(truncate(path))}: the HTTP API is GET, PUT and DELETE /v1/kv/<key>, POST /v1/batch and GET /v1/health` };
}

/** The dashboard and metrics routes, or null when `path` is none of them. */
function observeRoute(method: string, path: string, query: string): Route | RouteRefusal | null {
  let route: Route;
  if (path === '/') route = { kind: 'asset', name: 'index.html' };
  else if (path.startsWith(DASHBOARD_PREFIX)) route = { kind: 'asset', name: path.slice(DASHBOARD_PREFIX.length) };
  else if (path === '/metrics') route = { kind: 'metrics' };
  else if (path === '/v1/summary') route = { kind: 'summary', history: false };
  else if (path === '/v1/cluster') route = { kind: 'cluster', history: false };
  else if (path === '/v1/events') route = { kind: 'events' };
  else return null;
  if (method !== 'GET' && (method !== 'HEAD' || route.kind === 'events')) return notAllowed(method, route.kind === 'events' ? 'GET' : OBSERVE_METHODS);
  if (route.kind === 'summary' || route.kind === 'cluster') {
    if (query === 'history=1') return { ...route, history: true };
    if (query !== '') return badRequest(`unknown query ${JSON.stringify(truncate(query))}; ${path} takes only history=1`);
    return route;
  }
  // Browsers add cache-busting queries to files now and then; nothing else takes one.
  if (query !== '' && route.kind !== 'asset') return badRequest(`${path} takes no query parameters`);
  return route;
}

export function isRefusal(value: Route | RouteRefusal): value is RouteRefusal {
  return 'status' in value;
}

/** Largest ?ttl: about 285 years, well inside what the engine stores. */
const TTL_SECONDS_MAX = 9_000_000_000;

/**
 * The time to live in ms a PUT's `?ttl=SECONDS` asks for (0 without one), or the refusal.
 * Other query parameters are refused rather than ignored, so a typo is not silently dropped.
 */
function checkQuery(query: string, method: string): number | RouteRefusal {
  if (query === '') return 0;
  const pairs = query.split('&').map((pair) => pair.split('='));
  const unknown = pairs.find(([name]) => !(method === 'PUT' && name === 'ttl'));
  if (unknown !== undefined) {
    return badRequest(`unknown query parameter ${JSON.stringify(truncate(unknown[0] ?? ''))}; /v1/kv/<key> takes ?ttl=SECONDS on PUT and nothing else`);
  }
  if (pairs.length > 1) return badRequest('?ttl is given more than once');
  const text = pairs[0]![1] ?? '';
  const seconds = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= 1 && seconds <= TTL_SECONDS_MAX)) {
    return { status: 400, code: ErrorCode.BAD_EXPIRY, message: `?ttl must be a whole number of seconds from 1 to ${TTL_SECONDS_MAX}, got ${JSON.stringify(truncate(text))}` };
  }
  return seconds * 1000;
}

function notAllowed(method: string, allow: string): RouteRefusal {
  return { status: 405, code: ErrorCode.METHOD_NOT_ALLOWED, message: `${truncate(method)} is not allowed here; this route takes ${allow}`, headers: { allow } };
}

function badRequest(message: string): RouteRefusal {
  return { status: 400, code: ErrorCode.BAD_REQUEST, message };
}

/** Long paths are quoted only in part: an error message must not echo a 64 KiB request line. */
function truncate(text: string, chars_max = 100): string {
  return text.length <= chars_max ? text : `${text.slice(0, chars_max)}...`;
}

/**
 * Percent-decodes a path segment to bytes; null when a '%' is not followed by two hex digits.
 * Node hands over the request target as one char per byte (latin1) for anything not ASCII, so
 * raw UTF-8 in the path comes back as its bytes.
 */
export function percentDecode(text: string): Buffer | null {
  const raw = Buffer.from(text, 'latin1');
  if (!raw.includes(0x25)) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== 0x25) {
      out[length++] = byte;
      continue;
    }
    const high = hexValue(raw[i + 1]);
    const low = hexValue(raw[i + 2]);
    if (high < 0 || low < 0) return null;
    out[length++] = (high << 4) | low;
    i += 2;
  }
  return out.subarray(0, length);
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

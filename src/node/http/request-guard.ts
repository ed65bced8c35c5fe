/**
 * Who may use the HTTP API, checked on the headers before any body is read: the Host and
 * Origin checks that keep web pages out, the bearer token, and the rule against "simple"
 * cross-site writes. docs/PROTOCOL.md, "HTTP", explains each; in short:
 *
 * - Host must name this node (node-names.ts), else 421: with DNS rebinding a page's own
 *   name resolves to the node, and the browser then lets the page read the answers; only the
 *   Host header still shows the page's name.
 * - An Origin header, which browsers send with cross-origin requests and every write, must be
 *   this node's own, else 403. pikv serves no pages, so any other origin is a foreign page.
 * - With a client token, every route but /v1/health and the dashboard's files needs
 *   `Authorization: Bearer <token>` (401): /metrics, /v1/summary, /v1/cluster and /v1/events
 *   too, as the node's stats are behind the token on every protocol. The health check stays
 *   open for load balancers; it tells only node id, epoch and whether the node serves. The
 *   dashboard's files (/, /dashboard/*) are the same code in every install and hold no data:
 *   the page asks for the token and sends it with its own requests.
 * - A write (PUT, DELETE, POST) needs Content-Type application/json or application/cbor, or
 *   the token (403). A page can send a POST with a form or text/plain body to any address
 *   without asking first; a JSON or CBOR content type, or an Authorization header, makes the
 *   browser ask (a CORS preflight), and the node never says yes: it sends no CORS headers.
 */
import type { IncomingMessage } from 'node:http';
import { equalText } from '../../protocol/auth.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { NodeNames } from './node-names.js';
import type { ErrorReply } from './replies.js';
import { WRITE_METHODS, type Route } from './routes.js';

/** Body types that make a browser preflight a cross-origin request (not CORS-safelisted). */
const WRITE_CONTENT_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/cbor']);

export interface GuardSettings {
  names: NodeNames;
  /** '' when the node has no client token. */
  client_token: string;
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The media type of a Content-Type header, lower case, without parameters ('' when absent). */
export function mediaTypeOf(request: IncomingMessage): string {
  const value = header(request, 'content-type') ?? '';
  const semicolon = value.indexOf(';');
  return (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
}

/** Host and Origin: checked first, for every request, so nothing else is revealed to a foreign page. */
export function checkSite(request: IncomingMessage, settings: GuardSettings): ErrorReply | null {
  // HTTP/1.1 without Host never gets here (Node answers 400); HTTP/1.0 may omit it, and
  // browsers never do, so a missing Host is not a page.
  const host = header(request, 'host');
  if (host !== undefined && !settings.names.acceptsHost(host)) {
    return {
      status: 421, code: ErrorCode.BAD_HOST,
      message: `Host ${JSON.stringify(host.slice(0, 100))} is not a name of this node; use one of ${settings.names.describe()}`,
    };
  }
  const origin = header(request, 'origin');
  if (origin !== undefined && !settings.names.acceptsOrigin(origin)) {
    return { status: 403, code: ErrorCode.CROSS_SITE, message: `requests from the web page ${JSON.stringify(origin.slice(0, 100))} are refused (Origin is not this node)` };
  }
  return null;
}

/** True if the request carries the node's token as `Authorization: Bearer <token>`. */
export function hasToken(request: IncomingMessage, client_token: string): boolean {
  if (client_token === '') return false;
  // The token is whatever its file holds (trimmed), so anything after the scheme is compared.
  const match = /^bearer +(.+?) *$/i.exec(header(request, 'authorization') ?? '');
  return match !== null && equalText(match[1]!, client_token);
}

/** Token and cross-site write rule, once the route is known. */
export function checkAccess(request: IncomingMessage, route: Route, settings: GuardSettings): ErrorReply | null {
  const token_ok = hasToken(request, settings.client_token);
  if (settings.client_token !== '' && !token_ok && route.kind !== 'health' && route.kind !== 'asset') {
    const sent = header(request, 'authorization') !== undefined;
    return {
      status: 401, code: ErrorCode.AUTH_FAILED,
      message: sent ? 'wrong client token (send Authorization: Bearer <token>)' : 'this node needs its client token: send Authorization: Bearer <token>',
      headers: { 'www-authenticate': 'Bearer realm="pikv"' },
    };
  }
  if (WRITE_METHODS.has(request.method ?? '') && !token_ok && !WRITE_CONTENT_TYPES.has(mediaTypeOf(request))) {
    return {
      status: 403, code: ErrorCode.CROSS_SITE,
      message: 'a write needs Content-Type: application/json or application/cbor, or the bearer token, so that a web page cannot send it (the body is stored as is whatever its type)',
    };
  }
  return null;
}

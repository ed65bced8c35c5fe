/**
 * Authentication of peer links, admin ops and (optionally) clients, on the node's one port.
 *
 * A peer or admin connection sends `x-pikv-cluster-auth: <unix ms>.<nonce>.<hmac>` with its
 * WebSocket upgrade, where hmac = HMAC-SHA256(secret, "<unix ms>.<nonce>") in hex. The secret
 * itself never crosses the wire; a header older or newer than AUTH_SKEW_MS is refused, which
 * bounds (but does not prevent) replay of a captured header on a network without TLS.
 * A client presents the optional client token as `x-pikv-client-token`. Either failure closes
 * the socket with 4401 AUTH_FAILED and logs the attempt (server.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const AUTH_HEADER = 'x-pikv-cluster-auth';
export const CLIENT_TOKEN_HEADER = 'x-pikv-client-token';
/** WebSocket close code for a refused secret or token (4000-4999: application codes). */
export const CLOSE_AUTH_FAILED = 4401;
export const AUTH_FAILED_REASON = 'AUTH_FAILED';
/** Clocks of boards without RTC drift; a minute is generous for NTP-synced ones. */
export const AUTH_SKEW_MS = 60_000;

export type ConnectionRole = 'client' | 'peer';

function hmac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('hex');
}

/** The header value a peer or admin sends. */
export function peerAuthHeader(secret: string, now_ms = Date.now()): string {
  const message = `${now_ms}.${randomBytes(8).toString('hex')}`;
  return `${message}.${hmac(secret, message)}`;
}

function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function checkPeerAuth(header: string, secret: string, now_ms = Date.now()): boolean {
  const parts = header.split('.');
  if (parts.length !== 3 || secret === '') return false;
  const sent_ms = Number(parts[0]);
  if (!Number.isFinite(sent_ms) || Math.abs(now_ms - sent_ms) > AUTH_SKEW_MS) return false;
  return equalText(parts[2]!, hmac(secret, `${parts[0]}.${parts[1]}`));
}

export interface AuthSettings {
  /** Empty: no peer or admin connection is accepted. */
  cluster_secret: string;
  /** Empty: clients need no token. */
  client_token: string;
}

/** The role of a new connection, or a reason to refuse it. */
export function authenticate(request: IncomingMessage, settings: AuthSettings): { role: ConnectionRole } | { refused: string } {
  const peer = request.headers[AUTH_HEADER];
  if (typeof peer === 'string') {
    if (checkPeerAuth(peer, settings.cluster_secret)) return { role: 'peer' };
    return { refused: settings.cluster_secret === '' ? 'peer connection to a node without a cluster secret' : 'wrong cluster secret or clock skew' };
  }
  if (settings.client_token === '') return { role: 'client' };
  const token = request.headers[CLIENT_TOKEN_HEADER];
  if (typeof token === 'string' && equalText(token, settings.client_token)) return { role: 'client' };
  return { refused: typeof token === 'string' ? 'wrong client token' : 'missing client token' };
}

/**
 * Authentication of peer links, admin ops and (optionally) clients, on the node's one port.
 *
 * Peers and admin tools run a mutual challenge-response bound to the connection, with no
 * round trip beyond the WebSocket upgrade (docs/PROTOCOL.md, "Authentication"):
 *
 *   1. upgrade request   x-pikv-peer-version: 2, x-pikv-peer-id: <client id>, x-pikv-peer-nonce: Nc,
 *                        x-pikv-peer-channel: data | control
 *   2. 101 response      x-pikv-peer-version: 2, x-pikv-peer-id: <server id>, x-pikv-peer-nonce: Ns,
 *                        x-pikv-peer-proof: HMAC(secret, "server" | v | Nc | Ns | server id | client id | channel)
 *   3. first frame (text, client to server): HMAC(secret, "client" | v | Ns | Nc | client id | server id | channel)
 *
 * Nc and Ns are 16 fresh random bytes per connection, so a proof captured on one connection is
 * worth nothing on another; the "server"/"client" labels keep either side from being used as
 * an oracle for the other's proof. Both proofs cover the channel (docs/CLUSTER.md, "Peer
 * links"): a relay that rewrites a data connection's channel header to open a control channel
 * (which the node never pauses for bulk data) breaks both proofs. The client checks step 2 before the socket is handed to the
 * WebSocket parser, so nothing a server without the secret sends is ever read; the server
 * reads nothing but step 3 until it has checked it (server.ts). The secret never crosses the
 * wire. Without TLS an on-path attacker can still read and alter traffic after the handshake.
 *
 * A client presents the optional client token as `x-pikv-client-token`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, PikvError } from './errors.js';

/** Bumped whenever the handshake or the peer ops change incompatibly; both proofs cover it. */
export const PEER_PROTOCOL_VERSION = 2;
export const PEER_VERSION_HEADER = 'x-pikv-peer-version';
export const PEER_ID_HEADER = 'x-pikv-peer-id';
export const PEER_NONCE_HEADER = 'x-pikv-peer-nonce';
export const PEER_PROOF_HEADER = 'x-pikv-peer-proof';
export const PEER_CHANNEL_HEADER = 'x-pikv-peer-channel';
/**
 * Each pair of nodes talks over two connections (docs/CLUSTER.md, "Peer links"): 'data' carries
 * forwarded ops, replication and data-move frames; 'control' carries heartbeats and the small
 * membership ops, so they never wait behind bulk data. Admin tools use 'data'.
 */
export const PEER_CHANNELS = ['data', 'control'] as const;
export type PeerChannel = (typeof PEER_CHANNELS)[number];
/** A refused handshake names its stable code here (the HTTP status line says it too). */
export const ERROR_HEADER = 'x-pikv-error';
/** The replayable header of pikv before peer protocol version 1; refused with PEER_VERSION_MISMATCH. */
export const LEGACY_AUTH_HEADER = 'x-pikv-cluster-auth';
export const CLIENT_TOKEN_HEADER = 'x-pikv-client-token';
/** WebSocket close code for a refused proof (4000-4999: application codes). */
export const CLOSE_AUTH_FAILED = 4401;
export const AUTH_FAILED_REASON = 'AUTH_FAILED';
export const PEER_AUTH_FAILED = 'PEER_AUTH_FAILED';
export const PEER_VERSION_MISMATCH = 'PEER_VERSION_MISMATCH';
const NONCE_BYTES = 16;
const NONCE_PATTERN = /^[0-9a-f]{32}$/;
/** Node ids in views are at most 128 characters (routing/view.ts); admin tools use "admin". */
const PEER_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;
const PROOF_LABEL = 'pikv-peer-proof';

export type ConnectionRole = 'client' | 'peer';

function hmac(secret: string, fields: readonly (string | number)[]): string {
  // Newline-separated: no field can hold a newline (ids are printable ASCII, nonces hex).
  return createHmac('sha256', secret).update([PROOF_LABEL, ...fields].join('\n')).digest('hex');
}

function serverProof(secret: string, version: number, client_nonce: string, server_nonce: string, server_id: string, client_id: string, channel: PeerChannel): string {
  return hmac(secret, ['server', version, client_nonce, server_nonce, server_id, client_id, channel]);
}

/** The client's proof (step 3). Exported for the tests that play a relay rewriting the channel. */
export function clientProof(secret: string, version: number, server_nonce: string, client_nonce: string, client_id: string, server_id: string, channel: PeerChannel): string {
  return hmac(secret, ['client', version, server_nonce, client_nonce, client_id, server_id, channel]);
}

function isPeerChannel(value: string | undefined): value is PeerChannel {
  return (PEER_CHANNELS as readonly (string | undefined)[]).includes(value);
}

/** Compares two secrets in time that does not depend on where they differ. */
export function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function header(message: IncomingMessage, name: string): string | undefined {
  const value = message.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

// ---- client side (peer links, join, admin CLI) ----

export interface PeerIdentity {
  secret: string;
  /** This side's node id ("admin" for the CLI). */
  node_id: string;
  /** The node id the server must answer as; omitted when unknown (a join seed, the CLI's --url). */
  server_id?: string;
  /** Which of the pair's connections this is; 'data' when omitted. */
  channel?: PeerChannel;
}

/**
 * One connection attempt's half of the handshake: the upgrade headers, then the check of the
 * 101 response, which yields the proof to send as the first frame.
 */
export class PeerHandshake {
  readonly headers: Record<string, string>;
  private readonly identity: PeerIdentity;
  private readonly client_nonce = randomBytes(NONCE_BYTES).toString('hex');
  readonly channel: PeerChannel;

  constructor(identity: PeerIdentity) {
    if (identity.secret === '') throw new PikvError(ErrorCode.PEER_AUTH_FAILED, 'a peer connection needs the cluster secret');
    this.identity = identity;
    this.channel = identity.channel ?? 'data';
    this.headers = {
      [PEER_VERSION_HEADER]: String(PEER_PROTOCOL_VERSION),
      [PEER_ID_HEADER]: identity.node_id,
      [PEER_NONCE_HEADER]: this.client_nonce,
      [PEER_CHANNEL_HEADER]: this.channel,
    };
  }

  /**
   * Checks that the server proved the secret for this connection; returns the client proof.
   * Throws PEER_VERSION_MISMATCH or PEER_AUTH_FAILED; the caller must then drop the socket unread.
   */
  accept(response: IncomingMessage, url: string): string {
    const version = header(response, PEER_VERSION_HEADER);
    const proof = header(response, PEER_PROOF_HEADER);
    const server_id = header(response, PEER_ID_HEADER) ?? '';
    const server_nonce = header(response, PEER_NONCE_HEADER) ?? '';
    if (version === undefined && proof === undefined) {
      throw new PikvError(ErrorCode.PEER_AUTH_FAILED, `${url} answered without a peer proof: not a pikv node with the cluster secret (or a pikv from before peer protocol 1)`);
    }
    if (version !== String(PEER_PROTOCOL_VERSION)) {
      throw new PikvError(ErrorCode.PEER_VERSION_MISMATCH, `${url} speaks peer protocol ${version ?? 'none'}, this node ${PEER_PROTOCOL_VERSION}`);
    }
    if (proof === undefined || !NONCE_PATTERN.test(server_nonce) || !PEER_ID_PATTERN.test(server_id)) {
      throw new PikvError(ErrorCode.PEER_AUTH_FAILED, `${url} sent an incomplete peer handshake`);
    }
    const expected = serverProof(this.identity.secret, PEER_PROTOCOL_VERSION, this.client_nonce, server_nonce, server_id, this.identity.node_id, this.channel);
    // A server proof over another channel (a relay rewrote our channel header) fails here too.
    if (!equalText(proof, expected)) throw new PikvError(ErrorCode.PEER_AUTH_FAILED, `${url} could not prove the cluster secret for this ${this.channel} connection (not a member, its secret differs from ours, or the handshake was altered)`);
    if (this.identity.server_id !== undefined && server_id !== this.identity.server_id) {
      // It holds the secret, but is another member than the one this link is for (moved addresses).
      throw new PikvError(ErrorCode.PEER_AUTH_FAILED, `${url} answered as node "${server_id}", expected "${this.identity.server_id}"`);
    }
    return clientProof(this.identity.secret, PEER_PROTOCOL_VERSION, server_nonce, this.client_nonce, this.identity.node_id, server_id, this.channel);
  }
}

// ---- server side ----

export interface AuthSettings {
  /** Empty: no peer or admin connection is accepted. */
  cluster_secret: string;
  /** This node's id, proved to connecting peers; empty on a node without a cluster. */
  node_id: string;
  /** Empty: clients need no token. */
  client_token: string;
}

/** A peer connection that has been sent the server proof and owes its client proof. */
export interface PeerChallenge {
  client_id: string;
  /** The channel the client asked for; both proofs cover it. */
  channel: PeerChannel;
  /** Header lines to add to the 101 response (WebSocketServer 'headers' event). */
  response_headers: string[];
  expected_proof: string;
}

export type AuthResult =
  | { role: 'client' }
  | { role: 'peer'; challenge: PeerChallenge }
  /** http_status and code go into the refusal; reason is for the log only. */
  | { refused: string; code: string; http_status: number };

/** The role of a new connection, or a reason to refuse it. */
export function authenticate(request: IncomingMessage, settings: AuthSettings): AuthResult {
  const version = header(request, PEER_VERSION_HEADER);
  if (version === undefined && header(request, LEGACY_AUTH_HEADER) !== undefined) {
    return { refused: `old peer handshake (${LEGACY_AUTH_HEADER}, before peer protocol 1); upgrade every node to peer protocol ${PEER_PROTOCOL_VERSION}`, code: PEER_VERSION_MISMATCH, http_status: 400 };
  }
  if (version !== undefined) return challengePeer(request, version, settings);
  if (settings.client_token === '') return { role: 'client' };
  const token = header(request, CLIENT_TOKEN_HEADER);
  if (token !== undefined && equalText(token, settings.client_token)) return { role: 'client' };
  return { refused: token !== undefined ? 'wrong client token' : 'missing client token', code: AUTH_FAILED_REASON, http_status: 401 };
}

function challengePeer(request: IncomingMessage, version: string, settings: AuthSettings): AuthResult {
  if (version !== String(PEER_PROTOCOL_VERSION)) {
    return { refused: `peer protocol ${JSON.stringify(version).slice(0, 20)}, this node speaks ${PEER_PROTOCOL_VERSION}`, code: PEER_VERSION_MISMATCH, http_status: 400 };
  }
  if (settings.cluster_secret === '') return { refused: 'peer connection to a node without a cluster secret', code: AUTH_FAILED_REASON, http_status: 401 };
  const client_id = header(request, PEER_ID_HEADER) ?? '';
  const client_nonce = header(request, PEER_NONCE_HEADER) ?? '';
  const channel = header(request, PEER_CHANNEL_HEADER);
  if (!PEER_ID_PATTERN.test(client_id) || !NONCE_PATTERN.test(client_nonce)) {
    return { refused: 'malformed peer handshake (id or nonce)', code: PEER_AUTH_FAILED, http_status: 401 };
  }
  if (!isPeerChannel(channel)) {
    return { refused: `malformed peer handshake: ${PEER_CHANNEL_HEADER} must be ${PEER_CHANNELS.join(' or ')}`, code: PEER_AUTH_FAILED, http_status: 401 };
  }
  const server_nonce = randomBytes(NONCE_BYTES).toString('hex');
  const proof = serverProof(settings.cluster_secret, PEER_PROTOCOL_VERSION, client_nonce, server_nonce, settings.node_id, client_id, channel);
  return {
    role: 'peer',
    challenge: {
      client_id,
      channel,
      response_headers: [
        `${PEER_VERSION_HEADER}: ${PEER_PROTOCOL_VERSION}`,
        `${PEER_ID_HEADER}: ${settings.node_id}`,
        `${PEER_NONCE_HEADER}: ${server_nonce}`,
        `${PEER_PROOF_HEADER}: ${proof}`,
      ],
      expected_proof: clientProof(settings.cluster_secret, PEER_PROTOCOL_VERSION, server_nonce, client_nonce, client_id, settings.node_id, channel),
    },
  };
}

/** True if `frame`, the first frame of a challenged peer connection, is its client proof. */
export function checkClientProof(challenge: PeerChallenge, frame: Buffer, is_binary: boolean): boolean {
  return !is_binary && frame.length === challenge.expected_proof.length && equalText(frame.toString('latin1'), challenge.expected_proof);
}

// ---- where secrets come from ----

/**
 * Reads a secret or token file: the content trimmed (a trailing newline from `echo` is not
 * part of it), never empty. Warns when others than the owner may read it, since anyone
 * holding the cluster secret can rewrite the membership.
 */
export function readSecretFile(path: string, what: string, warn: (message: string) => void): string {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SecretError(`cannot read the ${what} file ${path}: ${(error as Error).message}`);
  }
  const secret = text.trim();
  if (secret === '') throw new SecretError(`the ${what} file ${path} is empty`);
  if ((mode & 0o077) !== 0) warn(`the ${what} file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  return secret;
}

export class SecretError extends Error {
  readonly code = 'BAD_CONFIG';
}

/**
 * What a client can be told when it connects (connect()), and the defaults it gets otherwise.
 * Kept apart from the connection itself (client.ts), which only reads the merged result.
 */
import type { PeerIdentity } from '../protocol/auth.js';

export interface ClientOptions {
  connect_timeout_ms?: number;
  request_timeout_ms?: number;
  /** Ops per frame when auto-batching or splitting a large batch(); the server's default limit is 65,536. */
  batch_ops_max?: number;
  /** Ops queued or in flight before further calls reject with CLIENT_OVERLOADED. */
  pending_ops_max?: number;
  /** The node's client token, if it requires one (sent as the x-pikv-client-token header). */
  token?: string;
  /** Extra headers for the WebSocket upgrade. */
  headers?: Record<string, string>;
  /**
   * Connect as a cluster peer or admin tool: run the mutual handshake of src/protocol/auth.ts.
   * The node must prove the cluster secret before anything it sends is read.
   */
  peer?: PeerIdentity | null;
  /**
   * Ask the node to ping this connection every keepalive_ms (0 = no keepalive). The node
   * closes a connection that misses a pong, so a vanished client frees its slot; the client
   * answers pings by itself.
   */
  keepalive_ms?: number;
  /**
   * On a request timeout, tear the whole connection down (TCP reset) instead of failing just
   * that request. Cluster peer links use it: the node discards what it had not read of a reset
   * connection, so a frame the sender gave up on cannot be applied after the sender has moved
   * on over a new connection (a late old write over a newer one).
   */
  reset_on_timeout?: boolean;
  /**
   * PEM certificate(s) to trust for wss:// URLs (a cluster's own CA); empty: the system's
   * trusted CAs. A certificate that does not verify fails the connection.
   */
  ca?: string | Buffer;
  /**
   * PUT values of at least this many bytes are compressed before they are sent, in a pool of
   * compress_threads threads, and stored compressed if that saves at least an eighth
   * (docs/PROTOCOL.md, "Value compression"). 0 = never compress. Default 4096. Reads always
   * decode compressed values, whatever this says.
   */
  compress_min_bytes?: number;
  /** Threads of the compression pool (started on first use). Default: cores - 1, at least 1. */
  compress_threads?: number;
  /**
   * Mask frames with a random key, as RFC 6455 asks of clients (default false: a zero key).
   * Masking exists so that script in a browser cannot craft bytes that an intermediary would
   * misread; a Node client's caller already chooses every byte it sends, so the mask protects
   * nothing here, and with a random key ws copies and XORs every frame (a 1 MiB PUT: one more
   * 1 MiB copy). A zero key is still a valid masked frame: ws skips the copy and the node's
   * unmasking leaves the bytes as they are. Set true for a proxy that checks mask keys.
   */
  random_mask?: boolean;
}

export const DEFAULTS: Required<ClientOptions> = {
  connect_timeout_ms: 5_000,
  request_timeout_ms: 30_000,
  batch_ops_max: 8_192,
  pending_ops_max: 4_000_000,
  token: '',
  headers: {},
  peer: null,
  keepalive_ms: 0,
  reset_on_timeout: false,
  ca: '',
  compress_min_bytes: 4096,
  compress_threads: 0, // 0: defaultCompressThreads(), decided when the client is made
  random_mask: false,
};

/**
 * A pikv node: an HTTP server whose sockets upgrade to WebSocket or speak the HTTP API
 * (http/), the partitions, and shutdown.
 *
 * Threads: this (main) thread parses frames, routes ops and answers; each partition's worker
 * thread owns one hash table. See docs/ARCHITECTURE.md for the data path of one batch.
 */
import { ClockWatch, type ClockMode } from './clock.js';
import { ConfigError } from './config.js';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { PersistenceOptions } from '../persistence/options.js';
import { describeRecovery, recoverNode } from '../persistence/recovery.js';
import { WireCodec } from '../protocol/codec.js';
import { authenticate, checkClientProof, CLOSE_AUTH_FAILED, ERROR_HEADER, PEER_AUTH_FAILED, PEER_PROTOCOL_VERSION, PEER_VERSION_HEADER, type AuthSettings, type PeerChallenge, type PeerChannel } from '../protocol/auth.js';
import type { ClusterConfig } from '../cluster/cluster-config.js';
import { ClusterNode } from '../cluster/cluster-node.js';
import { Keyspace } from './keyspace.js';
import { ErrorCode } from '../protocol/errors.js';
import type { ServerConfig } from './config.js';
import { Connection, type ConnectionHost } from './connection.js';
import type { ServedConnection } from './request-budget.js';
import { RespListener, type RespNode } from './resp/resp-listener.js';
import { HttpFront, httpServerOptions, type HttpNode } from './http/http-front.js';
import { NodeNames } from './http/node-names.js';
import { Dispatcher } from './dispatcher.js';
import { CodecPool } from './codec-pool.js';
import { Partition, type Logger } from '../engine/partition.js';
import { collectStats, type NodeStats } from './stats.js';
import { RequestMetrics } from './metrics/request-metrics.js';
import { Observe } from './observe/observe.js';
import type { ClusterStatus } from '../cluster/cluster-status.js';
import type { ConnectionProtocol } from './request-budget.js';
import { FramePool } from './frame-pool.js';

/** Cluster settings for a node (src/cluster/); all optional: a lone node needs none. */
export interface ClusterOptions {
  config?: ClusterConfig | null;
  /** Clients must send this token (x-pikv-client-token); works without a cluster too. */
  client_token?: string;
  /** Called once this node has left the cluster (after handing off its keys). */
  onLeft?: () => void;
}

/** WebSocket close codes (RFC 6455). */
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TRY_AGAIN_LATER = 1013;
const SHUTDOWN_POLL_MS = 10;
/** A refused peer that does not finish the closing handshake by then is torn down. */
const CLOSE_GRACE_MS = 1_000;
/** Large response frames kept for reuse, across connections (frame-pool.ts). */
const FRAME_POOL_KEPT_BYTES_MAX = 16 * 1024 * 1024;
/** The timer sweep runs at least this often, and at most every SWEEP_MS_MIN. */
const SWEEP_MS_MAX = 1_000;
const SWEEP_MS_MIN = 25;
/** The keepalive a client may ask for (x-pikv-keepalive-ms) is clamped to this range. */
const KEEPALIVE_MS_MIN = 100;
const KEEPALIVE_MS_MAX = 3_600_000;
export const KEEPALIVE_HEADER = 'x-pikv-keepalive-ms';

export class PikvServer implements ConnectionHost, RespNode, HttpNode {
  readonly config: ServerConfig;
  readonly codec = new WireCodec();
  readonly frame_pool = new FramePool(FRAME_POOL_KEPT_BYTES_MAX);
  readonly dispatcher: Dispatcher;
  /**
   * Decodes compressed values for clients that did not announce the codec (docs/PROTOCOL.md,
   * "Value compression"), and deflates snapshot records for compactions (docs/PERSISTENCE.md).
   */
  readonly codec_pool = new CodecPool(1);
  readonly partitions: Partition[];
  /** Whether this node's clock may decide expiries (node/clock.ts). */
  readonly clock: ClockWatch;
  inflight_bytes = 0;
  shutting_down = false;
  readonly started_ms = Date.now();
  private readonly http: HttpServer;
  /** True when the port serves wss:// (tls_cert_file and tls_key_file). */
  private readonly tls: boolean;
  private readonly wss: WebSocketServer;
  /** Every open client connection, WebSocket, RESP or HTTP: connections_max counts them together. */
  private readonly connections = new Set<ServedConnection>();
  /**
   * Sockets that have not yet upgraded to WebSocket nor sent a plain HTTP request, with when
   * they connected; closed past handshake_timeout_ms. Keyed by the connection's addresses and
   * ports (socketKey), not by socket: with TLS, requests come on a TLS socket that wraps the
   * TCP socket seen here, and keyed by socket a wss:// connection was never taken out of this
   * map, so the sweep closed every one of them after handshake_timeout_ms.
   */
  private readonly handshaking = new Map<string, { socket: Socket; since_ms: number }>();
  /** Open sockets per remote address, when connections_per_ip_max is set. */
  private readonly sockets_per_ip = new Map<string, number>();
  private sweep_timer: NodeJS.Timeout | null = null;
  private readonly paused = new Set<ServedConnection>();
  /** The RESP2 (Redis protocol) front end (resp/); null when resp_port is off. */
  private readonly resp: RespListener | null;
  /** The HTTP API on this port (http/). */
  private readonly http_front: HttpFront;
  /** How often time limits are checked (sweep), from the shortest of them. */
  private readonly sweep_ms: number;
  private readonly logger: Logger;
  /** Null without --data-dir: then nothing is read or written on disk. */
  private readonly persistence: PersistenceOptions | null;
  private stopped: Promise<void> | null = null;
  /** Membership, peer links and routing (src/cluster/); a one-node view without cluster settings. */
  readonly cluster: ClusterNode;
  /** The whole store's keys, for RESP SCAN, KEYS, DBSIZE and FLUSHALL. */
  readonly keyspace: Keyspace;
  /** /metrics, the dashboard and its data (src/node/observe/). */
  readonly observe: Observe;
  private readonly auth: AuthSettings;
  /** This node's names and addresses: the HTTP API's Host check, and the Origin check of both (http/node-names.ts). */
  private readonly names: NodeNames;
  /** Peer challenges issued in the handshake (verifyClient), answered in the first frame. */
  private readonly peer_challenges = new WeakMap<IncomingMessage, PeerChallenge>();
  /**
   * The newest connection of each peer id and channel (Connection.fenced): older ones apply no
   * data op. Per channel: a peer holds a data and a control connection at once (docs/CLUSTER.md,
   * "Peer links"), and opening one must not fence the other.
   */
  private readonly latest_peer_connection = new Map<string, number>();
  private peer_connections_opened = 0;
  /** Peer sockets past the upgrade that have not yet sent their proof; closed on stop. */
  private readonly proving = new Set<WebSocket>();

  constructor(config: ServerConfig, logger: Logger = (message) => console.error(`pikv: ${message}`), cluster: ClusterOptions = {}) {
    this.config = config;
    this.logger = logger;
    const table_bytes = Math.floor(config.memory_bytes_max / config.workers / 8) * 8;
    this.partitions = [];
    this.persistence = config.data_dir === '' ? null
      : {
        data_dir: config.data_dir, fsync: config.fsync, compact_min_bytes: config.compact_min_bytes, snapshot_compress: config.snapshot_compress === 'on', workers: config.workers,
        test_abort_write_failures: config.test_hooks ? Number(process.env['PIKV_TEST_ABORT_WRITE_FAILURES'] ?? 0) : 0,
      };
    for (let i = 0; i < config.workers; i++) this.partitions.push(new Partition(i, table_bytes, config.response_bytes_max, logger, this.persistence, this.codec_pool));
    this.cluster = new ClusterNode(cluster.config ?? null, this.partitions, logger, () => this.url, cluster.onLeft ?? (() => {}));
    // In a cluster only a key's primary may decide that it expired (docs/REPLICATION.md, "Expiry").
    for (const partition of this.partitions) partition.expire_locally = !this.cluster.routes;
    this.clock = new ClockWatch(config.clock_sync as ClockMode);
    this.auth = {
      cluster_secret: cluster.config?.cluster_secret ?? '',
      node_id: cluster.config?.node_id ?? '',
      client_token: cluster.client_token ?? cluster.config?.client_token ?? '',
    };
    const request_metrics = config.metrics === 'on' ? new RequestMetrics() : null;
    this.dispatcher = new Dispatcher(this.partitions, config, () => this.codec.encodeValue(this.stats()), this.cluster, request_metrics, this.clock);
    this.dispatcher.value_decoder = this.codec_pool;
    this.keyspace = new Keyspace({ keys: this.cluster.keys, submit: (batch, frame_bytes, done) => this.dispatcher.submit(batch, frame_bytes, done) });
    this.observe = new Observe(this, request_metrics, { client_token: this.auth.client_token, tls_ca: cluster.config?.tls_ca ?? '', formation_status_file: cluster.config?.formation_status_file ?? '' });
    const timeouts_ms = [config.handshake_timeout_ms, config.frame_timeout_ms, config.slow_client_timeout_ms];
    if (config.idle_timeout_ms > 0) timeouts_ms.push(config.idle_timeout_ms);
    this.sweep_ms = Math.max(SWEEP_MS_MIN, Math.min(SWEEP_MS_MAX, Math.floor(Math.min(...timeouts_ms) / 4)));
    // With a certificate the same port serves wss:// (and https, the HTTP API too): peers and
    // clients crossing an untrusted network verify it against their --tls-ca.
    this.tls = config.tls_cert_file !== '';
    const options = httpServerOptions(config, this.sweep_ms);
    this.http = this.tls
      ? createHttpsServer({ ...options, cert: readTlsFile(config.tls_cert_file, 'certificate'), key: readTlsFile(config.tls_key_file, 'private key') })
      : createServer(options);
    this.http.on('connection', (socket: Socket) => this.onSocket(socket));
    this.names = new NodeNames(config.host, () => cluster.config?.advertise ?? '');
    this.http_front = new HttpFront(this, { names: this.names, client_token: this.auth.client_token });
    this.http_front.attach(this.http);
    this.wss = new WebSocketServer({ server: this.http, maxPayload: config.frame_bytes_max, perMessageDeflate: false, clientTracking: false,
      verifyClient: (info: { req: IncomingMessage }, callback: (ok: boolean, code?: number, message?: string) => void) => this.verifyClient(info.req, callback),
    });
    // The server's half of the peer handshake rides on the 101 response (src/protocol/auth.ts).
    this.wss.on('headers', (headers: string[], request: IncomingMessage) => {
      const challenge = this.peer_challenges.get(request);
      if (challenge !== undefined) headers.push(...challenge.response_headers);
    });
    this.wss.on('connection', (ws, request) => this.onConnection(ws, request));
    this.resp = config.resp_port === null ? null : new RespListener(this, this.auth.client_token);
  }

  /** Starts the workers and listens; resolves with the ws:// URL once accepting connections. */
  async start(): Promise<string> {
    if (this.persistence !== null) {
      // Before any worker starts: recovery fills the tables the workers will own (src/persistence/recovery.ts).
      const report = recoverNode(this.persistence, this.config.repair, this.partitions.map((p) => p.table), this.partitions.map((p) => p.counters));
      for (const line of describeRecovery(report)) this.log(line);
    }
    this.clock.start();
    for (const partition of this.partitions) partition.start();
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    await this.resp?.listen(this.config.host, this.config.resp_port!, this.config.resp_port_explicit);
    this.cluster.start();
    this.observe.start();
    this.sweep_timer = setInterval(() => this.sweep(), this.sweep_ms);
    this.sweep_timer.unref();
    return this.url;
  }

  /**
   * Every raw TCP socket, before any HTTP: enforces the per-address limit and bounds the number
   * of sockets still handshaking, so slow or half-open handshakes cannot hold the node's sockets.
   */
  private onSocket(socket: Socket): void {
    const address = socket.remoteAddress ?? '?';
    if (!this.admitAddress(socket)) return;
    if (this.handshaking.size >= this.config.connections_max) {
      this.log(`refused a socket from ${address}: ${this.handshaking.size} handshakes already pending`);
      socket.destroy();
      return;
    }
    const key = socketKey(socket);
    this.handshaking.set(key, { socket, since_ms: Date.now() });
    socket.once('close', () => this.handshaking.delete(key));
  }

  /**
   * Counts a new socket (WebSocket or RESP) against connections_per_ip_max; destroys it and
   * returns false past the limit.
   */
  admitAddress(socket: Socket): boolean {
    if (this.config.connections_per_ip_max <= 0) return true;
    const address = socket.remoteAddress ?? '?';
    const count = this.sockets_per_ip.get(address) ?? 0;
    if (count >= this.config.connections_per_ip_max) {
      this.log(`refused a socket from ${address}: over connections_per_ip_max (${this.config.connections_per_ip_max})`);
      socket.destroy();
      return false;
    }
    this.sockets_per_ip.set(address, count + 1);
    socket.once('close', () => {
      const left = (this.sockets_per_ip.get(address) ?? 1) - 1;
      if (left <= 0) this.sockets_per_ip.delete(address);
      else this.sockets_per_ip.set(address, left);
    });
    return true;
  }

  /** The socket sent a plain HTTP request: the HTTP API serves it from now on (http/). */
  handshakeDone(socket: Socket): void {
    this.handshaking.delete(socketKey(socket));
  }

  /** False when connections_max client connections (WebSocket, RESP and HTTP together) are open. */
  hasRoomForConnection(): boolean {
    return this.connections.size < this.config.connections_max;
  }

  /** Adds a served connection (the RESP listener's); removeConnection() when its socket closes. */
  addConnection(connection: ServedConnection): void {
    this.connections.add(connection);
  }

  removeConnection(connection: ServedConnection): void {
    this.connections.delete(connection);
    this.paused.delete(connection);
  }

  /** True in a cluster: ops may be routed to other nodes (RESP's INFO says so). */
  get clustered(): boolean {
    return this.cluster.routes;
  }

  /** Keys held in this node's partitions (RESP's DBSIZE). */
  keyCount(): number {
    let keys = 0;
    for (const partition of this.partitions) keys += partition.table.stats().keys;
    return keys;
  }

  /** The RESP listener's host:port, or null when it is off or its default port was taken. */
  get resp_address(): string | null {
    return this.resp?.address ?? null;
  }

  /** Closes sockets and connections past their time limits (handshake, frame, slow reader, idle). */
  private sweep(): void {
    const now_ms = Date.now();
    for (const [key, { socket, since_ms }] of this.handshaking) {
      if (now_ms - since_ms < this.config.handshake_timeout_ms) continue;
      this.handshaking.delete(key);
      this.log(`closing a socket from ${socket.remoteAddress ?? '?'}: no WebSocket upgrade or HTTP request within ${this.config.handshake_timeout_ms} ms (HANDSHAKE_TIMEOUT)`);
      socket.destroy();
    }
    for (const connection of this.connections) connection.checkTimers(now_ms);
  }

  get url(): string {
    const address = this.http.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.tls ? 'wss' : 'ws'}://${host}:${address.port}`;
  }

  log(message: string): void {
    this.logger(message);
  }

  stats(): NodeStats {
    let requests_inflight = 0;
    for (const connection of this.connections) requests_inflight += connection.requests_inflight;
    return collectStats(this, this.connections.size, requests_inflight);
  }

  /** Open connections by protocol (/metrics). */
  connectionsByProtocol(): Record<ConnectionProtocol, number> {
    const counts: Record<ConnectionProtocol, number> = { ws: 0, http: 0, resp: 0, peer: 0 };
    for (const connection of this.connections) counts[connection.protocol]++;
    return counts;
  }

  clusterStatus(): ClusterStatus {
    return this.cluster.status();
  }

  overBudget(): boolean {
    return this.inflight_bytes >= this.config.node_inflight_bytes_max;
  }

  onPaused(connection: ServedConnection): void {
    this.paused.add(connection);
  }

  onRequestDone(): void {
    if (this.paused.size === 0) return;
    for (const connection of this.paused) {
      connection.maybeResume();
      if (!connection.is_paused) this.paused.delete(connection);
    }
  }

  /**
   * Graceful stop: refuse new connections and requests, answer everything already read, close
   * the sockets with 1001, then stop the workers. Bounded by shutdown_timeout_ms.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopNow();
    return this.stopped;
  }

  private async stopNow(): Promise<void> {
    this.shutting_down = true;
    this.http.close();
    this.resp?.close();
    if (this.sweep_timer !== null) clearInterval(this.sweep_timer);
    this.clock.stop();
    this.cluster.stop();
    this.observe.stop();
    const deadline_ms = Date.now() + this.config.shutdown_timeout_ms;
    while (this.requestsInflight() > 0 && Date.now() < deadline_ms) {
      await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_POLL_MS));
    }
    const unanswered = this.requestsInflight();
    if (unanswered > 0) this.log(`shutdown timeout: ${unanswered} requests were not answered`);
    for (const ws of this.proving) ws.terminate();
    for (const connection of this.connections) connection.closeForShutdown();
    // Give close frames a moment to go out before the sockets are torn down.
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const connection of this.connections) connection.destroy();
    this.http.closeAllConnections();
    await Promise.all(this.partitions.map((partition) => partition.stop()));
    await this.codec_pool.close();
  }

  private requestsInflight(): number {
    let total = 0;
    for (const connection of this.connections) total += connection.requests_inflight;
    return total;
  }

  /**
   * Client token or peer handshake (src/protocol/auth.ts): a wrong token, or a peer of another
   * protocol version, is refused here with HTTP 401/400 naming the code, and logged. A peer gets
   * its challenge in the 101 response and proves itself in its first frame (onConnection).
   */
  private verifyClient(request: IncomingMessage, callback: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void): void {
    // Browsers let any web page open a WebSocket to any address (no same-origin rule, no
    // preflight), but always say which page in Origin; pikv's own clients and peers send none.
    // A page elsewhere must not drive a node that has no token (Cross-Site WebSocket Hijacking).
    const origin = request.headers.origin;
    if (origin !== undefined && !this.names.acceptsOrigin(origin)) {
      this.log(`refused a WebSocket from ${request.socket.remoteAddress ?? '?'}: opened by the web page ${JSON.stringify(origin.slice(0, 100))} (CROSS_SITE)`);
      callback(false, 403, ErrorCode.CROSS_SITE, { [ERROR_HEADER]: ErrorCode.CROSS_SITE });
      return;
    }
    const result = authenticate(request, this.auth);
    if ('refused' in result) {
      this.log(`refused a connection from ${request.socket.remoteAddress ?? '?'}: ${result.refused} (${result.code})`);
      callback(false, result.http_status, result.code, { [ERROR_HEADER]: result.code, [PEER_VERSION_HEADER]: String(PEER_PROTOCOL_VERSION) });
      return;
    }
    if (result.role === 'peer') this.peer_challenges.set(request, result.challenge);
    callback(true);
  }

  private onConnection(ws: WebSocket, request: IncomingMessage): void {
    if (this.shutting_down) {
      this.refuse(ws, CLOSE_GOING_AWAY, 'SHUTTING_DOWN');
      return;
    }
    if (this.connections.size >= this.config.connections_max) {
      this.refuse(ws, CLOSE_TRY_AGAIN_LATER, 'TOO_MANY_CONNECTIONS');
      return;
    }
    const challenge = this.peer_challenges.get(request);
    if (challenge === undefined) {
      this.handshakeDone(request.socket);
      this.serve(ws, request, false);
      return;
    }
    // Until its proof arrives the socket stays in `handshaking`, so the sweep closes it after
    // handshake_timeout_ms like any unfinished handshake; nothing but the proof is read.
    const address = request.socket.remoteAddress ?? '?';
    this.proving.add(ws);
    ws.on('error', (error: Error & { code?: string }) => this.log(`peer handshake error from ${address}: ${error.code ?? ''} ${error.message}`));
    const onClose = (): void => {
      this.proving.delete(ws);
      if (!this.shutting_down) this.log(`peer "${challenge.client_id}" from ${address} closed before proving the cluster secret (${PEER_AUTH_FAILED})`);
    };
    ws.once('close', onClose);
    ws.once('message', (data: Buffer, is_binary: boolean) => {
      this.proving.delete(ws);
      ws.off('close', onClose);
      if (!checkClientProof(challenge, data, is_binary)) {
        this.log(`refused peer "${challenge.client_id}" from ${address}: wrong proof of the cluster secret (${PEER_AUTH_FAILED})`);
        ws.close(CLOSE_AUTH_FAILED, PEER_AUTH_FAILED);
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
        return;
      }
      if (this.shutting_down) {
        this.refuse(ws, CLOSE_GOING_AWAY, 'SHUTTING_DOWN');
        return;
      }
      this.handshakeDone(request.socket);
      // Frames behind the proof in the same socket read are emitted after this listener returns,
      // to the listener the Connection adds now: none is lost or reordered.
      this.serve(ws, request, true, challenge.client_id, challenge.channel);
    });
  }

  isLatestPeerConnection(peer_id: string, channel: PeerChannel, sequence: number): boolean {
    return this.latest_peer_connection.get(peerChannelKey(peer_id, channel)) === sequence;
  }

  private serve(ws: WebSocket, request: IncomingMessage, peer: boolean, peer_id = '', channel: PeerChannel = 'data'): void {
    let peer_sequence = 0;
    if (peer && peer_id !== '') {
      peer_sequence = ++this.peer_connections_opened;
      this.latest_peer_connection.set(peerChannelKey(peer_id, channel), peer_sequence);
    }
    const connection = new Connection(ws, this, {
      peer,
      address: request.socket.remoteAddress ?? '?',
      keepalive_ms: keepaliveAsked(request),
      peer_id,
      peer_channel: channel,
      peer_sequence,
    });
    this.connections.add(connection);
    ws.on('close', () => this.removeConnection(connection));
  }

  /**
   * Closes a connection the node will not serve. ws keeps reading a closing socket until the
   * client's close frame arrives, and emits 'error' for a malformed frame (bad opcode, oversized,
   * unmasked); an 'error' with no listener is thrown and ends the process. So a client that sent
   * one bad frame right behind its handshake crashed the node whenever it was at connections_max
   * or shutting down (test/limits.test.ts, connections_max).
   */
  private refuse(ws: WebSocket, code: number, reason: string): void {
    ws.on('error', (error: Error & { code?: string }) => this.log(`refused connection error: ${error.code ?? ''} ${error.message}`));
    ws.close(code, reason);
  }
}

/** latest_peer_connection's key: ids are printable ASCII without newlines (auth.ts). */
function peerChannelKey(peer_id: string, channel: PeerChannel): string {
  return `${peer_id}\n${channel}`;
}

/** The ping period a client asked for in its handshake, clamped; 0 when it asked for none. */
function keepaliveAsked(request: IncomingMessage): number {
  const raw = request.headers[KEEPALIVE_HEADER];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(KEEPALIVE_MS_MAX, Math.max(KEEPALIVE_MS_MIN, Math.floor(value)));
}

/**
 * One TCP connection's name, the same for its TCP socket and the TLS socket wrapping it:
 * both ends' addresses and ports.
 */
function socketKey(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}|${socket.localAddress ?? '?'}|${socket.localPort ?? 0}`;
}

/** Reads a PEM file named in the config; a clear start-up error if it cannot. */
function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
  }
}

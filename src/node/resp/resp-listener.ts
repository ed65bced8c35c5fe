/**
 * The RESP2 (Redis protocol) TCP listener of a node: accepts sockets on `resp_port`, applies the
 * node's connection limits (connections_max counts WebSocket and RESP connections together;
 * connections_per_ip_max counts sockets of both), and gives each a RespConnection.
 *
 * The default port (6379) may be taken, for example by a Redis already running: then the node
 * logs one line and serves without RESP, so `npm start` still works. A port given explicitly
 * (flag or config file) that cannot be bound stops start-up.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { ServerConfig } from '../config.js';
import { LogLimiter } from '../log-limiter.js';
import type { Dispatcher } from '../dispatcher.js';
import type { Keyspace } from '../keyspace.js';
import type { BudgetHost, ServedConnection } from '../request-budget.js';
import type { NodeStats } from '../stats.js';
import { infoText, type InfoSource, type RespCounters } from './info.js';
import { RespConnection, type RespConnectionHost } from './resp-connection.js';
import type { ErrorLimits } from './status-errors.js';

/** What the RESP front end needs from the node (PikvServer). */
export interface RespNode extends BudgetHost {
  readonly config: ServerConfig;
  readonly dispatcher: Dispatcher;
  readonly shutting_down: boolean;
  /** True in a pikv cluster (not Redis Cluster: a RESP client still sees one node that serves every key). */
  readonly clustered: boolean;
  stats(): NodeStats;
  /** Keys in this node's partitions. */
  keyCount(): number;
  /** The whole store's keys (SCAN, KEYS, DBSIZE in a cluster, FLUSHALL). */
  readonly keyspace: Keyspace;
  log(message: string): void;
  onPaused(connection: ServedConnection): void;
  /** Counts the socket against connections_per_ip_max; false (socket destroyed) past it. */
  admitAddress(socket: Socket): boolean;
  hasRoomForConnection(): boolean;
  addConnection(connection: ServedConnection): void;
  removeConnection(connection: ServedConnection): void;
}

/** A refused socket that does not read its error reply is torn down after this. */
const REFUSE_GRACE_MS = 1_000;

export class RespListener implements RespConnectionHost, InfoSource {
  readonly client_token: string;
  readonly resp_counters: RespCounters = { connections_received: 0, connections_rejected: 0, commands_processed: 0 };
  readonly error_limits: ErrorLimits;
  private readonly node: RespNode;
  private readonly server: Server;
  private bound: AddressInfo | null = null;
  private readonly limited_log: LogLimiter;

  constructor(node: RespNode, client_token: string) {
    this.node = node;
    this.client_token = client_token;
    this.limited_log = new LogLimiter((message) => node.log(message), 'RESP connection');
    const { config } = node;
    this.error_limits = {
      key_bytes_max: config.key_bytes_max, value_bytes_max: config.value_bytes_max,
      response_bytes_max: config.response_bytes_max, batch_ops_max: config.batch_ops_max,
    };
    // allowHalfOpen: a client that sends its commands and then shuts down its side (nc, a
    // script) still gets its replies; RespConnection ends our side once they are written.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onSocket(socket));
    this.server.on('error', (error: Error) => this.node.log(`RESP listener error: ${error.message}`));
  }

  /** Binds host:port. Resolves without listening when the default port is taken; rejects for an explicit one. */
  listen(host: string, port: number, explicit: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error & { code?: string }): void => {
        if (error.code === 'EADDRINUSE' && !explicit) {
          this.node.log(`RESP port ${port} on ${host} is in use (a Redis already running?): serving without RESP; give --resp-port N (0 picks a free port) or --resp-port off`);
          resolve();
          return;
        }
        reject(new Error(`cannot listen for RESP on ${host}:${port} (--resp-port): ${error.message}`));
      };
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.bound = this.server.address() as AddressInfo;
        resolve();
      });
    });
  }

  /** host:port RESP clients connect to; null when not listening. */
  get address(): string | null {
    if (this.bound === null) return null;
    const host = this.bound.family === 'IPv6' ? `[${this.bound.address}]` : this.bound.address;
    return `${host}:${this.bound.port}`;
  }

  get resp_port(): number {
    return this.bound?.port ?? 0;
  }

  /** Stops accepting; open connections are closed by the server's shutdown. */
  close(): void {
    if (this.bound !== null) this.server.close();
  }

  private onSocket(socket: Socket): void {
    this.resp_counters.connections_received++;
    // Refused sockets still need an error listener: an unhandled 'error' would end the process.
    socket.on('error', () => {});
    if (this.node.shutting_down) {
      socket.destroy();
      return;
    }
    if (!this.node.admitAddress(socket)) {
      this.resp_counters.connections_rejected++;
      return;
    }
    if (!this.node.hasRoomForConnection()) {
      this.resp_counters.connections_rejected++;
      this.logLimited(`refused a RESP connection from ${socket.remoteAddress ?? '?'}: connections_max (${this.node.config.connections_max}) connections are open`);
      socket.end('-ERR max number of clients reached\r\n');
      setTimeout(() => socket.destroy(), REFUSE_GRACE_MS).unref();
      return;
    }
    this.node.addConnection(new RespConnection(socket, this));
  }

  // RespConnectionHost, delegated to the node.
  get config(): ServerConfig {
    return this.node.config;
  }

  get dispatcher(): Dispatcher {
    return this.node.dispatcher;
  }

  get keyspace(): Keyspace {
    return this.node.keyspace;
  }

  get shutting_down(): boolean {
    return this.node.shutting_down;
  }

  get clustered(): boolean {
    return this.node.clustered;
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

  onClosed(connection: RespConnection): void {
    this.node.removeConnection(connection);
  }

  countCommand(): void {
    this.resp_counters.commands_processed++;
  }

  keyCount(): number {
    return this.node.keyCount();
  }

  stats(): NodeStats {
    return this.node.stats();
  }

  infoText(sections: string[]): string {
    return infoText(this, sections);
  }

  log(message: string): void {
    this.node.log(message);
  }

  logLimited(message: string): void {
    this.limited_log.write(message);
  }
}

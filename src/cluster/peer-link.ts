/**
 * One persistent, authenticated link to one peer node: two PikvClients, each reconnecting with
 * exponential backoff, and the heartbeat that decides whether the peer is up.
 *
 * The two connections are the link's channels (docs/CLUSTER.md, "Peer links"):
 *   - data: forwarded client ops, replication and data-move frames (send()), bulk and ordered;
 *   - control: heartbeats and the small membership ops (control()), so that they never wait
 *     behind megabytes of stream data, neither in this node's socket buffer nor in the peer's
 *     read queue (a peer data connection that is paused for its limits is not read).
 * Nothing whose correctness depends on its order relative to data frames rides the control
 * channel: the answer to a data frame (the ack a stream counts) comes back on the data
 * connection that carried the frame; views and epochs that fence data travel inside the data
 * frames themselves (ring_epoch) or come from etcd.
 *
 * The link is "up" while both sockets are open and a heartbeat was answered within
 * heartbeats_missed_max intervals; a closed socket (a killed process, a reset) makes it down
 * at once. Ops for a down peer fail fast with NODE_DOWN (forwarder.ts); every request on the
 * link is bounded by forward_timeout_ms (PikvClient's request timeout).
 */
import { connect, type ColumnBatch, type ColumnResults, PikvClient } from '../client/client.js';
import type { PeerChannel } from '../protocol/auth.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError } from '../protocol/errors.js';
import type { RingNode } from '../routing/ring.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2_000;
const EMPTY = new Uint8Array(0);

export interface PeerLinkSettings {
  cluster_secret: string;
  /** This node's id, proved to the peer in the handshake. */
  node_id: string;
  heartbeat_interval_ms: number;
  heartbeats_missed_max: number;
  forward_timeout_ms: number;
  /** PEM CA for wss:// peers ('' for none). */
  tls_ca: string;
}

export interface PeerLinkHooks {
  /** The CLUSTER_HEARTBEAT payload: CBOR {from, epoch}. */
  heartbeatPayload(): Uint8Array;
  /** The peer answered a heartbeat with this value (CBOR {epoch}). */
  onHeartbeatReply(link: PeerLink, value: Uint8Array): void;
  onUp(link: PeerLink): void;
  log(message: string): void;
}

/**
 * Logs a refused handshake once per distinct cause, for both channels of a link together (the
 * link retries every few seconds, and a fake or misconfigured member would otherwise fill the log).
 */
class RefusalLog {
  /** The last refused handshake logged; '' after a successful connect. */
  private last = '';
  private readonly log: (message: string) => void;

  constructor(log: (message: string) => void) {
    this.log = log;
  }

  note(node_id: string, error: PikvError): void {
    const refused = error.code === ErrorCode.PEER_AUTH_FAILED || error.code === ErrorCode.PEER_VERSION_MISMATCH || error.code === ErrorCode.AUTH_FAILED;
    if (!refused || error.message === this.last) return;
    this.last = error.message;
    this.log(`peer link to ${node_id} refused: ${error.message} (${error.code})`);
  }

  connected(): void {
    this.last = '';
  }
}

/** One of the link's two connections, reconnected with backoff when it fails. */
class PeerChannelClient {
  readonly channel: PeerChannel;
  client: PikvClient | null = null;
  private connecting = false;
  private backoff_ms = BACKOFF_MIN_MS;
  private next_attempt_ms = 0;
  private closed = false;
  private readonly node: RingNode;
  private readonly settings: PeerLinkSettings;
  private readonly refusals: RefusalLog;

  constructor(channel: PeerChannel, node: RingNode, settings: PeerLinkSettings, refusals: RefusalLog) {
    this.channel = channel;
    this.node = node;
    this.settings = settings;
    this.refusals = refusals;
  }

  /** The open client, or null. */
  get open(): PikvClient | null {
    const client = this.client;
    return client !== null && client.failed === null ? client : null;
  }

  /** Drops a failed client (returning its failure) and reconnects when due; `connected` runs on success. */
  maintain(connected: () => void): PikvError | null {
    if (this.closed) return null;
    const client = this.client;
    if (client !== null && client.failed === null) return null;
    this.client = null;
    this.reconnect(connected);
    return client?.failed ?? null;
  }

  close(): void {
    this.closed = true;
    void this.client?.close();
    this.client = null;
  }

  private reconnect(connected: () => void): void {
    if (this.connecting || Date.now() < this.next_attempt_ms) return;
    this.connecting = true;
    connect(this.node.url, {
      connect_timeout_ms: Math.max(500, this.settings.forward_timeout_ms),
      request_timeout_ms: this.settings.forward_timeout_ms,
      reset_on_timeout: true,
      ca: this.settings.tls_ca,
      // The peer must prove the secret and be this link's node (src/protocol/auth.ts), or the
      // connection is dropped before anything it says is read. The channel is bound into both proofs.
      peer: { secret: this.settings.cluster_secret, node_id: this.settings.node_id, server_id: this.node.id, channel: this.channel },
    }).then(
      (client) => {
        this.connecting = false;
        this.refusals.connected();
        if (this.closed) {
          void client.close();
          return;
        }
        this.client = client;
        this.backoff_ms = BACKOFF_MIN_MS;
        connected();
      },
      (error: PikvError) => {
        this.connecting = false;
        this.refusals.note(this.node.id, error);
        this.next_attempt_ms = Date.now() + this.backoff_ms;
        this.backoff_ms = Math.min(BACKOFF_MAX_MS, this.backoff_ms * 2);
      },
    );
  }
}

export class PeerLink {
  readonly node: RingNode;
  private readonly settings: PeerLinkSettings;
  private readonly hooks: PeerLinkHooks;
  private readonly data: PeerChannelClient;
  private readonly control_channel: PeerChannelClient;
  private last_answer_ms = 0;
  private heartbeat_inflight = false;
  private closed = false;
  private was_up = false;
  /** Forwarded ops that failed because the peer was down or too slow; shown in cluster status. */
  ops_failed = 0;
  /**
   * Round trip of the last answered heartbeat, in ms (null before the first): /metrics and the
   * dashboard. It travels on the control channel, so bulk data on the data channel does not
   * show in it; the main thread's event-loop delay on either node does.
   */
  rtt_ms: number | null = null;

  constructor(node: RingNode, settings: PeerLinkSettings, hooks: PeerLinkHooks) {
    this.node = node;
    this.settings = settings;
    this.hooks = hooks;
    const refusals = new RefusalLog(hooks.log);
    this.data = new PeerChannelClient('data', node, settings, refusals);
    this.control_channel = new PeerChannelClient('control', node, settings, refusals);
  }

  get up(): boolean {
    if (this.data.open === null || this.control_channel.open === null) return false;
    return Date.now() - this.last_answer_ms <= this.settings.heartbeat_interval_ms * this.settings.heartbeats_missed_max;
  }

  get last_answer_ms_ago(): number | null {
    return this.last_answer_ms === 0 ? null : Date.now() - this.last_answer_ms;
  }

  /** Called every heartbeat interval: reconnects either channel when due, otherwise sends a heartbeat. */
  tick(): void {
    if (this.closed) return;
    // A connection that just opened sends its heartbeat now instead of waiting a tick.
    const connected = (): void => this.tick();
    const failures = [this.data.maintain(connected), this.control_channel.maintain(connected)];
    const failure = failures.find((f) => f !== null);
    if (failure !== undefined && this.was_up) {
      this.was_up = false;
      this.hooks.log(`peer ${this.node.id} (${this.node.url}) is down: ${failure?.message ?? ''}`);
    }
    const client = this.control_channel.open;
    if (client === null) return;
    if (!this.up && this.was_up) {
      this.was_up = false;
      this.hooks.log(`peer ${this.node.id} missed ${this.settings.heartbeats_missed_max} heartbeats; shown down`);
    }
    if (this.heartbeat_inflight) return;
    this.heartbeat_inflight = true;
    const payload = this.hooks.heartbeatPayload();
    const sent_ms = performance.now();
    client.batchColumns(single(Op.CLUSTER_HEARTBEAT, payload)).then(
      (results) => {
        this.heartbeat_inflight = false;
        if (results.status[0] !== Status.OK) return;
        this.rtt_ms = Math.round((performance.now() - sent_ms) * 1000) / 1000;
        this.last_answer_ms = Date.now();
        if (!this.was_up && this.up) {
          this.was_up = true;
          this.hooks.onUp(this);
        }
        this.hooks.onHeartbeatReply(this, results.values);
      },
      () => {
        this.heartbeat_inflight = false;
      },
    );
  }

  /**
   * Sends one frame on the data channel; rejects with NODE_DOWN when the link is not up. Any
   * answer also counts as a sign of life, like a heartbeat's.
   */
  send(batch: ColumnBatch): Promise<ColumnResults> {
    const client = this.data.open;
    if (client === null || !this.up) return Promise.reject(new PikvError(ErrorCode.NODE_DOWN, `node ${this.node.id} is down`));
    return client.batchColumns(batch).then((results) => {
      if (this.data.client === client) this.last_answer_ms = Date.now();
      return results;
    });
  }

  /**
   * Sends one single-op request that reads keys (the cluster-wide SCAN of RESP's SCAN/DBSIZE) on
   * the data channel, where ops that read keys belong: its answer is a page of keys, not a
   * small control message, and the control channel refuses it.
   */
  async query(op: number, payload: Uint8Array): Promise<{ status: number; value: Uint8Array }> {
    const client = this.data.open;
    if (client === null) throw new PikvError(ErrorCode.NODE_DOWN, `node ${this.node.id} is not connected`);
    const results = await client.batchColumns(single(op, payload));
    return { status: results.status[0]!, value: results.values };
  }

  /** Sends one control op on the control channel and resolves with its status and value. */
  async control(op: number, payload: Uint8Array): Promise<{ status: number; value: Uint8Array }> {
    const client = this.control_channel.open;
    if (client === null) throw new PikvError(ErrorCode.NODE_DOWN, `node ${this.node.id} is not connected`);
    const results = await client.batchColumns(single(op, payload));
    return { status: results.status[0]!, value: results.values };
  }

  close(): void {
    this.closed = true;
    this.data.close();
    this.control_channel.close();
  }
}

/** A one-op columnar batch whose payload travels as the key. */
export function single(op: number, payload: Uint8Array): ColumnBatch {
  return { op: Uint8Array.of(op), key_lengths: Uint32Array.of(payload.length), value_lengths: new Uint32Array(1), keys: payload, values: EMPTY };
}

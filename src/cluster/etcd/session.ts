/**
 * A node's session with etcd: one lease, kept alive, and the fencing deadline derived from it.
 *
 * Everything a node owns in etcd (its `members/<id>` key, the `controller` key if it leads) is
 * bound to this lease, so etcd deletes it when the lease expires and another node may then
 * take over. etcd's leader decides expiry, and a keep-alive only extends the lease from the
 * moment the leader handles it, which is after we sent it. So on this process's monotonic
 * clock, the lease cannot expire before `sent + granted TTL`, where `sent` is the send time
 * of the last keep-alive etcd answered with a positive TTL (after a leader change etcd
 * extends leases, never shortens them). The node may acknowledge writes only until
 *
 *     fence deadline = sent + granted_ttl − margin,   margin = ratio · ttl + fixed (drift)
 *
 * and so stops acknowledging before etcd can expire its lease and let anyone take over. This
 * is the cure for Jepsen's finding that etcd locks are unsafe on their own (a lease can expire
 * while its holder still believes it holds it): the holder fences itself by the clock.
 *
 * Why not etcd3's Lease: it keeps alive with the *requested* TTL, records `Date.now()` when an
 * answer *arrives* (wall clock, and too late by the round trip), and pipelines keep-alives so
 * an answer cannot be matched to its request. Here one keep-alive is in flight per stream, so
 * its answer is unambiguous, and the TTL is the one etcd returned.
 *
 * Events: 'lost' ({lease_id, reason}) when the lease is gone or the deadline passed; the
 * session then grants a new lease, retrying, and emits 'session' (lease_id) when it has one.
 * 'keepalive' (granted_ttl_ms) after each answered keep-alive.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { ClusterEtcdError, etcdCall } from './errors.js';

export interface SessionOptions {
  client: Etcd3;
  /** Requested lease TTL; etcd TTLs are whole seconds (rounded up) and etcd may grant more. */
  lease_ttl_ms?: number;
  /** Keep-alive period; default a third of the granted TTL (as etcd's Go client). */
  keepalive_interval_ms?: number;
  /** A keep-alive unanswered for this long is abandoned and its stream reopened; default the interval. */
  keepalive_timeout_ms?: number;
  /** margin = granted_ttl_ms · fence_margin_ratio + fence_margin_ms. */
  fence_margin_ratio?: number;
  fence_margin_ms?: number;
  /** Delay between attempts to grant a new lease after losing one. */
  regrant_delay_ms?: number;
  /** Monotonic clock in ms; tests may replace it. Default performance.now(). */
  now_ms?: () => number;
  log?: (line: string) => void;
}

export const SESSION_DEFAULTS = {
  lease_ttl_ms: 3000,
  fence_margin_ratio: 0.1,
  fence_margin_ms: 100,
  regrant_delay_ms: 200,
} as const;

export interface LeaseLoss {
  lease_id: string;
  reason: string;
}

type State = 'live' | 'lost' | 'closed';
type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

export class EtcdSession extends EventEmitter {
  private readonly client: Etcd3;
  private readonly now_ms: () => number;
  private readonly log: (line: string) => void;
  private readonly requested_ttl_s: number;
  private state: State = 'lost';
  private lease: string | null = null;
  private granted_ms = 0;
  private deadline_ms = 0;
  private last_answered_sent_ms = 0;
  private stream: KeepAliveStream | null = null;
  private stream_generation = 0;
  private inflight_sent_ms: number | null = null;
  private tick_timer: NodeJS.Timeout | null = null;
  private deadline_timer: NodeJS.Timeout | null = null;
  private regrant_timer: NodeJS.Timeout | null = null;
  private keepalive_stopped = false;
  /** Keep-alives answered over the life of this session (all leases). */
  keepalives_answered = 0;
  leases_granted = 0;

  private constructor(private readonly options: SessionOptions) {
    super();
    this.client = options.client;
    this.now_ms = options.now_ms ?? (() => performance.now());
    this.log = options.log ?? ((line) => console.error(line));
    const ttl_ms = options.lease_ttl_ms ?? SESSION_DEFAULTS.lease_ttl_ms;
    if (!(ttl_ms > 0)) throw new RangeError('lease_ttl_ms must be positive');
    this.requested_ttl_s = Math.max(1, Math.ceil(ttl_ms / 1000));
  }

  /** Grants the first lease (throws CLUSTER_UNAVAILABLE if etcd does not answer) and starts keeping it alive. */
  static async start(options: SessionOptions): Promise<EtcdSession> {
    const session = new EtcdSession(options);
    await session.grant();
    return session;
  }

  /** The current lease id (decimal string, as etcd3 gives it), or null while there is none. */
  get lease_id(): string | null {
    return this.state === 'live' ? this.lease : null;
  }

  /** The TTL etcd granted for the current lease (and confirmed by its last keep-alive answer). */
  get granted_ttl_ms(): number {
    return this.granted_ms;
  }

  get margin_ms(): number {
    return this.granted_ms * (this.options.fence_margin_ratio ?? SESSION_DEFAULTS.fence_margin_ratio) + (this.options.fence_margin_ms ?? SESSION_DEFAULTS.fence_margin_ms);
  }

  private get interval_ms(): number {
    return this.options.keepalive_interval_ms ?? this.granted_ms / 3;
  }

  /** Monotonic send time of the last keep-alive (or grant) etcd answered for the current lease. */
  get last_answered_sent_at_ms(): number {
    return this.last_answered_sent_ms;
  }

  /**
   * On the now_ms clock, the instant until which this node may still acknowledge writes;
   * 0 while there is no live lease. Never moves backwards for one lease.
   */
  fenceDeadlineMs(): number {
    return this.state === 'live' ? this.deadline_ms : 0;
  }

  /** True while this node may acknowledge writes: it holds a lease and the deadline has not passed. */
  isLive(): boolean {
    return this.state === 'live' && this.now_ms() < this.deadline_ms;
  }

  /** Throws LEASE_LOST unless isLive(); for guarding an acknowledgement. */
  assertLive(): void {
    if (!this.isLive()) throw new ClusterEtcdError('LEASE_LOST', 'this node has no live etcd session (its fence deadline passed)');
  }

  private async grant(): Promise<void> {
    const sent_ms = this.now_ms();
    const response = await etcdCall('grant a lease', () => this.client.leaseClient.leaseGrant({ TTL: this.requested_ttl_s }));
    if (this.state === 'closed') {
      void this.client.leaseClient.leaseRevoke({ ID: response.ID }).catch(() => {});
      return;
    }
    const granted_s = Number(response.TTL);
    if (response.error || !(granted_s > 0)) throw new ClusterEtcdError('CLUSTER_UNAVAILABLE', `etcd refused the lease: ${response.error || `TTL ${response.TTL}`}`);
    this.lease = response.ID;
    this.granted_ms = granted_s * 1000;
    if (granted_s !== this.requested_ttl_s) this.log(`pikv etcd: asked for a ${this.requested_ttl_s} s lease, etcd granted ${granted_s} s; fencing uses ${granted_s} s`);
    const margin = this.margin_ms;
    // The deadline must leave room for at least two keep-alive periods, or one lost
    // keep-alive would fence a healthy node.
    if (!(margin < this.granted_ms) || !(2 * this.interval_ms < this.granted_ms - margin)) {
      throw new RangeError(`session timing: granted TTL ${this.granted_ms} ms, margin ${margin} ms, keep-alive every ${this.interval_ms} ms: need 2·interval < TTL − margin`);
    }
    this.state = 'live';
    this.leases_granted += 1;
    this.last_answered_sent_ms = sent_ms;
    this.deadline_ms = sent_ms + this.granted_ms - margin;
    this.armDeadline();
    this.startKeepAlive();
    this.emit('session', this.lease);
  }

  private startKeepAlive(): void {
    if (this.tick_timer !== null) clearInterval(this.tick_timer);
    this.tick_timer = setInterval(() => this.tick(), this.interval_ms);
    this.tick();
  }

  private tick(): void {
    if (this.state !== 'live' || this.keepalive_stopped) return;
    if (this.inflight_sent_ms !== null && this.now_ms() - this.inflight_sent_ms > (this.options.keepalive_timeout_ms ?? this.interval_ms)) {
      this.dropStream(); // answer overdue: the stream may be stuck on a dead connection
    }
    if (this.stream === null) {
      void this.openStream();
      return;
    }
    if (this.inflight_sent_ms === null) this.send();
  }

  private send(): void {
    if (this.stream === null || this.lease === null) return;
    this.inflight_sent_ms = this.now_ms();
    this.stream.write({ ID: this.lease });
  }

  private async openStream(): Promise<void> {
    const generation = ++this.stream_generation;
    let stream: KeepAliveStream;
    try {
      stream = await this.client.leaseClient.leaseKeepAlive();
    } catch {
      return; // next tick tries again
    }
    if (generation !== this.stream_generation || this.state !== 'live' || this.keepalive_stopped) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    this.inflight_sent_ms = null;
    const stale = (): boolean => generation !== this.stream_generation;
    stream.on('data', (response) => {
      if (!stale()) this.answered(response);
    });
    stream.on('error', () => {
      if (!stale()) this.dropStream();
    });
    stream.on('end', () => {
      if (!stale()) this.dropStream();
    });
    this.send();
  }

  private dropStream(): void {
    this.stream_generation += 1;
    const stream = this.stream;
    this.stream = null;
    this.inflight_sent_ms = null;
    if (stream !== null) {
      try {
        stream.cancel();
      } catch {
        // already closed
      }
    }
  }

  private answered(response: ILeaseKeepAliveResponse): void {
    const sent_ms = this.inflight_sent_ms;
    this.inflight_sent_ms = null;
    if (sent_ms === null || this.state !== 'live' || response.ID !== this.lease) return;
    const ttl_s = Number(response.TTL);
    if (!(ttl_s > 0)) {
      this.lose('etcd answered the keep-alive with TTL 0: the lease expired or was revoked');
      return;
    }
    this.keepalives_answered += 1;
    this.granted_ms = ttl_s * 1000;
    const deadline_ms = sent_ms + this.granted_ms - this.margin_ms;
    // Answers come back in order, one per request, so sent_ms only grows; keep the max anyway.
    if (deadline_ms > this.deadline_ms) {
      this.deadline_ms = deadline_ms;
      this.last_answered_sent_ms = sent_ms;
      this.armDeadline();
    }
    this.emit('keepalive', this.granted_ms);
  }

  private armDeadline(): void {
    if (this.deadline_timer !== null) clearTimeout(this.deadline_timer);
    const lease = this.lease;
    this.deadline_timer = setTimeout(() => {
      this.deadline_timer = null;
      if (this.state !== 'live' || this.lease !== lease) return;
      if (this.now_ms() >= this.deadline_ms) this.lose('the fence deadline passed without an answered keep-alive');
      else this.armDeadline();
    }, Math.max(0, this.deadline_ms - this.now_ms()) + 1);
  }

  private lose(reason: string): void {
    if (this.state !== 'live') return;
    const lease_id = this.lease!;
    this.state = 'lost';
    this.deadline_ms = 0;
    this.dropStream();
    if (this.tick_timer !== null) clearInterval(this.tick_timer);
    if (this.deadline_timer !== null) clearTimeout(this.deadline_timer);
    this.tick_timer = this.deadline_timer = null;
    this.log(`pikv etcd: lost lease ${lease_id}: ${reason}`);
    this.emit('lost', { lease_id, reason } satisfies LeaseLoss);
    if (this.keepalive_stopped) return; // stopKeepAlive(): let etcd expire it on its own
    // Past our deadline the lease is worthless to us; revoking it frees its keys (and the
    // controller key) now instead of at etcd's expiry. Safe: we already stopped acking.
    void this.client.leaseClient.leaseRevoke({ ID: lease_id }).catch(() => {});
    this.scheduleRegrant();
  }

  private scheduleRegrant(): void {
    if (this.state !== 'lost' || this.regrant_timer !== null) return;
    this.regrant_timer = setTimeout(() => {
      this.regrant_timer = null;
      this.grant().catch((err: Error) => {
        if (this.state === 'lost') this.log(`pikv etcd: could not grant a new lease yet: ${err.message}`);
        this.scheduleRegrant();
      });
    }, this.options.regrant_delay_ms ?? SESSION_DEFAULTS.regrant_delay_ms);
  }

  /**
   * Stops sending keep-alives without revoking, as a hung or killed process would: the fence
   * deadline runs out ('lost' fires, no new lease is granted) and etcd expires the lease on
   * its own. For fault-injection tests and for a node that must stop serving at once.
   */
  stopKeepAlive(): void {
    this.keepalive_stopped = true;
    this.dropStream();
  }

  /** Stops everything; with `revoke` (default) etcd deletes this lease's keys at once. */
  async close(options: { revoke?: boolean } = {}): Promise<void> {
    const lease = this.state === 'live' ? this.lease : null;
    this.state = 'closed';
    this.dropStream();
    for (const timer of [this.tick_timer, this.deadline_timer, this.regrant_timer]) if (timer !== null) clearTimeout(timer);
    this.tick_timer = this.deadline_timer = this.regrant_timer = null;
    if (lease !== null && options.revoke !== false) {
      await this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => {});
    }
  }
}

/**
 * Builds the etcd3 client the rest of this folder uses, with fault handling suited to a
 * membership layer. etcd3's defaults are tuned for applications that can wait: three retries
 * per call, a per-host circuit breaker that refuses every call for 5 s after three failures,
 * a watch reconnect backoff growing to 30 s, and gRPC's own reconnect backoff growing to 2
 * minutes. Here a call that fails must fail fast (the caller re-reads and decides) and a
 * restarted etcd must be used again within a fraction of a lease TTL, or every node would
 * lose its session after each etcd restart. So: no retries, no circuit breaker, a deadline on
 * every unary call, and reconnect backoffs capped at about a second.
 */
import { noop, type IBackoff } from 'cockatiel';
import { Etcd3 } from 'etcd3';

export interface EtcdClientOptions {
  /** etcd client URLs, e.g. ['http://10.0.0.2:2379']. */
  hosts: string[];
  /** Deadline of each unary call (get, txn, grant...); streams (watch, keep-alive) have none. */
  request_timeout_ms?: number;
  /** First delay before a broken watch stream is reopened; doubles up to watch_backoff_max_ms. */
  watch_backoff_initial_ms?: number;
  watch_backoff_max_ms?: number;
  /** gRPC channel reconnect backoff bounds. */
  reconnect_backoff_initial_ms?: number;
  reconnect_backoff_max_ms?: number;
}

export const ETCD_CLIENT_DEFAULTS = {
  request_timeout_ms: 2000,
  watch_backoff_initial_ms: 100,
  watch_backoff_max_ms: 1000,
  reconnect_backoff_initial_ms: 100,
  reconnect_backoff_max_ms: 1000,
} as const;

/**
 * etcd3's watch manager wants a cockatiel IBackoff *instance* (it reads `.duration` of the
 * value it was given, then of each `.next()`); cockatiel 3's ready-made backoffs are factories
 * without `duration`. So: a doubling delay, capped, reset by etcd3 whenever a watch answers.
 */
function doublingBackoff(duration: number, max_ms: number): IBackoff<unknown> {
  return { duration, next: () => doublingBackoff(Math.min(duration * 2, max_ms), max_ms) };
}

export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  if (options.hosts.length === 0) throw new RangeError('createEtcdClient: hosts must name at least one etcd');
  const settings = { ...ETCD_CLIENT_DEFAULTS, ...options };
  const watch_backoff = doublingBackoff(settings.watch_backoff_initial_ms, settings.watch_backoff_max_ms);
  return new Etcd3({
    hosts: options.hosts,
    dialTimeout: settings.request_timeout_ms,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.request_timeout_ms }),
    faultHandling: { host: () => noop, global: noop, watchBackoff: watch_backoff },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': settings.reconnect_backoff_initial_ms,
      'grpc.max_reconnect_backoff_ms': settings.reconnect_backoff_max_ms,
      // Notice a dead etcd on an idle stream (keep-alive, watch) within seconds, not minutes.
      'grpc.keepalive_time_ms': 2000,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
    },
  });
}

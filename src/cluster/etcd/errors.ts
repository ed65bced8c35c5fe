/**
 * The errors of the etcd layer, each with a stable code the node and the CLI can show and
 * test for (like the `[CODE]` suffix of CLI errors). `CLUSTER_UNAVAILABLE` means etcd could not
 * be reached or did not answer in time: the caller cannot know whether a write it sent was
 * applied, and must re-read before deciding anything. The others are contract violations
 * (a forged view, an epoch that does not grow by one, a lost lease).
 */
import { EtcdLeaseInvalidError, isRecoverableError } from 'etcd3';

export type EtcdErrorCode =
  | 'CLUSTER_UNAVAILABLE'
  | 'VIEW_SIGNATURE_INVALID'
  | 'VIEW_EPOCH_INVALID'
  | 'LEASE_LOST'
  | 'BAD_CLUSTER_KEY';

export class ClusterEtcdError extends Error {
  constructor(readonly code: EtcdErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${message} [${code}]`, options);
    this.name = 'ClusterEtcdError';
  }
}

export function isClusterEtcdError(value: unknown, code?: EtcdErrorCode): value is ClusterEtcdError {
  return value instanceof ClusterEtcdError && (code === undefined || value.code === code);
}

/**
 * Maps a failure of an etcd call to our codes: transport failures and timeouts (which
 * etcd3 calls recoverable: UNAVAILABLE, DEADLINE_EXCEEDED, a broken circuit...) become
 * CLUSTER_UNAVAILABLE; a lease etcd no longer knows becomes LEASE_LOST; anything else is
 * a bug or a misconfiguration and is returned unchanged.
 */
export function toClusterError(err: unknown, what: string): unknown {
  if (err instanceof ClusterEtcdError) return err;
  if (err instanceof EtcdLeaseInvalidError) return new ClusterEtcdError('LEASE_LOST', `${what}: etcd no longer knows the lease`, { cause: err });
  if (err instanceof Error && (isRecoverableError(err) || /deadline|unavailable|no connection|ECONNREFUSED|closed/i.test(err.message))) {
    return new ClusterEtcdError('CLUSTER_UNAVAILABLE', `${what}: etcd is unavailable (${err.message})`, { cause: err });
  }
  return err;
}

/** Runs an etcd call and rethrows its failure through toClusterError. */
export async function etcdCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toClusterError(err, what);
  }
}

/**
 * Signs and verifies the cluster view stored in etcd. etcd is shared infrastructure: anyone
 * who can write to it (another cluster's misconfigured node, an operator's typo, an attacker
 * on the etcd network) could otherwise hand every node a view that routes all keys to
 * themselves. So the stored value carries an HMAC-SHA256 with the cluster secret over the
 * view's canonical JSON (keys sorted at every level, so two equal views sign equally however
 * they were built), the cluster name and a format tag (a view signed for cluster A does not
 * verify in cluster B even with the same secret). A value that fails the check is rejected
 * with VIEW_SIGNATURE_INVALID; the comparison is constant-time.
 *
 * Stored value: `{"format":"pikv-view-1","view":<view>,"hmac":"<hex>"}`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ClusterEtcdError } from './errors.js';
import { checkClusterName } from './keys.js';

export const VIEW_FORMAT = 'pikv-view-1';

/** What a stored view must at least be: a JSON object with a non-negative integer epoch. */
export interface EpochView {
  epoch: number;
}

/** JSON with object keys sorted at every level; rejects what JSON cannot carry faithfully. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item === undefined ? null : item)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
}

function checkSecret(secret: string): void {
  // An empty secret would make every view "verify" for anyone: refuse it outright.
  if (typeof secret !== 'string' || secret === '') throw new RangeError('the cluster secret must be a non-empty string');
}

function mac(cluster: string, canonical_view: string, secret: string): string {
  return createHmac('sha256', secret).update(`${VIEW_FORMAT}\n${cluster}\n${canonical_view}`).digest('hex');
}

export function checkEpoch(view: unknown): asserts view is EpochView {
  const epoch = (view as Partial<EpochView> | null)?.epoch;
  if (view === null || typeof view !== 'object' || Array.isArray(view) || typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) {
    throw new ClusterEtcdError('VIEW_EPOCH_INVALID', 'a view must be a JSON object with a non-negative integer epoch');
  }
}

/** The etcd value for `view` in `cluster`. */
export function signView(cluster: string, view: EpochView, secret: string): string {
  checkClusterName(cluster);
  checkSecret(secret);
  checkEpoch(view);
  const canonical = canonicalJson(view);
  return `{"format":${JSON.stringify(VIEW_FORMAT)},"view":${canonical},"hmac":"${mac(cluster, canonical, secret)}"}`;
}

/**
 * Verifies a stored value and returns its view, passed through `check` (e.g. routing's
 * checkView) if given. Throws VIEW_SIGNATURE_INVALID if the value is not a signed view of this
 * cluster under this secret.
 */
export function verifyView<V extends EpochView = EpochView>(cluster: string, stored: string | Buffer, secret: string, check?: (value: unknown) => V): V {
  checkSecret(secret);
  let envelope: { format?: unknown; view?: unknown; hmac?: unknown };
  try {
    envelope = JSON.parse(typeof stored === 'string' ? stored : stored.toString('utf8')) as typeof envelope;
  } catch {
    throw new ClusterEtcdError('VIEW_SIGNATURE_INVALID', `the stored view of cluster "${cluster}" is not JSON`);
  }
  if (envelope === null || typeof envelope !== 'object' || envelope.format !== VIEW_FORMAT || typeof envelope.hmac !== 'string' || !/^[0-9a-f]{64}$/.test(envelope.hmac)) {
    throw new ClusterEtcdError('VIEW_SIGNATURE_INVALID', `the stored view of cluster "${cluster}" is not a signed ${VIEW_FORMAT} value`);
  }
  let canonical: string;
  try {
    canonical = canonicalJson(envelope.view);
  } catch {
    throw new ClusterEtcdError('VIEW_SIGNATURE_INVALID', `the stored view of cluster "${cluster}" cannot be canonicalized`);
  }
  const expected = Buffer.from(mac(cluster, canonical, secret), 'hex');
  const given = Buffer.from(envelope.hmac, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new ClusterEtcdError('VIEW_SIGNATURE_INVALID', `the stored view of cluster "${cluster}" has a wrong HMAC (another secret, or forged)`);
  }
  // Signed by a holder of the secret, so its shape is trusted only as far as `check` says.
  checkEpoch(envelope.view);
  return check ? check(envelope.view) : (envelope.view as V);
}

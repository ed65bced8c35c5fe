/**
 * What a pikv node says about itself on the LAN (mDNS/DNS-SD, service type `_pikv._tcp`), and
 * how what others said is read back. Pure functions: the network side is in mdns.ts.
 *
 * TXT keys (DNS-SD keys are short; every value is one TXT string of at most 255 bytes):
 *
 * | key | value |
 * |---|---|
 * | `id` | node id |
 * | `cluster` | cluster name (etcd key prefix `/pikv/<cluster>/`) |
 * | `v` | pikv version |
 * | `pv` | peer protocol version |
 * | `url` | the node's advertised URL (`ws://host:port` or `wss://`) |
 * | `etcd` | the etcd client URLs the node uses, comma-separated; absent without etcd |
 *
 * Nothing read here is trusted: a TXT record is whatever anyone on the LAN sent. Values are
 * checked for shape and length only; whether an etcd endpoint belongs to our cluster is
 * decided by the signed view stored there (find-etcd.ts).
 */
/** DNS-SD service type, without the leading underscore bonjour-service adds: `_pikv._tcp`. */
export const SERVICE_TYPE = 'pikv';
/** A TXT string is one length byte plus its bytes: key=value must fit 255. */
const TXT_STRING_BYTES_MAX = 255;
/** Endpoints taken from one record; etcd clusters have 1, 3 or 5 members. */
export const ETCD_ENDPOINTS_MAX = 7;
const ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;
const CLUSTER_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const ETCD_URL_PATTERN = /^https?:\/\/[A-Za-z0-9.\-[\]:]{1,253}:\d{1,5}$/;
const NODE_URL_PATTERN = /^wss?:\/\/[A-Za-z0-9.\-[\]:]{1,253}:\d{1,5}$/;
const VERSION_PATTERN = /^[A-Za-z0-9.+-]{1,32}$/;

export interface Advertisement {
  node_id: string;
  cluster: string;
  version: string;
  peer_protocol: number;
  /** ws://host:port peers and clients reach the node at. */
  url: string;
  /** etcd client URLs the node uses; empty when it runs without etcd (gossip mode). */
  etcd: string[];
}

/** One node as seen on the LAN: what it advertised, and where the answer came from. */
export interface Discovered extends Advertisement {
  /** The mDNS instance name. */
  name: string;
  /** Source address of the mDNS answer (informational: `url` is what is used). */
  from: string;
}

export class AdvertisementError extends Error {
  readonly code = 'BAD_ADVERTISEMENT';
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]' || host === '::1';
}

/** The host part of a ws:// or http:// URL. */
export function hostOf(url: string): string {
  return new URL(url).hostname;
}

/** True if a URL names this machine's loopback: useless to, and not worth sending to, the LAN. */
export function isLoopbackUrl(url: string): boolean {
  try {
    return isLoopbackHost(hostOf(url));
  } catch {
    return false;
  }
}

/**
 * The TXT record of `ad`. etcd URLs on loopback are left out (another board cannot reach
 * them), and endpoints that do not fit one TXT string are dropped from the end (the record
 * still names at least one, which is enough to find the rest: etcd members know each other).
 */
export function encodeTxt(ad: Advertisement): Record<string, string> {
  if (!ID_PATTERN.test(ad.node_id)) throw new AdvertisementError(`node id ${JSON.stringify(ad.node_id)} cannot be advertised`);
  if (!CLUSTER_PATTERN.test(ad.cluster)) throw new AdvertisementError(`cluster name ${JSON.stringify(ad.cluster)} cannot be advertised`);
  if (!NODE_URL_PATTERN.test(ad.url)) throw new AdvertisementError(`url ${JSON.stringify(ad.url)} cannot be advertised`);
  const txt: Record<string, string> = { id: ad.node_id, cluster: ad.cluster, v: ad.version, pv: String(ad.peer_protocol), url: ad.url };
  const etcd = ad.etcd.filter((url) => ETCD_URL_PATTERN.test(url) && !isLoopbackUrl(url)).slice(0, ETCD_ENDPOINTS_MAX);
  while (etcd.length > 0 && `etcd=${etcd.join(',')}`.length > TXT_STRING_BYTES_MAX) etcd.pop();
  if (etcd.length > 0) txt['etcd'] = etcd.join(',');
  return txt;
}

/** A TXT record's value as text ('' when absent); bonjour-service gives strings or Buffers. */
export function field(txt: Record<string, unknown>, key: string): string {
  const value = txt[key];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return '';
}

/**
 * Reads a TXT record (as bonjour-service decodes it: strings, or Buffers for binary values).
 * Returns null for anything that is not a well-formed pikv advertisement, so a stray or
 * hostile `_pikv._tcp` record is skipped rather than half-used.
 */
export function decodeTxt(txt: unknown): Advertisement | null {
  if (txt === null || typeof txt !== 'object') return null;
  const record = txt as Record<string, unknown>;
  const node_id = field(record, 'id');
  const cluster = field(record, 'cluster');
  const url = field(record, 'url');
  const version = field(record, 'v');
  const peer_protocol = Number(field(record, 'pv'));
  if (!ID_PATTERN.test(node_id) || !CLUSTER_PATTERN.test(cluster) || !NODE_URL_PATTERN.test(url)) return null;
  if (!VERSION_PATTERN.test(version) || !Number.isInteger(peer_protocol) || peer_protocol < 0) return null;
  const etcd_text = field(record, 'etcd');
  const etcd = etcd_text === '' ? [] : etcd_text.split(',');
  if (etcd.length > ETCD_ENDPOINTS_MAX || etcd.some((endpoint) => !ETCD_URL_PATTERN.test(endpoint))) return null;
  return { node_id, cluster, version, peer_protocol, url, etcd };
}

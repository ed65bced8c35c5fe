/**
 * Cluster settings of `pikv serve`: flags, the `cluster` section of a config file, and
 * PIKV_CLUSTER_SECRET. They are taken out before the node's own settings are parsed
 * (src/node/config.ts knows nothing of them); with none of them set the node is a
 * single node exactly as before.
 *
 * Config file: { "node_id": "pi1", "advertise": "ws://10.0.0.1:7070", "cluster_secret_file": "/etc/pikv/secret",
 *                "peers": [{"id": "pi1", "url": "ws://10.0.0.1:7070"}, ...] }
 * `peers` is a static initial membership (epoch 1); nodes started with the same list agree.
 *
 * Secrets never come from argv (ps shows it to every user): the cluster secret is read from
 * cluster_secret_file (flag or file), else an inline cluster_secret in a config file, else
 * PIKV_CLUSTER_SECRET; the client token likewise (client_token_file, client_token, PIKV_CLIENT_TOKEN).
 */
import { readFileSync } from 'node:fs';
import { REPLICAS_MAX } from '../routing/placement.js';
import { readSecretFile } from '../protocol/auth.js';
import { NODE_WEIGHT_MAX, type RingNode } from '../routing/ring.js';
import { checkView, ViewError } from '../routing/view.js';

export interface ClusterConfig {
  node_id: string;
  /**
   * The URL peers and clients reach this node at; empty until start() fills in the listen URL.
   * `auto` until `pikv serve` has found this machine's LAN address (discovery/lan-address.ts).
   */
  advertise: string;
  /** With `advertise: auto`, how long `pikv serve` waits for a LAN address (DHCP after power-on). */
  advertise_wait_ms: number;
  /** Seeds to ask for admission; empty with `peers`, or to start a new one-node cluster. */
  join: string[];
  cluster_secret: string;
  client_token: string;
  weight: number;
  /** Initial membership from a config file; empty when not given. */
  peers: RingNode[];
  heartbeat_interval_ms: number;
  /** Missed heartbeat answers after which a peer is shown down and its keys fail with NODE_DOWN. */
  heartbeats_missed_max: number;
  /** Bound on every forwarded request. */
  forward_timeout_ms: number;
  /**
   * etcd client URLs: non-empty turns on etcd membership (docs/MEMBERSHIP.md), where the view
   * comes only from etcd and `join`/`peers` are not used.
   */
  etcd: string[];
  /** Key prefix in etcd (/pikv/<cluster_name>/), so clusters can share one etcd. */
  cluster_name: string;
  /** Requested etcd lease TTL; the node fences on the TTL etcd grants (docs/ETCD.md). */
  lease_ttl_ms: number;
  /** How often the controller (if this node is it) looks for work. */
  controller_tick_ms: number;
  /** Copies of each key in a cluster this node creates (docs/REPLICATION.md); etcd mode only. */
  replicas: number;
  /** With etcd, for a cluster this node creates: the view's min_replicas (docs/REPLICATION.md). */
  min_replicas: number;
  /** With N >= 2, how long a down node keeps its place before its copies are rebuilt on others. */
  down_grace_ms: number;
  /** PEM CA certificate(s) that peers' wss:// certificates must verify against (from tls_ca_file); '' for none. */
  tls_ca: string;
  /**
   * `--etcd auto` (or `--join auto`): `etcd` is empty until the etcd endpoints are found on the
   * LAN (discovery/find-etcd.ts, before the node starts), and a node never creates a cluster
   * in an etcd it found there.
   */
  etcd_discover: boolean;
  /** Advertise this node as `_pikv._tcp` by mDNS: on, off, or auto (on unless the advertised URL is loopback). */
  mdns: 'auto' | 'on' | 'off';
  /** IPv4 address of the interface for mDNS; '' lets the routes choose. */
  mdns_interface: string;
  /** JSON written by `pikv etcd-form` on an etcd member board (waiting and why, or running); shown in the summary and dashboard. '' for none. */
  formation_status_file: string;
}

export class ClusterConfigError extends Error {
  readonly code = 'BAD_CONFIG';
}

/** Flag and file names of the cluster settings (snake_case; flags arrive camelCase). */
const NAMES = [
  'node_id', 'advertise', 'advertise_wait_ms', 'join', 'cluster_secret', 'cluster_secret_file', 'client_token', 'client_token_file', 'weight', 'peers',
  'heartbeat_interval_ms', 'forward_timeout_ms', 'etcd', 'cluster_name', 'lease_ttl_ms', 'controller_tick_ms',
  'replicas', 'min_replicas', 'down_grace_ms', 'tls_ca_file', 'mdns', 'mdns_interface', 'formation_status_file',
] as const;
/** Settings that do not by themselves turn on cluster mode (a client token works on a lone node). */
const NOT_CLUSTER = new Set(['client_token', 'client_token_file', 'mdns', 'mdns_interface']);

type Warn = (message: string) => void;
const warnOnStderr: Warn = (message) => console.error(`pikv: warning: ${message}`);

/** One secret from `<name>_file`, an inline `<name>` (config files only) or the environment; '' if none. */
function secretSetting(settings: Record<string, unknown>, name: string, env_value: string | undefined, what: string, warn: Warn): string {
  const file = text(settings[`${name}_file`], `${name}_file`);
  const inline = text(settings[name], name);
  if (file !== '' && inline !== '') throw new ClusterConfigError(`give ${name} or ${name}_file, not both`);
  try {
    if (file !== '') return readSecretFile(file, what, warn);
  } catch (error) {
    throw new ClusterConfigError((error as Error).message);
  }
  return inline !== '' ? inline : (env_value ?? '');
}

/** The token clients must send, from client_token_file, client_token or PIKV_CLIENT_TOKEN; '' = none. */
export function resolveClientToken(settings: Record<string, unknown>, env: NodeJS.ProcessEnv, warn: Warn = warnOnStderr): string {
  return secretSetting(settings, 'client_token', env['PIKV_CLIENT_TOKEN'], 'client token', warn);
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`).replace(/-/g, '_');
}

/**
 * Splits cluster settings out of `settings` (a config file's object or the serve flags),
 * returning them and what is left for the node's own config.
 */
export function extractClusterSettings(settings: Record<string, unknown>): { cluster: Record<string, unknown>; rest: Record<string, unknown> } {
  const cluster: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(settings)) {
    const key = snake(name);
    if ((NAMES as readonly string[]).includes(key)) cluster[key] = value;
    else rest[name] = value;
  }
  return { cluster, rest };
}

function text(value: unknown, name: string): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new ClusterConfigError(`${name} must be a string`);
  return value;
}

function whole(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const parsed = typeof value === 'string' ? Number(value) : value;
  if (typeof parsed !== 'number' || !Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new ClusterConfigError(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

/**
 * The cluster config from merged settings (file first, flags over it), or null when no
 * cluster setting was given: then the node runs alone, as before.
 */
export function parseClusterConfig(settings: Record<string, unknown>, env: NodeJS.ProcessEnv, warn: Warn = warnOnStderr): ClusterConfig | null {
  const given = Object.entries(settings).some(([name, value]) => !NOT_CLUSTER.has(name) && value !== undefined);
  if (!given) return null;
  const node_id = text(settings['node_id'], 'node_id');
  if (node_id === '') throw new ClusterConfigError('cluster settings need --node-id');
  // Empty: the listen URL, known once listening (fine on one machine; boards need --advertise).
  const advertise = text(settings['advertise'], 'advertise');
  if (advertise !== '' && advertise !== 'auto' && !/^wss?:\/\/[^/]+/.test(advertise)) throw new ClusterConfigError(`advertise must be ws://host:port or auto, got ${JSON.stringify(advertise)}`);
  const join_value = settings['join'];
  let join = join_value === undefined ? [] : Array.isArray(join_value) ? join_value.map((u) => text(u, 'join')) : text(join_value, 'join').split(',').filter((u) => u !== '');
  const cluster_secret = secretSetting(settings, 'cluster_secret', env['PIKV_CLUSTER_SECRET'], 'cluster secret', warn);
  if (cluster_secret === '') throw new ClusterConfigError('a cluster node needs the cluster secret: set PIKV_CLUSTER_SECRET or give --cluster-secret-file FILE');
  let peers: RingNode[] = [];
  if (settings['peers'] !== undefined) {
    try {
      peers = checkView({ epoch: 1, nodes: settings['peers'] }).nodes;
    } catch (error) {
      throw new ClusterConfigError(`peers: ${(error as ViewError).message}`);
    }
    if (!peers.some((peer) => peer.id === node_id)) throw new ClusterConfigError(`peers must list this node ("${node_id}")`);
  }
  const heartbeat_interval_ms = whole(settings['heartbeat_interval_ms'], 'heartbeat_interval_ms', 500, 50, 60_000);
  const etcd_value = settings['etcd'];
  let etcd = etcd_value === undefined ? [] : Array.isArray(etcd_value) ? etcd_value.map((u) => text(u, 'etcd')) : text(etcd_value, 'etcd').split(',').filter((u) => u !== '');
  // `auto`: find this cluster's etcd on the LAN by mDNS (docs/CLUSTER.md); `--join auto` says the same.
  const etcd_discover = (etcd.length === 1 && etcd[0] === 'auto') || (join.length === 1 && join[0] === 'auto');
  if (etcd_discover) {
    if ((etcd.length > 0 && etcd[0] !== 'auto') || (join.length > 0 && join[0] !== 'auto') || peers.length > 0) {
      throw new ClusterConfigError('--etcd auto (or --join auto) finds etcd on the LAN: give no etcd URLs, --join URLs or peers with it');
    }
    etcd = [];
    join = [];
  }
  if (etcd.includes('auto') || join.includes('auto')) throw new ClusterConfigError('auto must be the only value of --etcd or --join');
  for (const url of etcd) if (!/^https?:\/\/[^/]+/.test(url)) throw new ClusterConfigError(`etcd URLs must be http://host:port, got ${JSON.stringify(url)}`);
  const mdns = text(settings['mdns'], 'mdns') || 'auto';
  if (mdns !== 'auto' && mdns !== 'on' && mdns !== 'off') throw new ClusterConfigError(`mdns must be auto, on or off, got ${JSON.stringify(mdns)}`);
  const mdns_interface = text(settings['mdns_interface'], 'mdns_interface');
  if (mdns_interface !== '' && !/^\d{1,3}(\.\d{1,3}){3}$/.test(mdns_interface)) throw new ClusterConfigError(`mdns_interface must be an IPv4 address of this machine, got ${JSON.stringify(mdns_interface)}`);
  if (etcd_discover && mdns === 'off') throw new ClusterConfigError('--etcd auto finds etcd by mDNS: it does not work with --mdns off');
  if (etcd.length > 0 && (join.length > 0 || peers.length > 0)) throw new ClusterConfigError('with --etcd, membership comes from etcd: drop --join and peers');
  const cluster_name = text(settings['cluster_name'], 'cluster_name') || 'pikv';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cluster_name)) throw new ClusterConfigError(`cluster_name must be 1-64 letters, digits, '_', '.' or '-', got ${JSON.stringify(cluster_name)}`);
  return {
    node_id,
    advertise: advertise.replace(/\/+$/, ''),
    advertise_wait_ms: whole(settings['advertise_wait_ms'], 'advertise_wait_ms', 60_000, 0, 3_600_000),
    join,
    cluster_secret,
    client_token: resolveClientToken(settings, env, warn),
    weight: whole(settings['weight'], 'weight', 1, 1, NODE_WEIGHT_MAX),
    peers,
    heartbeat_interval_ms,
    heartbeats_missed_max: 3,
    forward_timeout_ms: whole(settings['forward_timeout_ms'], 'forward_timeout_ms', 5_000, 100, 600_000),
    etcd,
    cluster_name,
    lease_ttl_ms: whole(settings['lease_ttl_ms'], 'lease_ttl_ms', 3_000, 1_000, 60_000),
    controller_tick_ms: whole(settings['controller_tick_ms'], 'controller_tick_ms', 200, 10, 10_000),
    replicas: whole(settings['replicas'], 'replicas', 2, 1, REPLICAS_MAX),
    min_replicas: whole(settings['min_replicas'], 'min_replicas', 1, 1, REPLICAS_MAX),
    down_grace_ms: whole(settings['down_grace_ms'], 'down_grace_ms', 60_000, 0, 86_400_000),
    tls_ca: readCaFile(text(settings['tls_ca_file'], 'tls_ca_file')),
    etcd_discover,
    mdns,
    mdns_interface,
    formation_status_file: text(settings['formation_status_file'], 'formation_status_file'),
  };
}

/** The CA file's PEM text, or '' when none is given; a clear error if it cannot be read. */
function readCaFile(path: string): string {
  if (path === '') return '';
  try {
    const pem = readFileSync(path, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    return pem;
  } catch (error) {
    throw new ClusterConfigError(`tls_ca_file ${path}: ${(error as Error).message}`);
  }
}

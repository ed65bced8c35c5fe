/**
 * Server settings: defaults, a JSON config file, and command-line flags, merged in that order.
 *
 * Every limit the node enforces is a field here, so docs/ and `pikv serve --help` can list them
 * from one place. Sizes accept numbers of bytes or strings such as "512mb" (1024-based).
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import bytes from 'bytes';
import { TABLE_BYTES_MAX, VALUE_BYTES_MAX } from '../hashmap/index.js';
import { FSYNC_POLICIES, type FsyncPolicy } from '../persistence/options.js';

export interface ServerConfig {
  host: string;
  port: number;
  /**
   * The RESP2 (Redis protocol) listener's port on `host` (docs/RESP.md); 0 picks a free one,
   * null is off. Flag `--resp-port`, file `resp_port`; "off" turns it off.
   */
  resp_port: number | null;
  /**
   * True when resp_port came from a flag or the config file. Only the default port may be
   * taken without failing start-up (a Redis already on 6379 must not stop `npm start`); an
   * explicit one that is taken is an error. Not a setting: applySettings sets it.
   */
  resp_port_explicit: boolean;
  /**
   * PEM certificate chain and private key files: with both, the node serves wss:// (TLS) on its
   * port instead of ws:// (docs/CLUSTER.md, TLS). Empty: plain ws://.
   */
  tls_cert_file: string;
  tls_key_file: string;
  workers: number;
  /** Memory for all partitions' tables together; each partition gets an equal share. */
  memory_bytes_max: number;
  key_bytes_max: number;
  value_bytes_max: number;
  batch_ops_max: number;
  frame_bytes_max: number;
  /** Result bytes one response may carry; GETs past it fail with RESPONSE_TOO_LARGE. */
  response_bytes_max: number;
  /** Requests read from one connection but not yet answered; beyond it the socket is not read. */
  connection_requests_inflight_max: number;
  /**
   * Response bytes one connection may have queued or on their way: bytes ws has not written
   * yet, values already found for its unanswered requests, and an estimate for GETs not yet
   * executed. Beyond it the socket is not read. One response is always admitted, so this
   * need not cover response_bytes_max.
   */
  connection_send_bytes_max: number;
  /**
   * The two limits above for connections authenticated as cluster peers: one peer link carries
   * the forwarded traffic of all the other node's clients and its data moves, so it gets more.
   */
  peer_requests_inflight_max: number;
  peer_send_bytes_max: number;
  /**
   * Request bytes one peer data connection may have in flight before it is not read. Peers have
   * this budget each, apart from node_inflight_bytes_max (the clients'): two nodes forwarding to
   * each other must not pause each other because their clients filled the node's budget
   * (docs/CLUSTER.md, "Peer links").
   */
  peer_inflight_bytes_max: number;
  /** A client connection that stays past connection_send_bytes_max this long is closed (1008 SLOW_CLIENT); never a peer. */
  slow_client_timeout_ms: number;
  /** A socket that has not finished its WebSocket upgrade in this time is closed. */
  handshake_timeout_ms: number;
  /** A client connection holding part of a frame for this long is closed (1008 FRAME_TIMEOUT); never a peer. */
  frame_timeout_ms: number;
  /** A client connection with nothing sent or in flight for this long is closed (1000 IDLE); 0 = never. */
  idle_timeout_ms: number;
  /**
   * The HTTP API (docs/PROTOCOL.md, "HTTP"): how long a keep-alive socket may wait for its next
   * request. Unlike idle_timeout_ms it is on by default: an HTTP client that is done rarely
   * closes, and each idle socket holds one of connections_max.
   */
  http_keep_alive_timeout_ms: number;
  connections_max: number;
  /** Sockets (handshaking or open) from one IP address; 0 = no per-address limit. */
  connections_per_ip_max: number;
  /** Request bytes being worked on across the node; beyond it no socket is read. */
  node_inflight_bytes_max: number;
  /** Request-level errors one connection may cause per second before it is closed. */
  connection_errors_per_second_max: number;
  shutdown_timeout_ms: number;
  /** Persistence (docs/PERSISTENCE.md): off while empty; then no file is read or written. */
  data_dir: string;
  fsync: FsyncPolicy;
  /** A partition's files are compacted once they pass this and twice its payload. */
  compact_min_bytes: number;
  /** "on": compaction deflates the snapshot records that compress (docs/PERSISTENCE.md, "Compressed snapshot records"). */
  snapshot_compress: 'on' | 'off';
  /** Start even if the data directory is damaged, dropping what cannot be read. */
  repair: boolean;
  /**
   * "on": count ops by type and result and request latency for /metrics and the dashboard
   * (docs/OBSERVABILITY.md); "off" takes that counting out of the data path, so its cost can be
   * measured. /metrics and the dashboard still serve everything else.
   */
  metrics: 'on' | 'off';
  /**
   * Whether this node's clock may be trusted for expiries (docs/PROTOCOL.md, "Expiry"): "auto"
   * asks systemd (timedatectl NTPSynchronized) and, where that cannot answer, checks that the
   * year is at least 2024; "yes" and "no" decide without looking. A node whose clock is not
   * synchronised answers CLOCK_UNSYNCED to ops that depend on the time.
   */
  clock_sync: string;
  /** Enables DEBUG_KILL_WORKER. Only from the PIKV_TEST_HOOKS=1 environment variable. */
  test_hooks: boolean;
  /** RESP FLUSHALL / FLUSHDB empty the store (the whole cluster); refused without it. Flag `--allow-flush`. */
  allow_flush: boolean;
}

/** Redis's own port: redis-cli, ioredis and redis-py reach pikv without being told a port. */
export const DEFAULT_RESP_PORT = 6379;

/** Default memory budget: half of this machine's RAM, leaving the rest to the OS, Node and buffers. */
export const DEFAULT_MEMORY_SHARE = 0.5;

export function defaultConfig(): ServerConfig {
  return {
    host: '127.0.0.1',
    port: 7070,
    resp_port: DEFAULT_RESP_PORT,
    resp_port_explicit: false,
    tls_cert_file: '',
    tls_key_file: '',
    workers: 4,
    memory_bytes_max: Math.floor(totalmem() * DEFAULT_MEMORY_SHARE),
    key_bytes_max: 1024,
    value_bytes_max: 8 * 1024 * 1024,
    batch_ops_max: 65_536,
    frame_bytes_max: 64 * 1024 * 1024,
    response_bytes_max: 64 * 1024 * 1024,
    connection_requests_inflight_max: 64,
    connection_send_bytes_max: 16 * 1024 * 1024,
    peer_requests_inflight_max: 256,
    peer_send_bytes_max: 64 * 1024 * 1024,
    peer_inflight_bytes_max: 64 * 1024 * 1024,
    slow_client_timeout_ms: 10_000,
    handshake_timeout_ms: 5_000,
    frame_timeout_ms: 30_000,
    idle_timeout_ms: 0,
    http_keep_alive_timeout_ms: 5_000,
    connections_max: 1024,
    connections_per_ip_max: 0,
    node_inflight_bytes_max: 256 * 1024 * 1024,
    connection_errors_per_second_max: 100,
    shutdown_timeout_ms: 10_000,
    data_dir: '',
    fsync: 'everysec',
    compact_min_bytes: 64 * 1024 * 1024,
    snapshot_compress: 'on',
    repair: false,
    metrics: 'on',
    clock_sync: 'auto',
    test_hooks: process.env['PIKV_TEST_HOOKS'] === '1',
    allow_flush: false,
  };
}

/** Config-file and flag names (kebab-case on the command line, snake_case in files). */
const SIZE_FIELDS = new Set<keyof ServerConfig>([
  'memory_bytes_max', 'key_bytes_max', 'value_bytes_max', 'frame_bytes_max', 'response_bytes_max',
  'connection_send_bytes_max', 'peer_send_bytes_max', 'peer_inflight_bytes_max', 'node_inflight_bytes_max', 'compact_min_bytes',
]);
const COUNT_FIELDS = new Set<keyof ServerConfig>([
  'port', 'workers', 'batch_ops_max', 'connection_requests_inflight_max', 'peer_requests_inflight_max', 'connections_max',
  'connection_errors_per_second_max', 'shutdown_timeout_ms', 'slow_client_timeout_ms', 'handshake_timeout_ms',
  'frame_timeout_ms', 'idle_timeout_ms', 'connections_per_ip_max', 'http_keep_alive_timeout_ms',
]);
/** Friendlier aliases accepted in config files, matching the CLI flags. */
const ALIASES: Readonly<Record<string, keyof ServerConfig>> = {
  max_memory: 'memory_bytes_max',
  'max-memory': 'memory_bytes_max',
};

/**
 * The default memory (a share of RAM) capped so that no worker is asked for more than one table
 * can hold (TABLE_BYTES_MAX): on a big machine with few workers it would be. A size the user
 * gave is not capped; validateConfig refuses it with a clear message instead.
 */
export function capDefaultMemory(config: ServerConfig): ServerConfig {
  return { ...config, memory_bytes_max: Math.min(config.memory_bytes_max, config.workers * TABLE_BYTES_MAX) };
}

export class ConfigError extends Error {
  readonly code = 'BAD_CONFIG';
}

export function parseSize(value: unknown, name: string): number {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? bytes.parse(value) : NaN;
  if (parsed === null || !Number.isSafeInteger(parsed) || parsed < 0) {
    throw new ConfigError(`${name}: expected a size such as 1048576 or "512mb", got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function parseCount(value: unknown, name: string): number {
  const parsed = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof parsed !== 'number' || !Number.isSafeInteger(parsed) || parsed < 0) {
    throw new ConfigError(`${name}: expected a whole number, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function parseBoolean(value: unknown, name: string): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ConfigError(`${name}: expected true or false, got ${JSON.stringify(value)}`);
}

/** A port number, or "off" (also false or null in a config file) for no listener. */
function parseOptionalPort(value: unknown, name: string): number | null {
  if (value === 'off' || value === false || value === null) return null;
  const port = parseCount(value, name);
  if (port > 65_535) throw new ConfigError(`${name}: expected a port 0..65535 or "off", got ${JSON.stringify(value)}`);
  return port;
}

/** Settings a file or flag may not set: the environment or applySettings itself sets them. */
const INTERNAL_FIELDS = new Set<string>(['test_hooks', 'resp_port_explicit']);

/** Applies `overrides` (from a file or flags; unknown names are an error) onto `config`. */
export function applySettings(config: ServerConfig, overrides: Record<string, unknown>, source: string): ServerConfig {
  const result = { ...config };
  for (const [raw_name, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const name = (ALIASES[raw_name] ?? raw_name.replace(/-/g, '_')) as keyof ServerConfig;
    if (!(name in result) || INTERNAL_FIELDS.has(name)) throw new ConfigError(`${source}: unknown setting "${raw_name}"`);
    if (name === 'resp_port') {
      result.resp_port = parseOptionalPort(value, `${source}: ${raw_name}`);
      result.resp_port_explicit = true;
    } else if (SIZE_FIELDS.has(name)) (result[name] as number) = parseSize(value, `${source}: ${raw_name}`);
    else if (COUNT_FIELDS.has(name)) (result[name] as number) = parseCount(value, `${source}: ${raw_name}`);
    else if (name === 'repair' || name === 'allow_flush') result[name] = parseBoolean(value, `${source}: ${raw_name}`);
    else if (typeof value === 'string') (result[name] as string) = value;
    else throw new ConfigError(`${source}: ${raw_name} must be a string`);
  }
  return result;
}

export function loadConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** Checks the merged settings against each other; throws ConfigError naming the first bad one. */
export function validateConfig(config: ServerConfig): ServerConfig {
  const check = (ok: boolean, message: string): void => {
    if (!ok) throw new ConfigError(message);
  };
  check(config.port <= 65_535, `port must be 0..65535, got ${config.port}`);
  check((config.tls_cert_file === '') === (config.tls_key_file === ''), 'tls_cert_file and tls_key_file go together: give both for wss://, or neither');
  check(config.workers >= 1 && config.workers <= 64, `workers must be 1..64, got ${config.workers}`);
  check(config.key_bytes_max <= 65_535, 'key_bytes_max must be at most 65535');
  check(config.batch_ops_max >= 1, 'batch_ops_max must be at least 1');
  check(config.connection_requests_inflight_max >= 1, 'connection_requests_inflight_max must be at least 1');
  check(config.frame_bytes_max >= 1024, 'frame_bytes_max must be at least 1024');
  check(config.connections_max >= 1, 'connections_max must be at least 1');
  check(config.connection_send_bytes_max >= 64 * 1024, 'connection_send_bytes_max must be at least 64kb');
  check(config.peer_requests_inflight_max >= 1, 'peer_requests_inflight_max must be at least 1');
  check(config.peer_send_bytes_max >= 64 * 1024, 'peer_send_bytes_max must be at least 64kb');
  check(config.peer_inflight_bytes_max >= 1024 * 1024, 'peer_inflight_bytes_max must be at least 1mb');
  check(config.slow_client_timeout_ms >= 100, 'slow_client_timeout_ms must be at least 100');
  check(config.handshake_timeout_ms >= 100, 'handshake_timeout_ms must be at least 100');
  check(config.frame_timeout_ms >= 100, 'frame_timeout_ms must be at least 100');
  check(config.http_keep_alive_timeout_ms >= 100, 'http_keep_alive_timeout_ms must be at least 100');
  check(config.response_bytes_max >= config.value_bytes_max, 'response_bytes_max must be at least value_bytes_max, or a largest value could never be read');
  check(config.response_bytes_max <= 1024 ** 3, 'response_bytes_max must be at most 1 GiB');
  const partition_bytes = Math.floor(config.memory_bytes_max / config.workers);
  check(partition_bytes >= 1024 * 1024, `max memory must give each worker at least 1 MiB (got ${partition_bytes} B each)`);
  check(partition_bytes <= TABLE_BYTES_MAX, `max memory per worker is ${TABLE_BYTES_MAX} B; add workers or lower --max-memory`);
  check(config.value_bytes_max <= VALUE_BYTES_MAX, `value_bytes_max must be at most ${VALUE_BYTES_MAX} (1 GiB)`);
  check(config.frame_bytes_max >= config.value_bytes_max, 'frame_bytes_max must be at least value_bytes_max, or a largest value could never be sent');
  check((FSYNC_POLICIES as readonly string[]).includes(config.fsync), `fsync must be one of ${FSYNC_POLICIES.join(', ')}, got ${JSON.stringify(config.fsync)}`);
  check(config.compact_min_bytes >= 4096, 'compact_min_bytes must be at least 4kb');
  check(!config.repair || config.data_dir !== '', 'repair needs data_dir');
  check(config.snapshot_compress === 'on' || config.snapshot_compress === 'off', `snapshot_compress must be on or off, got ${JSON.stringify(config.snapshot_compress)}`);
  check(config.metrics === 'on' || config.metrics === 'off', `metrics must be on or off, got ${JSON.stringify(config.metrics)}`);
  check(['auto', 'yes', 'no'].includes(config.clock_sync), `clock_sync must be auto, yes or no, got ${JSON.stringify(config.clock_sync)}`);
  return config;
}

/**
 * The per-card config of the Pi image: `pikv.json` on the FAT boot partition, editable from any
 * OS. This file is its one schema: the field table below is what pi-image/README.md documents,
 * what the node validates on every start (pi-image/start.ts) and what the image verifier checks
 * (pi-image/verify.ts).
 *
 * A card file is checked in two steps: first against this schema (types, ranges, fields that
 * belong together), then the settings it gives pikv are run through pikv's own parsers
 * (src/node/config.ts, src/cluster/cluster-config.ts), so a file that passes here is a file
 * `pikv serve --config` accepts. Every problem is reported, not only the first.
 */
import { applySettings, defaultConfig, validateConfig } from '../src/node/config.js';
import { extractClusterSettings, parseClusterConfig } from '../src/cluster/cluster-config.js';

export type FieldKind = 'string' | 'port' | 'count' | 'size' | 'strings' | 'peers' | 'wifi' | 'object';

export interface Field {
  kind: FieldKind;
  /** Used when the field is absent; undefined means "not set" (pikv's own default applies). */
  fallback: unknown;
  doc: string;
}

/** Where the service keeps its data: StateDirectory=pikv of files/pikv.service, on the root fs. */
export const DATA_DIR = '/var/lib/pikv';
export const HOSTNAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NODE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const CLUSTER_SECRET_LENGTH_MIN = 16;

export const FIELDS: Readonly<Record<string, Field>> = {
  hostname: { kind: 'string', fallback: 'pikv', doc: 'the board\'s hostname (lower-case letters, digits, "-")' },
  node_id: { kind: 'string', fallback: undefined, doc: 'cluster: this node\'s stable name; needed with any cluster setting' },
  host: { kind: 'string', fallback: '0.0.0.0', doc: 'address to listen on' },
  port: { kind: 'port', fallback: 7070, doc: 'port to listen on' },
  advertise: { kind: 'string', fallback: undefined, doc: 'cluster: ws://<this board\'s LAN address>:<port>, how peers and clients reach it' },
  join: { kind: 'strings', fallback: undefined, doc: 'cluster: ws:// URLs of running nodes to ask for admission' },
  peers: { kind: 'peers', fallback: undefined, doc: 'cluster: the initial membership, [{"id", "url", "weight"?}], the same on every card' },
  cluster_secret: { kind: 'string', fallback: undefined, doc: `cluster: shared secret, the same on every card, at least ${CLUSTER_SECRET_LENGTH_MIN} characters (handed to pikv in a 0600 file, never on argv)` },
  weight: { kind: 'count', fallback: undefined, doc: 'cluster: relative capacity 1..16 (default 1)' },
  max_memory: { kind: 'size', fallback: undefined, doc: 'memory for all tables, e.g. "512mb" (default: half of RAM)' },
  workers: { kind: 'count', fallback: undefined, doc: 'partition worker threads (default 4, one per core)' },
  data_dir: { kind: 'string', fallback: DATA_DIR, doc: `persistence directory, "${DATA_DIR}" (on the root filesystem) or "" for none` },
  fsync: { kind: 'string', fallback: undefined, doc: 'with data_dir: always | everysec | no (default everysec)' },
  ssh_authorized_keys: { kind: 'strings', fallback: [], doc: 'public keys allowed to log in as root over SSH (the only way in: there is no password)' },
  wifi: { kind: 'wifi', fallback: undefined, doc: 'optional: {"ssid", "psk", "country"} (country: two-letter code, e.g. "GB")' },
  serve: { kind: 'object', fallback: {}, doc: 'any other `pikv serve` setting, as in its --config file (README.md)' },
};

/** Settings of `serve` that the fields above own, or that the image fixes. */
const SERVE_RESERVED = new Set(['host', 'port', 'data_dir', 'node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight', 'max_memory', 'workers', 'fsync', 'config']);

export interface WifiConfig {
  ssid: string;
  psk: string;
  country: string;
}

/** A card file after checking, with every default filled in. */
export interface CardConfig {
  hostname: string;
  ssh_authorized_keys: string[];
  wifi: WifiConfig | null;
  /** The JSON object handed to `pikv serve --config`. */
  serve: Record<string, unknown>;
}

export type CheckResult = { ok: true; config: CardConfig } | { ok: false; errors: string[] };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkKind(name: string, kind: FieldKind, value: unknown, errors: string[]): void {
  const fail = (expected: string): void => {
    errors.push(`${name}: expected ${expected}, got ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case 'string':
      if (typeof value !== 'string') fail('a string');
      return;
    case 'port':
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 65_535) fail('a port number 1..65535');
      return;
    case 'count':
      if (!Number.isInteger(value) || (value as number) < 1) fail('a whole number of at least 1');
      return;
    case 'size':
      if (typeof value !== 'string' && !Number.isInteger(value)) fail('a size such as "512mb" or a number of bytes');
      return;
    case 'strings':
      if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) fail('a list of strings');
      return;
    case 'peers':
      if (!Array.isArray(value) || value.length === 0) fail('a non-empty list of {"id", "url"}');
      return;
    case 'wifi':
      if (!isObject(value)) fail('{"ssid", "psk", "country"}');
      return;
    case 'object':
      if (!isObject(value)) fail('a JSON object');
      return;
  }
}

function checkWifi(value: Record<string, unknown>, errors: string[]): WifiConfig | null {
  const ssid = value['ssid'];
  const psk = value['psk'];
  const country = value['country'];
  for (const name of Object.keys(value)) {
    if (!['ssid', 'psk', 'country'].includes(name)) errors.push(`wifi: unknown field "${name}"`);
  }
  if (typeof ssid !== 'string' || ssid.length < 1 || ssid.length > 32) errors.push('wifi.ssid: expected 1..32 characters');
  // WPA2-PSK: a passphrase of 8..63 printable characters (or 64 hex digits).
  if (typeof psk !== 'string' || psk.length < 8 || psk.length > 64) errors.push('wifi.psk: expected a WPA passphrase of 8..63 characters');
  if (typeof country !== 'string' || !/^[A-Z]{2}$/.test(country)) errors.push('wifi.country: expected a two-letter country code such as "GB" (radio regulations)');
  for (const [name, text] of [['ssid', ssid], ['psk', psk]] as const) {
    if (typeof text === 'string' && /["\\\n\r]/.test(text)) errors.push(`wifi.${name}: must not contain quotes, backslashes or line breaks`);
  }
  if (errors.length > 0) return null;
  return { ssid: ssid as string, psk: psk as string, country: country as string };
}

function checkCluster(card: Record<string, unknown>, errors: string[]): void {
  const clustered = ['node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight'].some((name) => card[name] !== undefined);
  if (!clustered) return;
  if (card['node_id'] === undefined) errors.push('node_id: needed with any cluster setting (advertise, join, peers, cluster_secret, weight)');
  else if (typeof card['node_id'] === 'string' && !NODE_ID_PATTERN.test(card['node_id'])) errors.push('node_id: expected 1..64 of A-Z a-z 0-9 _ . -');
  // Without advertise a node would tell its peers ws://0.0.0.0:7070, which no peer can reach.
  if (card['advertise'] === undefined) errors.push('advertise: needed in a cluster: ws://<this board\'s LAN address>:<port>');
  const secret = card['cluster_secret'];
  if (secret === undefined) errors.push('cluster_secret: needed in a cluster (the same on every card)');
  else if (typeof secret === 'string' && secret.length < CLUSTER_SECRET_LENGTH_MIN) errors.push(`cluster_secret: at least ${CLUSTER_SECRET_LENGTH_MIN} characters`);
  if (card['join'] !== undefined && card['peers'] !== undefined) errors.push('join and peers: give one or the other (peers on every card, or join on the new ones)');
}

/** The `pikv serve --config` object for a checked card (defaults filled in). */
function serveSettings(card: Record<string, unknown>): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...(card['serve'] as Record<string, unknown> | undefined) };
  for (const name of ['host', 'port', 'data_dir', 'node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight', 'max_memory', 'workers', 'fsync']) {
    const value = card[name] ?? FIELDS[name]!.fallback;
    if (value !== undefined) settings[name] = value;
  }
  return settings;
}

/** Runs the settings through pikv's own parsers, so anything `pikv serve` would refuse fails here. */
function checkWithPikv(settings: Record<string, unknown>, errors: string[]): void {
  try {
    const { cluster, rest } = extractClusterSettings(settings);
    validateConfig(applySettings(defaultConfig(), rest, 'pikv.json'));
    // The environment is not consulted: on a card, the secret must be in the file.
    parseClusterConfig(cluster, {});
  } catch (error) {
    errors.push((error as Error).message);
  }
}

/** Checks a parsed card file against the schema and pikv's own rules. */
export function checkCardConfig(value: unknown): CheckResult {
  if (!isObject(value)) return { ok: false, errors: ['pikv.json must hold a JSON object { ... }'] };
  const errors: string[] = [];
  for (const [name, item] of Object.entries(value)) {
    const field = FIELDS[name];
    if (field === undefined) {
      errors.push(`unknown field "${name}" (known: ${Object.keys(FIELDS).join(', ')})`);
      continue;
    }
    checkKind(name, field.kind, item, errors);
  }
  const hostname = (value['hostname'] ?? FIELDS['hostname']!.fallback) as string;
  if (typeof hostname === 'string' && !HOSTNAME_PATTERN.test(hostname)) errors.push(`hostname: expected lower-case letters, digits and "-" (at most 63), got ${JSON.stringify(hostname)}`);
  const data_dir = value['data_dir'];
  if (typeof data_dir === 'string' && data_dir !== '' && data_dir !== DATA_DIR && !data_dir.startsWith(`${DATA_DIR}/`)) {
    errors.push(`data_dir: must be "${DATA_DIR}" (or a folder in it), the only place the service may write, or "" for none`);
  }
  const keys = (value['ssh_authorized_keys'] ?? []) as unknown[];
  if (Array.isArray(keys)) {
    keys.forEach((key, index) => {
      if (typeof key === 'string' && !/^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?$/.test(key.trim())) {
        errors.push(`ssh_authorized_keys[${index}]: not a public key line such as "ssh-ed25519 AAAA... you@laptop"`);
      }
    });
  }
  if (isObject(value['serve'])) {
    for (const name of Object.keys(value['serve'])) {
      if (SERVE_RESERVED.has(name)) errors.push(`serve.${name}: set it as the top-level field "${name}" instead`);
    }
  }
  const wifi = isObject(value['wifi']) ? checkWifi(value['wifi'], errors) : null;
  checkCluster(value, errors);
  if (errors.length > 0) return { ok: false, errors };
  const serve = serveSettings(value);
  checkWithPikv(serve, errors);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: { hostname, ssh_authorized_keys: (keys as string[]).map((key) => key.trim()), wifi, serve } };
}

/** Checks the text of a card file (JSON parse errors are reported like schema errors). */
export function checkCardText(text: string): CheckResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { ok: false, errors: [`pikv.json is not valid JSON: ${(error as Error).message}`] };
  }
  return checkCardConfig(parsed);
}

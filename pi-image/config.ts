/**
 * The per-card config of the Pi image: `pikv.json` on the FAT boot partition, editable from any
 * OS. This file is its one schema: the field table below is what pi-image/README.md documents,
 * what the node validates on every start (pi-image/card.ts) and what the image verifier checks
 * (pi-image/verify.ts).
 *
 * Membership comes in two forms. A card with `etcd` runs pikv against etcd (`pikv serve --etcd
 * ... --cluster-name ...`, docs/MEMBERSHIP.md); three boards of such a cluster also run an etcd
 * member (`etcd_member`, files/etcd.service.d/pikv.conf). A card without `etcd` keeps the
 * gossip membership of `peers`/`join` exactly as the previous image did, so old cards stay valid.
 *
 * A card file is checked in two steps: first against this schema (types, ranges, fields that
 * belong together), then the settings it gives pikv are run through pikv's own parsers
 * (src/node/config.ts, src/cluster/cluster-config.ts), so a file that passes here is a file
 * `pikv serve --config` accepts. Every problem is reported, not only the first.
 */
import { applySettings, defaultConfig, validateConfig } from '../src/node/config.js';
import { extractClusterSettings, parseClusterConfig } from '../src/cluster/cluster-config.js';
import { isIP } from 'node:net';

export type FieldKind = 'string' | 'boolean' | 'port' | 'count' | 'size' | 'strings' | 'etcd' | 'peers' | 'wifi' | 'object';

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
/**
 * As checkClusterName in src/cluster/etcd/keys.ts (the name is a segment of every etcd key).
 * Copied, not imported: that module loads the etcd3/gRPC client, which would add about a second
 * to every check on a Pi 3 (card.js runs before each start of pikv and of etcd).
 */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** etcd's default client port, used in examples and error messages. */
export const ETCD_CLIENT_PORT = 2379;
/**
 * Members an etcd cluster may have. An even count tolerates no more failed members than one
 * fewer (2 tolerate 0, like 1; 4 tolerate 1, like 3) and every member slows each write.
 */
export const ETCD_MEMBER_COUNTS: readonly number[] = [1, 3, 5];

export const FIELDS: Readonly<Record<string, Field>> = {
  hostname: { kind: 'string', fallback: 'pikv', doc: 'the board\'s hostname (lower-case letters, digits, "-"; default: node_id when it is one, else "pikv")' },
  node_id: { kind: 'string', fallback: undefined, doc: 'cluster: this node\'s stable name; needed with any cluster setting' },
  host: { kind: 'string', fallback: '0.0.0.0', doc: 'address to listen on' },
  port: { kind: 'port', fallback: 7070, doc: 'port to listen on' },
  advertise: { kind: 'string', fallback: undefined, doc: 'cluster: ws://<this board\'s LAN address>:<port>, how peers and clients reach it (default "auto": the address the board has at boot, on the interface of its default route)' },
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
  etcd: { kind: 'etcd', fallback: undefined, doc: `etcd cluster (the default "auto" on a card with node_id and no peers or join): client URLs of every etcd member, ["http://10.0.0.11:${ETCD_CLIENT_PORT}", ...], the same on every card; replaces peers/join. "auto" (not on etcd member boards): find them on the LAN by mDNS, trusted only once the view stored there passes the HMAC check with the cluster secret; with "etcd_member": true, the member boards form the etcd cluster by mDNS (pikv etcd-form)` },
  cluster_name: { kind: 'string', fallback: 'pikv', doc: 'etcd cluster: the name of this pikv cluster in etcd (its keys live under /pikv/<name>/)' },
  etcd_member: { kind: 'boolean', fallback: false, doc: 'etcd cluster: true on the (1, 3 or 5) boards that also run an etcd member' },
  etcd_members: { kind: 'count', fallback: 3, doc: 'with "etcd": "auto" and "etcd_member": true: how many member boards form the etcd cluster (1, 3 or 5; default 3), the same on every member card' },
  etcd_name: { kind: 'string', fallback: undefined, doc: 'etcd member: this member\'s name in etcd_initial_cluster (default: node_id)' },
  etcd_initial_cluster: { kind: 'string', fallback: undefined, doc: 'etcd member: every member as "name=http://<LAN IP>:2380,...", the same on every member card' },
  etcd_initial_cluster_state: { kind: 'string', fallback: 'new', doc: 'etcd member: "new" when the cluster is first created, "existing" for a replacement member' },
};

/** Settings of `serve` that the fields above own, or that the image fixes. */
const SERVE_RESERVED = new Set(['host', 'port', 'data_dir', 'node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight', 'max_memory', 'workers', 'fsync', 'config',
  'etcd', 'cluster_name', 'cluster_secret_file']);
/** Fields that only an etcd member board uses. */
const ETCD_MEMBER_FIELDS = ['etcd_name', 'etcd_initial_cluster', 'etcd_initial_cluster_state'] as const;

export interface WifiConfig {
  ssid: string;
  psk: string;
  country: string;
}

/** One member of etcd_initial_cluster. */
export interface EtcdPeer {
  name: string;
  /** http://<IP>:<port>, as written on the card. */
  peer_url: string;
}

/** The etcd member this board runs (files/etcd.service.d/pikv.conf, card.js etcd-config). */
export interface EtcdMemberConfig {
  name: string;
  initial_cluster: EtcdPeer[];
  initial_cluster_state: 'new' | 'existing';
  /** This board's LAN address, from its own entry in initial_cluster: etcd listens there. */
  address: string;
  peer_url: string;
  /** This member's URL in the card's `etcd` list (etcd listens there, and on 127.0.0.1). */
  client_url: string;
}

/** pikv against etcd: what card.js turns into `pikv serve` flags and a secret file. */
export interface EtcdServeConfig {
  cluster_name: string;
  endpoints: string[];
  node_id: string;
  advertise: string;
  weight: number | undefined;
  /** Handed to pikv in a file (--cluster-secret-file), never on its command line. */
  cluster_secret: string;
  /** Null on boards that only run pikv. */
  member: EtcdMemberConfig | null;
  /** `"etcd": "auto"` on a member board: the etcd cluster is formed by mDNS (pikv etcd-form) from this many member boards. Null otherwise. */
  formation: { members: number } | null;
}

/** A card file after checking, with every default filled in. */
export interface CardConfig {
  hostname: string;
  ssh_authorized_keys: string[];
  wifi: WifiConfig | null;
  /** The JSON object handed to `pikv serve --config` (with etcd: without the cluster settings). */
  serve: Record<string, unknown>;
  /** Set when the card has `etcd`; null: single node or gossip membership, as before. */
  etcd: EtcdServeConfig | null;
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
    case 'boolean':
      if (typeof value !== 'boolean') fail('true or false');
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
    case 'etcd':
      if (value !== 'auto' && (!Array.isArray(value) || value.some((item) => typeof item !== 'string'))) fail('a list of etcd client URLs, or "auto"');
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
  const clustered = ['node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight', 'etcd'].some((name) => card[name] !== undefined);
  if (!clustered) return;
  if (card['node_id'] === undefined) errors.push('node_id: needed with any cluster setting (advertise, join, peers, etcd, cluster_secret, weight)');
  else if (typeof card['node_id'] === 'string' && !NODE_ID_PATTERN.test(card['node_id'])) errors.push('node_id: expected 1..64 of A-Z a-z 0-9 _ . -');
  const secret = card['cluster_secret'];
  if (secret === undefined) errors.push('cluster_secret: needed in a cluster (the same on every card)');
  else if (typeof secret === 'string' && secret.length < CLUSTER_SECRET_LENGTH_MIN) errors.push(`cluster_secret: at least ${CLUSTER_SECRET_LENGTH_MIN} characters`);
  if (card['join'] !== undefined && card['peers'] !== undefined) errors.push('join and peers: give one or the other (peers on every card, or join on the new ones)');
}

/**
 * An etcd URL as the card must give it: http, an explicit port (a forgotten ":2379" would
 * otherwise mean port 80), nothing after the port. With `ip_only`, the host must be an IP
 * address: etcd binds to the host of its listen URLs and refuses names there.
 */
function checkEtcdUrl(text: string, ip_only: boolean): { url: URL; address: string } | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:') return 'must start with http:// (the image\'s etcd members serve plain http on the LAN)';
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || url.pathname !== '/' || /[/?#]$/.test(text)) return 'must be only http://host:port';
  // Checked on the text: URL drops a port equal to the scheme's default (":80").
  if (!/:\d+$/.test(text)) return 'needs an explicit port, as in http://10.0.0.11:2379';
  if (text.includes(',')) return 'must not contain ","';
  const address = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (ip_only && isIP(address) === 0) return `the host must be an IP address (etcd listens on it), not ${JSON.stringify(url.hostname)}`;
  return { url, address };
}

/** "name=http://ip:2380,..." as etcd's --initial-cluster, one URL per member. */
function parseInitialCluster(text: string, errors: string[]): EtcdPeer[] {
  const peers: EtcdPeer[] = [];
  const hosts = new Set<string>();
  const where = 'etcd_initial_cluster';
  for (const entry of text.split(',').map((item) => item.trim())) {
    const equals = entry.indexOf('=');
    if (equals <= 0) {
      errors.push(`${where}: ${JSON.stringify(entry)} is not name=http://<LAN IP>:2380`);
      continue;
    }
    const name = entry.slice(0, equals);
    const peer_url = entry.slice(equals + 1);
    if (!NODE_ID_PATTERN.test(name)) errors.push(`${where}: member name ${JSON.stringify(name)}: expected 1..64 of A-Z a-z 0-9 _ . -`);
    const checked = checkEtcdUrl(peer_url, true);
    if (typeof checked === 'string') errors.push(`${where}: ${name}=${peer_url}: ${checked}`);
    if (peers.some((peer) => peer.name === name)) errors.push(`${where}: lists ${name} twice (one peer URL per member)`);
    else if (typeof checked !== 'string' && hosts.has(checked.url.host)) errors.push(`${where}: ${checked.url.host} is given to two members`);
    if (typeof checked !== 'string') hosts.add(checked.url.host);
    peers.push({ name, peer_url });
  }
  if (!ETCD_MEMBER_COUNTS.includes(peers.length)) {
    errors.push(`${where}: lists ${peers.length} member${peers.length === 1 ? '' : 's'}; an etcd cluster needs ${ETCD_MEMBER_COUNTS.join(', ').replace(/, (\d+)$/, ' or $1')} ` +
      '(2 members survive no failure, like 1; 4 survive one, like 3)');
  }
  return peers;
}

/**
 * The etcd settings of a card: URLs well-formed, nothing of the gossip membership alongside,
 * and on a member board an initial cluster of 1, 3 or 5 that lists this board, whose address is
 * also in `etcd`. Null when the card has no `etcd` (errors are reported, not returned).
 */
function checkEtcd(card: Record<string, unknown>, errors: string[]): EtcdServeConfig | null {
  const etcd = card['etcd'];
  const member_flag = card['etcd_member'];
  if (etcd === undefined) {
    if (card['cluster_name'] !== undefined) errors.push('cluster_name: only used with "etcd" (the gossip membership of peers/join has no cluster name)');
    if (member_flag === true) errors.push('etcd_member: a member board runs pikv against etcd too: set "etcd" to the client URLs of every member');
  }
  // Member settings on a card that does not say etcd_member: true are most likely a board meant
  // to be a member; silently not running etcd there would leave the cluster a member short.
  // An explicit false keeps them (a board taken out of etcd but not yet cleaned up).
  if (member_flag !== true && member_flag !== false) {
    for (const name of ETCD_MEMBER_FIELDS) {
      if (card[name] !== undefined) errors.push(`${name}: only used with "etcd_member": true (set that, or remove ${name})`);
    }
  }
  if (etcd === 'auto') return checkEtcdAuto(card, member_flag, errors);
  if (etcd === undefined || !Array.isArray(etcd) || etcd.some((item) => typeof item !== 'string')) return null;
  const endpoints = etcd as string[];
  const error_count = errors.length;
  if (endpoints.length === 0) errors.push(`etcd: expected the client URL of every etcd member, such as ["http://10.0.0.11:${ETCD_CLIENT_PORT}"]`);
  const hosts = new Set<string>();
  for (const endpoint of endpoints) {
    const checked = checkEtcdUrl(endpoint, false);
    if (typeof checked === 'string') errors.push(`etcd: ${JSON.stringify(endpoint)}: ${checked}`);
    else if (hosts.has(checked.url.host)) errors.push(`etcd: ${checked.url.host} is listed twice`);
    else hosts.add(checked.url.host);
  }
  for (const name of ['peers', 'join']) {
    if (card[name] !== undefined) errors.push(`${name}: not used with "etcd" (the membership lives in etcd); remove ${name}`);
  }
  const cluster_name = card['cluster_name'] ?? FIELDS['cluster_name']!.fallback;
  if (typeof cluster_name === 'string' && !CLUSTER_NAME_PATTERN.test(cluster_name)) errors.push(`cluster_name: expected 1..64 of A-Z a-z 0-9 _ . -, got ${JSON.stringify(cluster_name)}`);
  const state = card['etcd_initial_cluster_state'] ?? FIELDS['etcd_initial_cluster_state']!.fallback;
  if (state !== 'new' && state !== 'existing') errors.push(`etcd_initial_cluster_state: expected "new" or "existing", got ${JSON.stringify(state)}`);

  let member: EtcdMemberConfig | null = null;
  if (member_flag === true) {
    const name = card['etcd_name'] ?? card['node_id'];
    const text = card['etcd_initial_cluster'];
    if (text === undefined) {
      errors.push('etcd_initial_cluster: needed with "etcd_member": true: every member as "name=http://<LAN IP>:2380,...", the same on every member card');
    } else if (typeof text === 'string' && typeof name === 'string') {
      if (card['etcd_name'] !== undefined && !NODE_ID_PATTERN.test(name)) errors.push('etcd_name: expected 1..64 of A-Z a-z 0-9 _ . -');
      const peers = parseInitialCluster(text, errors);
      const own = peers.find((peer) => peer.name === name);
      if (own === undefined) {
        errors.push(`etcd_initial_cluster: must list this board's member "${name}" (etcd_name, else node_id) as ${name}=http://<its LAN IP>:2380; ` +
          `it lists ${peers.map((peer) => peer.name).join(', ') || 'nobody'}`);
      } else {
        const own_url = checkEtcdUrl(own.peer_url, true);
        if (typeof own_url !== 'string') {
          const client_url = endpoints.find((endpoint) => {
            const checked = checkEtcdUrl(endpoint, false);
            return typeof checked !== 'string' && checked.address === own_url.address;
          });
          // Without it no pikv node would ever talk to this member, and a typo in either list
          // would go unnoticed until a failure leaves etcd without a majority.
          if (client_url === undefined) errors.push(`etcd: must list this member's client URL, http://${own_url.url.hostname}:${ETCD_CLIENT_PORT} (its address in etcd_initial_cluster)`);
          else member = { name, initial_cluster: peers, initial_cluster_state: state as 'new' | 'existing', address: own_url.address, peer_url: own.peer_url, client_url };
        }
      }
    }
  }
  if (card['etcd_members'] !== undefined) errors.push('etcd_members: only used with "etcd": "auto" and "etcd_member": true (etcd formed by mDNS); etcd_initial_cluster says the members here');
  if (errors.length > error_count) return null;
  return {
    cluster_name: cluster_name as string,
    endpoints,
    node_id: card['node_id'] as string,
    advertise: card['advertise'] as string,
    weight: card['weight'] as number | undefined,
    cluster_secret: card['cluster_secret'] as string,
    member,
    formation: null,
  };
}

/**
 * `"etcd": "auto"`: pikv finds the etcd members on the LAN (docs/CLUSTER.md, "Finding each other
 * on the LAN"). On a member board (`"etcd_member": true`) it means more: the member boards form
 * the etcd cluster themselves by mDNS (`pikv etcd-form`, files/pikv-etcd-form.service), and pikv
 * there uses its own board's etcd explicitly (so the first pikv node of a cluster is on a member
 * board, since a node never creates a cluster in an etcd it found on the LAN).
 */
function checkEtcdAuto(card: Record<string, unknown>, member_flag: unknown, errors: string[]): EtcdServeConfig | null {
  const error_count = errors.length;
  for (const name of ETCD_MEMBER_FIELDS) {
    if (card[name] !== undefined) errors.push(`${name}: not used with "etcd": "auto" (member boards find each other by mDNS); remove ${name}, or list the etcd URLs instead of "auto"`);
  }
  const members = card['etcd_members'] ?? FIELDS['etcd_members']!.fallback;
  if (card['etcd_members'] !== undefined && member_flag !== true) errors.push('etcd_members: only used with "etcd_member": true');
  else if (typeof members === 'number' && !ETCD_MEMBER_COUNTS.includes(members)) errors.push(`etcd_members: an etcd cluster needs 1, 3 or 5 members, got ${members}`);
  // A forming member's etcd listens on, and advertises, the address in its advertise URL.
  const advertise = card['advertise'];
  if (member_flag === true && typeof advertise === 'string' && advertise !== 'auto' && !/^wss?:\/\/\d{1,3}(\.\d{1,3}){3}:\d+$/.test(advertise)) {
    errors.push(`advertise: on an etcd member board with "etcd": "auto" it must be "auto" or ws://<this board's IPv4 address>:<port> (etcd listens on that address), got ${JSON.stringify(advertise)}`);
  }
  for (const name of ['peers', 'join']) {
    if (card[name] !== undefined) errors.push(`${name}: not used with "etcd" (the membership lives in etcd); remove ${name}`);
  }
  const cluster_name = card['cluster_name'] ?? FIELDS['cluster_name']!.fallback;
  if (typeof cluster_name === 'string' && !CLUSTER_NAME_PATTERN.test(cluster_name)) errors.push(`cluster_name: expected 1..64 of A-Z a-z 0-9 _ . -, got ${JSON.stringify(cluster_name)}`);
  if (errors.length > error_count) return null;
  return {
    cluster_name: cluster_name as string,
    endpoints: ['auto'],
    node_id: card['node_id'] as string,
    advertise: card['advertise'] as string,
    weight: card['weight'] as number | undefined,
    cluster_secret: card['cluster_secret'] as string,
    member: null,
    formation: member_flag === true ? { members: members as number } : null,
  };
}

/** The `pikv serve --config` object for a checked card (defaults filled in). */
function serveSettings(card: Record<string, unknown>, with_etcd: boolean): Record<string, unknown> {
  const settings: Record<string, unknown> = { ...(card['serve'] as Record<string, unknown> | undefined) };
  // With etcd the cluster settings go to pikv as flags, and the secret as a file (card.ts).
  const cluster = with_etcd ? [] : ['node_id', 'advertise', 'join', 'peers', 'cluster_secret', 'weight'];
  for (const name of ['host', 'port', 'data_dir', ...cluster, 'max_memory', 'workers', 'fsync']) {
    const value = card[name] ?? FIELDS[name]!.fallback;
    if (value !== undefined) settings[name] = value;
  }
  return settings;
}

/** Runs the settings through pikv's own parsers, so anything `pikv serve` would refuse fails here. */
function checkWithPikv(settings: Record<string, unknown>, etcd: EtcdServeConfig | null, errors: string[]): void {
  try {
    const { cluster, rest } = extractClusterSettings(settings);
    validateConfig(applySettings(defaultConfig(), rest, 'pikv.json'));
    // The environment is not consulted: on a card, the secret must be in the file. With etcd,
    // the settings the gossip parser shares with etcd mode (id, advertise, secret, weight) are
    // still checked by it; the etcd flags themselves are checked above.
    const shared = etcd === null ? cluster : { node_id: etcd.node_id, advertise: etcd.advertise, cluster_secret: etcd.cluster_secret, weight: etcd.weight };
    parseClusterConfig(shared, {});
  } catch (error) {
    errors.push((error as Error).message);
  }
}

/** Checks a parsed card file against the schema and pikv's own rules. */
/**
 * What a cluster card may leave out, so that identical cards differ only in node_id (and, on
 * the etcd member boards, "etcd_member": true): the hostname is the node id (pi1.local), the
 * address is the one the board has at boot (advertise "auto"), and etcd is found, or formed,
 * on the LAN ("etcd": "auto") unless the card lists peers or join for the gossip membership.
 */
function withClusterDefaults(card: Record<string, unknown>): Record<string, unknown> {
  const node_id = card['node_id'];
  if (typeof node_id !== 'string') return card;
  const filled = { ...card };
  if (filled['hostname'] === undefined && HOSTNAME_PATTERN.test(node_id.toLowerCase())) filled['hostname'] = node_id.toLowerCase();
  filled['advertise'] ??= 'auto';
  if (filled['etcd'] === undefined && filled['peers'] === undefined && filled['join'] === undefined) filled['etcd'] = 'auto';
  return filled;
}

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
  const card = withClusterDefaults(value);
  const hostname = (card['hostname'] ?? FIELDS['hostname']!.fallback) as string;
  if (typeof hostname === 'string' && !HOSTNAME_PATTERN.test(hostname)) errors.push(`hostname: expected lower-case letters, digits and "-" (at most 63), got ${JSON.stringify(hostname)}`);
  const data_dir = card['data_dir'];
  if (typeof data_dir === 'string' && data_dir !== '' && data_dir !== DATA_DIR && !data_dir.startsWith(`${DATA_DIR}/`)) {
    errors.push(`data_dir: must be "${DATA_DIR}" (or a folder in it), the only place the service may write, or "" for none`);
  }
  const keys = (card['ssh_authorized_keys'] ?? []) as unknown[];
  if (Array.isArray(keys)) {
    keys.forEach((key, index) => {
      if (typeof key === 'string' && !/^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?$/.test(key.trim())) {
        errors.push(`ssh_authorized_keys[${index}]: not a public key line such as "ssh-ed25519 AAAA... you@laptop"`);
      }
    });
  }
  if (isObject(card['serve'])) {
    for (const name of Object.keys(card['serve'])) {
      if (SERVE_RESERVED.has(name)) errors.push(`serve.${name}: set it as the top-level field "${name}" instead`);
    }
  }
  const wifi = isObject(card['wifi']) ? checkWifi(card['wifi'], errors) : null;
  checkCluster(card, errors);
  const etcd = checkEtcd(card, errors);
  if (errors.length > 0) return { ok: false, errors };
  const serve = serveSettings(card, etcd !== null);
  checkWithPikv(serve, etcd, errors);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: { hostname, ssh_authorized_keys: (keys as string[]).map((key) => key.trim()), wifi, serve, etcd } };
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

#!/usr/bin/env node
/**
 * What runs on the Pi with the card file /boot/firmware/pikv.json (schema: pi-image/config.ts):
 *
 *   card.js check FILE            print "ok" or every problem; exit 0, or 78 when bad
 *   card.js apply-system FILE     as root at boot (pikv-firstboot): hostname, root's SSH keys, Wi-Fi
 *   card.js serve FILE            the pikv.service main process: check, then run `pikv serve`
 *   card.js etcd-member FILE      etcd.service's ExecCondition: exit 0 on an etcd member board,
 *                                 1 on any other (systemd then skips etcd, not failing it)
 *   card.js etcd-config FILE OUT [--address-wait-s N]
 *                                 etcd.service's ExecStartPre, as root: etcd's config file from
 *                                 the card, once this board has the address etcd listens on
 *   card.js etcd-form-member FILE pikv-etcd-form.service's ExecCondition: exit 0 on a member
 *                                 board whose etcd forms by mDNS ("etcd": "auto"), 1 on others
 *   card.js etcd-form FILE        pikv-etcd-form.service's main process: `pikv etcd-form` with
 *                                 the card's settings (the secret in a 0400 file beside FILE)
 *
 * A bad file exits 78 (EX_CONFIG) with one line per problem on stderr, which the journal keeps;
 * files/pikv.service has RestartPreventExitStatus=78, so the node then stays down instead of
 * restarting in a loop, and `systemctl status pikv` shows why. etcd-member exits 78 too, which
 * systemd counts as "condition not met": etcd stays down, logged, without a restart loop.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkCardText, ETCD_CLIENT_PORT, type CardConfig, type EtcdServeConfig } from './config.js';
import { waitForLanAddress } from '../src/cluster/discovery/lan-address.js';

export const EXIT_BAD_CONFIG = 78;
/** ExecCondition: 1..254 make systemd skip the unit without marking it failed. */
export const EXIT_NOT_ETCD_MEMBER = 1;
/** The file in pikv's runtime directory (/run/pikv, 0700, user pikv) that holds the secret. */
export const SECRET_FILE_NAME = 'cluster-secret';
/** etcd's data on the root filesystem; /var/lib/etcd is the etcd user's (Debian's package, StateDirectory). */
export const ETCD_DATA_DIR = '/var/lib/etcd/pikv';
/** Where `pikv etcd-form` reports its state (files/pikv-etcd-form.service's RuntimeDirectory), read by pikv for its dashboard. */
export const FORMATION_DIR = '/run/pikv-etcd-form';
export const FORMATION_STATUS_FILE = `${FORMATION_DIR}/formation.json`;

/**
 * etcd's settings for a Pi LAN. The heartbeat and election timeout are twice etcd's defaults
 * (100/1000 ms): an SD card's fsync can stall for hundreds of milliseconds, and at the
 * defaults that costs needless leader elections. 2000 ms is also the largest election timeout
 * that keeps pikv's default 3000 ms lease: etcd grants no lease shorter than 1.5 election
 * timeouts (docs/ETCD.md). Compaction keeps 1000 revisions (watchers that fall further behind
 * re-read the view); pikv's data in etcd is kilobytes, so a 1 GiB quota is far above need yet
 * cannot fill a small card.
 */
export const ETCD_SETTINGS = {
  heartbeat_interval_ms: 200,
  election_timeout_ms: 2000,
  quota_backend_bytes: 1024 ** 3,
  auto_compaction_retention_revisions: 1000,
} as const;
/** How long etcd-config waits for this board's address (DHCP can be slow after power-on). */
const ADDRESS_WAIT_S = 60;

function load(file: string, service = 'pikv'): CardConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    fail(file, [`cannot read it: ${(error as Error).message}. Put a pikv.json on the card's boot partition (pi-image/README.md).`], service);
  }
  const result = checkCardText(text);
  if (!result.ok) fail(file, result.errors, service);
  return result.config;
}

function fail(file: string, errors: string[], service = 'pikv'): never {
  process.stderr.write(`pikv: bad config ${file}; ${service} stays down until it is fixed (see pi-image/README.md):\n`);
  for (const error of errors) process.stderr.write(`pikv:   ${error}\n`);
  process.exit(EXIT_BAD_CONFIG);
}

function writePrivate(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

/** Hostname, root's authorized_keys and Wi-Fi, written under `root` ("/" on the Pi). */
export function applySystem(config: CardConfig, root: string): void {
  writeFileSync(join(root, 'etc/hostname'), `${config.hostname}\n`);
  const hosts = join(root, 'etc/hosts');
  let hosts_text = '';
  try {
    hosts_text = readFileSync(hosts, 'utf8');
  } catch {
    hosts_text = '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n';
  }
  const other_lines = hosts_text.split('\n').filter((line) => line !== '' && !line.startsWith('127.0.1.1'));
  writeFileSync(hosts, `${other_lines.join('\n')}\n127.0.1.1\t${config.hostname}\n`);
  const keys = config.ssh_authorized_keys.map((key) => `${key}\n`).join('');
  mkdirSync(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  writePrivate(join(root, 'root/.ssh/authorized_keys'), keys, 0o600);
  const wifi_conf = join(root, 'etc/wpa_supplicant/pikv-wlan0.conf');
  const wifi_interface = join(root, 'etc/network/interfaces.d/wlan0');
  if (config.wifi === null) {
    writePrivate(wifi_interface, '# No Wi-Fi: set "wifi" in pikv.json on the boot partition.\n', 0o644);
    writePrivate(wifi_conf, '', 0o600);
    return;
  }
  writePrivate(wifi_conf, [
    'ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev',
    `country=${config.wifi.country}`,
    'network={',
    `\tssid="${config.wifi.ssid}"`,
    `\tpsk="${config.wifi.psk}"`,
    '}',
    '',
  ].join('\n'), 0o600);
  writePrivate(wifi_interface, ['allow-hotplug wlan0', 'iface wlan0 inet dhcp', '\twpa-conf /etc/wpa_supplicant/pikv-wlan0.conf', ''].join('\n'), 0o644);
}

/**
 * The `pikv serve` arguments for a checked card. With etcd, the cluster settings are flags
 * and the secret is named by --cluster-secret-file: the command line of every process is
 * readable by every user of the board (/proc/PID/cmdline), the file only by pikv and root.
 */
export function pikvServeArgs(config: CardConfig, serve_file: string, secret_file: string): string[] {
  const args = ['serve', '--config', serve_file];
  const etcd = config.etcd;
  if (etcd === null) return args;
  // On a member board whose etcd forms by mDNS, pikv uses its own board's member (explicitly:
  // a node never creates a cluster in an etcd it found on the LAN, and someone must), and shows
  // what formation waits for.
  const endpoints = etcd.formation === null ? etcd.endpoints.join(',') : `http://${boardAddress(etcd)}:${ETCD_CLIENT_PORT}`;
  args.push('--node-id', etcd.node_id, '--advertise', etcd.advertise, '--etcd', endpoints,
    '--cluster-name', etcd.cluster_name, '--cluster-secret-file', secret_file);
  if (etcd.formation !== null) args.push('--formation-status-file', FORMATION_STATUS_FILE);
  if (etcd.weight !== undefined) args.push('--weight', String(etcd.weight));
  return args;
}

/**
 * Writes the serve settings next to the card copy (0600: without etcd they hold the secret),
 * with etcd the secret file (0400, exactly the secret, no newline), and runs pikv.
 */
async function serve(file: string): Promise<void> {
  const config = load(file);
  const dir = dirname(file);
  const serve_file = join(dir, 'serve.json');
  const secret_file = join(dir, SECRET_FILE_NAME);
  writePrivate(serve_file, `${JSON.stringify(config.serve, null, 2)}\n`, 0o600);
  // Removed first: a 0400 file left by an earlier run in the same directory cannot be rewritten.
  rmSync(secret_file, { force: true });
  if (config.etcd !== null) writePrivate(secret_file, config.etcd.cluster_secret, 0o400);
  // A member board forming etcd uses its own member at its LAN address, which "auto" must
  // name first (pikv serve resolves --advertise auto itself on every other card).
  if (config.etcd?.formation != null && config.etcd.advertise === 'auto') {
    config.etcd.advertise = `ws://${await lanAddressOrExit('pikv')}:${String(config.serve['port'])}`;
  }
  // Same process, so systemd supervises pikv itself: its exit code and signals are the unit's.
  const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
  process.argv = [process.argv[0]!, main, ...pikvServeArgs(config, serve_file, secret_file)];
  await import(pathToFileURL(main).href);
}

/**
 * etcd's config file (YAML; every value a JSON scalar, which YAML reads as the same value).
 * Given with --config-file, etcd ignores its flags and ETCD_* variables, so this file is all
 * of its configuration. Listens on the board's LAN address (from its own entry in the initial
 * cluster) and, for etcdctl on the board, on 127.0.0.1.
 */
export function etcdConfigYaml(etcd: EtcdServeConfig, data_dir = ETCD_DATA_DIR): string {
  const member = etcd.member;
  if (member === null) throw new Error('etcdConfigYaml: this card runs no etcd member');
  const client_port = new URL(member.client_url).port;
  const loopback = member.address === '127.0.0.1' ? [] : [`http://127.0.0.1:${client_port}`];
  const settings: [string, string | number, string][] = [
    ['name', member.name, 'etcd_name (else node_id)'],
    ['data-dir', data_dir, 'on the root filesystem; kept across reboots and image updates of pikv'],
    ['initial-cluster', member.initial_cluster.map((peer) => `${peer.name}=${peer.peer_url}`).join(','), 'used only when the data dir is empty'],
    ['initial-cluster-state', member.initial_cluster_state, '"existing" only for a replacement member'],
    ['initial-cluster-token', `pikv-${etcd.cluster_name}`, 'keeps members of different clusters from joining each other'],
    ['initial-advertise-peer-urls', member.peer_url, ''],
    ['listen-peer-urls', member.peer_url, ''],
    ['advertise-client-urls', member.client_url, ''],
    ['listen-client-urls', [member.client_url, ...loopback].join(','), ''],
    ['heartbeat-interval', ETCD_SETTINGS.heartbeat_interval_ms, 'ms; see ETCD_SETTINGS in pi-image/card.ts'],
    ['election-timeout', ETCD_SETTINGS.election_timeout_ms, 'ms; at most 2/3 of pikv\'s lease TTL'],
    ['auto-compaction-mode', 'revision', ''],
    ['auto-compaction-retention', String(ETCD_SETTINGS.auto_compaction_retention_revisions), 'revisions'],
    ['quota-backend-bytes', ETCD_SETTINGS.quota_backend_bytes, ''],
    ['logger', 'zap', 'to stderr, so the journal (journalctl -u etcd)'],
  ];
  const lines = settings.map(([key, value, why]) => `${key}: ${JSON.stringify(value)}${why === '' ? '' : `  # ${why}`}`);
  return ['# Written by pikv (card.js etcd-config) from /boot/firmware/pikv.json at each start of etcd.service.',
    '# Edit pikv.json, not this file (pi-image/README.md).', ...lines, ''].join('\n');
}

function hasAddress(address: string): boolean {
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((item) => item.address.toLowerCase() === address.toLowerCase()));
}

/** etcd cannot bind to an address the board does not have yet (DHCP), nor to another board's. */
async function waitForAddress(address: string, wait_s: number): Promise<void> {
  const deadline = Date.now() + wait_s * 1000;
  while (!hasAddress(address)) {
    if (Date.now() >= deadline) {
      const have = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((item) => item.address));
      process.stderr.write(`pikv: etcd listens on ${address} (this board's entry in etcd_initial_cluster), but after ${wait_s}s this board has only ${have.join(', ')}. ` +
        'Give the board that fixed address (a DHCP reservation), or correct etcd_initial_cluster; etcd.service tries again.\n');
      process.exit(1);
    }
    await sleep(500);
  }
}

async function etcdConfig(file: string, out: string, wait_s: number): Promise<void> {
  const config = load(file, 'etcd');
  if (config.etcd === null || config.etcd.member === null) {
    // etcd-member said otherwise a moment ago: the card changed in between. Stop, not guess.
    process.stderr.write(`pikv: ${file} no longer makes this board an etcd member; etcd not started\n`);
    process.exit(EXIT_BAD_CONFIG);
  }
  await waitForAddress(config.etcd.member.address, wait_s);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, etcdConfigYaml(config.etcd), { mode: 0o644 });
  process.stdout.write(`pikv: etcd member ${config.etcd.member.name} of cluster ${config.etcd.cluster_name}, on ${config.etcd.member.peer_url}: ${out}\n`);
}

/** This board's address by the rule of `--advertise auto` (src/cluster/discovery/lan-address.ts), waiting for DHCP; exit 1 (systemd restarts) when there is none. */
async function lanAddressOrExit(service: string): Promise<string> {
  try {
    return await waitForLanAddress(ADDRESS_WAIT_S * 1000, (message) => process.stdout.write(`pikv: ${message}\n`));
  } catch (error) {
    process.stderr.write(`pikv: ${(error as Error).message}; ${service} tries again\n`);
    process.exit(1);
  }
}

/** A formation board's LAN address: the host of its `advertise` URL (an IP address, as the card check requires there; "auto" is resolved before this is called). */
export function boardAddress(etcd: EtcdServeConfig): string {
  return new URL(etcd.advertise).hostname;
}

/** The `pikv etcd-form` arguments for a member board whose etcd forms by mDNS. */
export function etcdFormArgs(etcd: EtcdServeConfig, secret_file: string, status_file: string, data_dir = ETCD_DATA_DIR): string[] {
  if (etcd.formation === null) throw new Error('etcdFormArgs: this card does not form etcd by mDNS');
  return ['etcd-form', '--name', etcd.node_id, '--cluster-name', etcd.cluster_name, '--members', String(etcd.formation.members),
    '--address', boardAddress(etcd), '--data-dir', data_dir, '--status-file', status_file, '--cluster-secret-file', secret_file,
    '--heartbeat-interval-ms', String(ETCD_SETTINGS.heartbeat_interval_ms), '--election-timeout-ms', String(ETCD_SETTINGS.election_timeout_ms)];
}

function etcdFormMember(file: string): void {
  const config = load(file, 'pikv-etcd-form');
  if (config.etcd?.formation == null) {
    process.stdout.write(`pikv: this board does not form etcd by mDNS ("etcd": "auto" with "etcd_member": true in ${file}); pikv-etcd-form stays off\n`);
    process.exit(EXIT_NOT_ETCD_MEMBER);
  }
  process.stdout.write(`pikv: this board is etcd member ${config.etcd.node_id}, formed by mDNS with ${config.etcd.formation.members - 1} other board(s)\n`);
}

/** Runs `pikv etcd-form` in this process (systemd supervises it; etcd is its child), the secret in a 0400 file beside FILE. */
async function etcdForm(file: string): Promise<void> {
  const config = load(file, 'pikv-etcd-form');
  if (config.etcd?.formation == null) {
    process.stderr.write(`pikv: ${file} does not make this board an etcd member formed by mDNS; not started\n`);
    process.exit(EXIT_BAD_CONFIG);
  }
  const dir = dirname(file);
  const secret_file = join(dir, SECRET_FILE_NAME);
  rmSync(secret_file, { force: true });
  writePrivate(secret_file, config.etcd.cluster_secret, 0o400);
  if (config.etcd.advertise === 'auto') config.etcd.advertise = `ws://${await lanAddressOrExit('pikv-etcd-form')}:${String(config.serve['port'])}`;
  await waitForAddress(boardAddress(config.etcd), ADDRESS_WAIT_S);
  const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
  process.argv = [process.argv[0]!, main, ...etcdFormArgs(config.etcd, secret_file, join(dir, 'formation.json'))];
  await import(pathToFileURL(main).href);
}

function etcdMember(file: string): void {
  const config = load(file, 'etcd');
  if (config.etcd?.formation != null) {
    process.stdout.write(`pikv: this board's etcd member forms by mDNS ("etcd": "auto"): it runs under pikv-etcd-form.service, not etcd.service\n`);
    process.exit(EXIT_NOT_ETCD_MEMBER);
  }
  if (config.etcd?.member == null) {
    process.stdout.write(`pikv: this board runs no etcd member ("etcd_member" is not true in ${file}); etcd stays off\n`);
    process.exit(EXIT_NOT_ETCD_MEMBER);
  }
  process.stdout.write(`pikv: this board is etcd member ${config.etcd.member.name}\n`);
}

const USAGE = 'usage: card.js check|apply-system|serve|etcd-member|etcd-form-member|etcd-form FILE, or card.js etcd-config FILE OUT [--address-wait-s N]\n';

async function run(argv: string[]): Promise<void> {
  const [command, file, third, ...rest] = argv;
  if (file === undefined || !['check', 'apply-system', 'serve', 'etcd-member', 'etcd-config', 'etcd-form-member', 'etcd-form'].includes(command ?? '') || (command === 'etcd-config' && third === undefined)) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  if (command === 'check') {
    load(file);
    process.stdout.write(`${file}: ok\n`);
  } else if (command === 'apply-system') {
    applySystem(load(file), third ?? '/');
  } else if (command === 'etcd-member') {
    etcdMember(file);
  } else if (command === 'etcd-form-member') {
    etcdFormMember(file);
  } else if (command === 'etcd-form') {
    await etcdForm(file);
  } else if (command === 'etcd-config') {
    let wait_s = ADDRESS_WAIT_S;
    if (rest[0] === '--address-wait-s') wait_s = Number(rest[1]);
    if (!Number.isFinite(wait_s) || wait_s < 0 || (rest.length > 0 && rest.length !== 2) || (rest.length === 2 && rest[0] !== '--address-wait-s')) {
      process.stderr.write(USAGE);
      process.exit(2);
    }
    await etcdConfig(file, third!, wait_s);
  } else {
    await serve(file);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run(process.argv.slice(2));
}

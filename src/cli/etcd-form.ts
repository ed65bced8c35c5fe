/**
 * `pikv etcd-form`: runs this board's etcd member, forming the etcd cluster with the other
 * member boards found on the LAN by mDNS when none exists yet (docs/CLUSTER.md, "Forming the
 * etcd cluster by mDNS"). The decision is formation.ts's; this is the process around it:
 *
 * - A data dir that already holds a member (`<data-dir>/member`) is restarted as it is, never
 *   re-formed; the list it was formed with (`<data-dir>/pikv-formation.json`) is advertised as
 *   `running`, so founders that boot late find it.
 * - Otherwise: advertise `forming` (with the proof), browse the others' claims and the pikv
 *   nodes' etcd endpoints (`_pikv._tcp`, each checked by its signed view, find-etcd.ts), and
 *   every `recheck_ms` ask decideFormation. A `form` is acted on only when two rounds in a row
 *   give the same list (after at least `settle_ms` of browsing), so one lost mDNS answer does
 *   not make a board decide on a partial picture. Then the list is saved, etcd is started with
 *   `--initial-cluster-state new`, that list, and the token made from it, and the claim turns
 *   `running`.
 * - It keeps advertising for as long as etcd runs (etcd is its child): a board that boots later
 *   must see the running cluster, not one member too few. SIGTERM/SIGINT stop etcd, then this.
 *   When etcd exits by itself this exits with its code (systemd restarts the unit).
 * - While waiting it says why, once per new reason, on stdout (the journal), and in
 *   `--status-file` (JSON) for pikv's status and dashboard.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decideFormation, formatInitialCluster, formationToken, parseInitialCluster, type InitialMember, type MemberClaim } from '../cluster/discovery/formation.js';
import { FormationAdvertiser, FormationBrowse } from '../cluster/discovery/formation-mdns.js';
import { Browse } from '../cluster/discovery/mdns.js';
import { waitForLanAddress } from '../cluster/discovery/lan-address.js';
import { candidateEndpoints, verifyEndpoint } from '../cluster/discovery/find-etcd.js';
import { etcdEnvironment } from '../cluster/etcd/local-server.js';
import { readSecretFile } from '../protocol/auth.js';

export interface EtcdFormOptions {
  name: string;
  clusterName: string;
  dataDir: string;
  members: string;
  address?: string;
  peerPort: string;
  clientPort: string;
  etcdBinary: string;
  statusFile?: string;
  clusterSecretFile?: string;
  mdnsInterface?: string;
  settleMs: string;
  recheckMs: string;
  heartbeatIntervalMs: string;
  electionTimeoutMs: string;
}

/** What --status-file holds; pikv's status shows it as `formation` (docs/CLUSTER.md). */
export interface FormationStatus {
  state: 'waiting' | 'starting' | 'running' | 'restarting';
  reason: string;
  cluster: string;
  name: string;
  expected: number;
  seen: string[];
  initial_cluster: string;
  updated_ms: number;
}

export class EtcdFormUsageError extends Error {
  readonly code = 'BAD_ARGUMENT';
}

const RECORD_FILE = 'pikv-formation.json';
/** How long to wait for this board's LAN address without --address (DHCP after power-on). */
const ADDRESS_WAIT_MS = 60_000;
const log = (message: string): void => console.log(`pikv etcd-form: ${message}`);

function integer(text: string, what: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new EtcdFormUsageError(`${what} must be an integer ${min}..${max}, got ${JSON.stringify(text)}`);
  return value;
}

/** --address, else this machine's one non-loopback IPv4 address (a board has one LAN address; with more, say which). */
/** This board's LAN address: --address, else the same choice as `pikv serve --advertise auto` (discovery/lan-address.ts), waiting for DHCP. */
export async function boardAddress(given: string | undefined, wait_ms = ADDRESS_WAIT_MS): Promise<string> {
  if (given !== undefined) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(given)) throw new EtcdFormUsageError(`--address must be an IPv4 address, got ${JSON.stringify(given)}`);
    return given;
  }
  try {
    return await waitForLanAddress(wait_ms, log);
  } catch (error) {
    throw new EtcdFormUsageError(`${(error as Error).message}; give --address`);
  }
}

function readSecret(options: EtcdFormOptions): string {
  const secret = options.clusterSecretFile !== undefined ? readSecretFile(options.clusterSecretFile, 'cluster secret', (m) => console.error(`pikv etcd-form: ${m}`)) : (process.env['PIKV_CLUSTER_SECRET'] ?? '');
  if (secret === '') throw new EtcdFormUsageError('etcd-form needs the cluster secret: set PIKV_CLUSTER_SECRET or give --cluster-secret-file FILE');
  return secret;
}

function writeJsonAtomic(path: string, value: unknown, mode = 0o644): void {
  const temp = `${path}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`, { mode });
  renameSync(temp, path);
}

export async function runEtcdForm(options: EtcdFormOptions): Promise<void> {
  const expected = integer(options.members, '--members', 1, 5);
  const peer_port = integer(options.peerPort, '--peer-port', 1, 65535);
  const client_port = integer(options.clientPort, '--client-port', 1, 65535);
  const settle_ms = integer(options.settleMs, '--settle-ms', 0, 600_000);
  const recheck_ms = integer(options.recheckMs, '--recheck-ms', 50, 600_000);
  const heartbeat_ms = integer(options.heartbeatIntervalMs, '--heartbeat-interval-ms', 10, 10_000);
  const election_ms = integer(options.electionTimeoutMs, '--election-timeout-ms', 50, 50_000);
  const secret = readSecret(options);
  const address = await boardAddress(options.address);
  const peer_url = `http://${address}:${peer_port}`;
  const client_url = `http://${address}:${client_port}`;
  const cluster = options.clusterName;
  const mdns = { log, interface_address: options.mdnsInterface ?? address };
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const record_path = join(options.dataDir, RECORD_FILE);

  let last_status = '';
  const status = (next: Omit<FormationStatus, 'cluster' | 'name' | 'expected' | 'updated_ms'>): void => {
    const key = JSON.stringify(next);
    if (key === last_status) return;
    last_status = key;
    // The file first: whoever reads the log line finds the file already saying the same.
    if (options.statusFile !== undefined) writeJsonAtomic(options.statusFile, { ...next, cluster, name: options.name, expected, updated_ms: Date.now() } satisfies FormationStatus);
    if (next.reason !== '') log(next.reason);
  };

  let stopping = false;
  let etcd: ChildProcess | null = null;
  let advertiser: FormationAdvertiser | null = null;
  let claims: FormationBrowse | null = null;
  let nodes: Browse | null = null;
  const closeDiscovery = async (): Promise<void> => {
    await Promise.all([claims?.stop(), nodes?.stop()]);
    claims = null;
    nodes = null;
  };
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received, stopping`);
    const child = etcd;
    const exited = child === null || child.exitCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child?.kill('SIGTERM');
    const killer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
    void Promise.all([exited, closeDiscovery(), advertiser?.stop()]).then(() => {
      clearTimeout(killer);
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  const claimOf = (state: MemberClaim['state'], initial_cluster: InitialMember[]): MemberClaim =>
    ({ cluster, name: options.name, peer_url, client_url, state, initial_cluster, time_s: Math.floor(Date.now() / 1000) });

  const startEtcd = (initial_cluster: InitialMember[], token: string): void => {
    const args = [
      '--name', options.name, '--data-dir', options.dataDir,
      '--listen-peer-urls', peer_url, '--initial-advertise-peer-urls', peer_url,
      '--listen-client-urls', `${client_url},http://127.0.0.1:${client_port}`, '--advertise-client-urls', client_url,
      '--initial-cluster', formatInitialCluster(initial_cluster), '--initial-cluster-state', 'new', '--initial-cluster-token', token,
      '--heartbeat-interval', String(heartbeat_ms), '--election-timeout', String(election_ms),
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000', '--quota-backend-bytes', String(1024 ** 3),
    ];
    log(`starting ${options.etcdBinary} ${args.join(' ')}`);
    // etcd's output goes where ours does (the journal); its sd_notify READY reaches systemd with NotifyAccess=all.
    // etcd does not need the cluster secret: it is left out of its environment (/proc/PID/environ).
    const env = { ...etcdEnvironment() };
    delete env['PIKV_CLUSTER_SECRET'];
    const child = spawn(options.etcdBinary, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    etcd = child;
    log(`etcd started, pid ${child.pid ?? '?'}`);
    child.on('error', (error) => {
      log(`cannot run ${options.etcdBinary}: ${error.message}`);
      if (!stopping) process.exit(1);
    });
    child.on('exit', (code, signal) => {
      if (stopping) return;
      log(`etcd exited (${code ?? signal}); stopping so that the service manager restarts this`);
      void advertiser?.stop().then(() => process.exit(code === 0 ? 1 : (code ?? 1)));
    });
  };

  // A member already here: restart it as it is. etcd ignores --initial-cluster then; it is given
  // the saved one only so that the flags say what the member was formed with.
  if (existsSync(join(options.dataDir, 'member'))) {
    let saved: InitialMember[] | null = null;
    try {
      saved = parseInitialCluster(String((JSON.parse(readFileSync(record_path, 'utf8')) as { initial_cluster?: unknown }).initial_cluster ?? ''));
    } catch { /* no record: a member made by hand; restarted all the same */ }
    const list = saved !== null && saved.length > 0 ? saved : [{ name: options.name, peer_url }];
    status({ state: 'restarting', reason: `${options.dataDir} already holds an etcd member: restarting it as it is (never re-formed)`, seen: [], initial_cluster: formatInitialCluster(list) });
    if (saved !== null && saved.length > 0) advertiser = new FormationAdvertiser(claimOf('running', saved), secret, mdns);
    startEtcd(list, formationToken(cluster, list));
    status({ state: 'running', reason: '', seen: [], initial_cluster: formatInitialCluster(list) });
    return;
  }

  advertiser = new FormationAdvertiser(claimOf('forming', []), secret, mdns);
  claims = new FormationBrowse(cluster, secret, mdns);
  nodes = new Browse(mdns);
  log(`member "${options.name}" of "${cluster}" at ${peer_url}: looking for the other ${expected - 1} etcd member board(s) on the LAN (mDNS _pikv-etcd._tcp, proof checked with the cluster secret)`);
  status({ state: 'waiting', reason: `waiting for etcd formation: looking for ${expected} members`, seen: [options.name], initial_cluster: '' });
  const started_ms = Date.now();
  let previous_token = '';
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, recheck_ms));
    if (stopping || claims === null || nodes === null) return;
    const seen = claims.claims().filter((claim) => claim.name !== options.name || claim.peer_url !== peer_url);
    const candidates = candidateEndpoints(nodes.nodes(), cluster);
    const verdicts = await Promise.all(candidates.map((endpoint) => verifyEndpoint(endpoint, cluster, secret)));
    const existing_etcd = verdicts.flatMap((v) => (v.outcome === 'verified' ? [v.endpoint] : []));
    const decision = decideFormation({ self: claimOf('forming', []), expected, seen, existing_etcd });
    const seen_names = [options.name, ...seen.map((claim) => claim.name)].sort();
    if (decision.action === 'wait') {
      previous_token = '';
      status({ state: 'waiting', reason: decision.reason, seen: seen_names, initial_cluster: '' });
      continue;
    }
    // Act only on a picture that held for two rounds, after the settle time.
    if (decision.token !== previous_token || Date.now() - started_ms < settle_ms) {
      previous_token = decision.token;
      continue;
    }
    if (stopping) return;
    const list = formatInitialCluster(decision.initial_cluster);
    writeJsonAtomic(record_path, { initial_cluster: list, token: decision.token, formed_ms: Date.now() }, 0o600);
    status({ state: 'starting', reason: `forming etcd: ${decision.why}; --initial-cluster ${list} --initial-cluster-token ${decision.token}`, seen: seen_names, initial_cluster: list });
    advertiser.update(claimOf('running', decision.initial_cluster));
    await closeDiscovery();
    startEtcd(decision.initial_cluster, decision.token);
    status({ state: 'running', reason: '', seen: seen_names, initial_cluster: list });
    return;
  }
}

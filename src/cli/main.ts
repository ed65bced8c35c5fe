#!/usr/bin/env node
/**
 * The `pikv` command: serve a node, or talk to one (get, put, del, load, stats, top), or run a dev cluster.
 *
 * Client commands take --url, defaulting to $PIKV_URL and then ws://127.0.0.1:7070. Exit codes:
 * 0 success, 1 a key was not found (get) or a load stopped on bad input, 2 any other error.
 */
import { Command, Option } from 'commander';
import { PikvError } from '../protocol/errors.js';

/**
 * Command modules are loaded when their command runs: `pikv get` should not pay for loading
 * the server, the loader and the cluster code (startup was ~170 ms with all of them).
 */
type Action = (...args: never[]) => Promise<void>;
function lazy<M, K extends keyof M>(load: () => Promise<M>, name: K): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const module = await load();
    await (module[name] as unknown as Action)(...(args as never[]));
  };
}
const commands = (): Promise<typeof import('./commands.js')> => import('./commands.js');
const cluster_commands = (): Promise<typeof import('./cluster.js')> => import('./cluster.js');
const runServe = lazy(() => import('./serve.js'), 'runServe');
const runLoad = lazy(() => import('./load.js'), 'runLoad');
const runGet = lazy(commands, 'runGet');
const runPut = lazy(commands, 'runPut');
const runDel = lazy(commands, 'runDel');
const runStats = lazy(commands, 'runStats');
const runKillWorker = lazy(commands, 'runKillWorker');
const runClusterStatus = lazy(cluster_commands, 'runClusterStatus');
const runClusterJoin = lazy(cluster_commands, 'runClusterJoin');
const runClusterLeave = lazy(cluster_commands, 'runClusterLeave');
const runClusterRemove = lazy(cluster_commands, 'runClusterRemove');
const runClusterSetReplicas = lazy(cluster_commands, 'runClusterSetReplicas');
const runClusterSetMinReplicas = lazy(cluster_commands, 'runClusterSetMinReplicas');
const runClusterSet = lazy(cluster_commands, 'runClusterSet');
const runDiscover = lazy(() => import('./discover.js'), 'runDiscover');
const runEtcdForm = lazy(() => import('./etcd-form.js'), 'runEtcdForm');
const runTop = lazy(() => import('./top.js'), 'runTop');
const runDevCluster = lazy(() => import('./dev-cluster.js'), 'runDevCluster');

export const DEFAULT_URL = 'ws://127.0.0.1:7070';
const EXIT_ERROR = 2;

function urlOption(): Option {
  return new Option('--url <url>', 'node to talk to').env('PIKV_URL').default(DEFAULT_URL);
}

const program = new Command();
program.name('pikv').description('pikv: an in-memory key-value store for clusters of small boards').version('0.1.0');

program
  .command('serve')
  .description('run a node in the foreground (Ctrl-C or SIGTERM stops it gracefully)')
  .option('--config <file>', 'JSON file with any of the settings below (flags win)')
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--port <port>', 'port to listen on; 0 picks a free one (default 7070)')
  .option('--resp-port <port>', 'Redis protocol (RESP2) port on the same host, for redis-cli, ioredis, redis-py; 0 picks a free one, off turns it off (default 6379; if 6379 is taken the node serves without RESP)')
  .option('--workers <n>', 'partition worker threads (default 4)')
  .option('--max-memory <size>', 'memory for all tables, e.g. 512mb (default: half of RAM)')
  .option('--key-bytes-max <size>', 'largest key (default 1kb)')
  .option('--value-bytes-max <size>', 'largest value (default 8mb)')
  .option('--batch-ops-max <n>', 'most ops in one request (default 65536)')
  .option('--frame-bytes-max <size>', 'largest WebSocket frame (default 64mb)')
  .option('--response-bytes-max <size>', 'most result bytes in one response (default 64mb)')
  .option('--connection-requests-inflight-max <n>', 'unanswered requests per connection before it is not read (default 64)')
  .option('--connections-max <n>', 'open connections (default 1024)')
  .option('--connection-send-bytes-max <size>', 'response bytes queued or on their way per connection before it is not read (default 16mb)')
  .option('--slow-client-timeout-ms <ms>', 'close a connection that stays past --connection-send-bytes-max this long (default 10000)')
  .option('--handshake-timeout-ms <ms>', 'close a socket that has not finished its WebSocket upgrade in this time (default 5000)')
  .option('--frame-timeout-ms <ms>', 'close a connection that holds a partial frame this long (default 30000)')
  .option('--idle-timeout-ms <ms>', 'close a client connection idle this long, as Redis\'s timeout (default 0: never)')
  .option('--http-keep-alive-timeout-ms <ms>', 'HTTP API: close a keep-alive socket with no new request this long (default 5000)')
  .option('--connections-per-ip-max <n>', 'sockets from one IP address (default 0: no limit)')
  .option('--data-dir <dir>', 'persist to this directory: per-worker logs and snapshots, recovered on start (default: off, nothing written)')
  .option('--fsync <policy>', 'with --data-dir: always | everysec | no, as Redis appendfsync (default everysec)')
  .option('--compact-min-bytes <size>', 'with --data-dir: compact a worker\'s files once past this and 2x its data (default 64mb)')
  .option('--snapshot-compress <on|off>', 'with --data-dir: deflate the snapshot records that compress, off the worker\'s thread (default on; docs/PERSISTENCE.md)')
  .option('--node-id <id>', 'cluster: this node\'s stable name (turns on cluster mode; see docs/CLUSTER.md)')
  .option('--advertise <url>', 'cluster: the ws://host:port peers and clients reach this node at (default: the listen address); "auto" = this machine\'s LAN address (the default route\'s interface, else its only one) and --port')
  .option('--advertise-wait-ms <ms>', 'cluster: with --advertise auto, how long to wait for a LAN address, as DHCP may be slow after power-on (default 60000)')
  .option('--etcd <urls>', 'cluster: etcd client URLs (comma-separated); the view and membership live there (docs/MEMBERSHIP.md); "auto" finds them on the LAN by mDNS, used only once the view stored there passes the HMAC check with the cluster secret (docs/CLUSTER.md)')
  .option('--formation-status-file <file>', 'cluster: on an etcd member board, the --status-file of pikv etcd-form: its state (waiting for etcd formation, and why) is shown in /v1/summary and the dashboard')
  .option('--mdns <mode>', 'cluster: advertise this node on the LAN as _pikv._tcp (mDNS): on, off, or auto = on unless the advertised URL is loopback (default auto)')
  .option('--mdns-interface <ip>', 'cluster: IPv4 address of the interface for mDNS (default: every interface; multicast leaves where the routes say)')
  .option('--cluster-name <name>', 'cluster: with --etcd, the key prefix in etcd, so clusters can share one (default pikv)')
  .option('--lease-ttl-ms <ms>', 'cluster: with --etcd, the etcd lease TTL; the node stops acknowledging writes before it runs out (default 3000)')
  .option('--controller-tick-ms <ms>', 'cluster: with --etcd, how often the elected controller looks for work (default 200)')
  .option('--tls-cert-file <file>', 'serve wss:// (TLS) on the port with this PEM certificate chain; needs --tls-key-file')
  .option('--tls-key-file <file>', 'the PEM private key of --tls-cert-file')
  .option('--tls-ca-file <file>', 'cluster: PEM CA certificate that peers\' wss:// certificates must verify against')
  .option('--replicas <n>', 'cluster: with --etcd, copies of each key (1..5) for a cluster this node creates; later: pikv cluster set-replicas (default 2)')
  .option('--min-replicas <m>', 'cluster: with --etcd, for a cluster this node creates: refuse writes to key ranges with fewer than M copies up (1..replicas; later: pikv cluster set-min-replicas; default 1)')
  .option('--down-grace-ms <ms>', 'cluster: with --etcd and 2+ copies, how long a down node keeps its place before its copies are rebuilt on others (default 60000)')
  .option('--join <urls>', 'cluster (gossip, without --etcd): ask these nodes (comma-separated) to admit this one; "auto" = --etcd auto')
  .option('--cluster-secret-file <file>', 'cluster: file holding the shared secret for peer links and admin ops (default: $PIKV_CLUSTER_SECRET; never on the command line)')
  .option('--weight <n>', 'cluster: relative capacity, 1..16 (default 1)')
  .option('--client-token-file <file>', 'file holding a token every client must send (WebSocket: x-pikv-client-token; HTTP: Authorization: Bearer; RESP: AUTH) (default: $PIKV_CLIENT_TOKEN)')
  .option('--peer-requests-inflight-max <n>', 'cluster: unanswered requests per authenticated peer connection (default 256)')
  .option('--peer-send-bytes-max <size>', 'cluster: response bytes queued per authenticated peer connection (default 64mb)')
  .option('--peer-inflight-bytes-max <size>', 'cluster: request bytes in flight per peer data connection, apart from the clients\' node budget (default 64mb)')
  .option('--heartbeat-interval-ms <ms>', 'cluster: heartbeat period; 3 missed answers mark a peer down (default 500)')
  .option('--forward-timeout-ms <ms>', 'cluster: bound on every forwarded request (default 5000)')
  .option('--repair', 'with --data-dir: start even if files are damaged, dropping what cannot be read')
  .option('--allow-flush', 'let RESP FLUSHALL / FLUSHDB delete every key (in a cluster: of the whole cluster); refused without it')
  .option('--metrics <on|off>', 'count ops and latency for /metrics and the dashboard at http://host:port/; off measures their cost (default on)')
  .option('--clock-sync <mode>', 'trust this node\'s clock for key expiry: auto (systemd NTPSynchronized, else year >= 2024) | yes | no (default auto); unsynchronised: TTL ops answer CLOCK_UNSYNCED')
  .action(runServe);

program.command('get').description('print the value of KEY; exit 1 if absent').argument('<key>').addOption(urlOption()).action(runGet);
program.command('put').description('set KEY to VALUE').argument('<key>').argument('<value>')
  .option('--ttl <duration>', 'the key expires after this long (500ms, 10s, 5m, 2h, 7d; bare numbers are seconds), by the node\'s clock')
  .addOption(urlOption()).action(runPut);
program.command('del').alias('delete').description('delete KEY; exit 1 if it was absent').argument('<key>').addOption(urlOption()).action(runDel);
program
  .command('stats')
  .description('keys, bytes and ops per worker and for the node')
  .option('--json', 'machine-readable output')
  .addOption(urlOption())
  .action(runStats);
program
  .command('kill-worker')
  .description('test hook: kill partition worker N mid-flight (the node must run with PIKV_TEST_HOOKS=1)')
  .argument('<n>', 'worker index, from 0')
  .addOption(urlOption())
  .action(runKillWorker);
program
  .command('load')
  .description('bulk-load key/value records from a TSV, CSV or JSON Lines file')
  .argument('<file>', 'file to load; - reads standard input')
  .addOption(new Option('--format <format>', 'record format (default: from the file extension)').choices(['tsv', 'csv', 'jsonl']))
  .option('--skip-bad', 'skip malformed lines (reported) instead of stopping before them')
  .option('--batch <n>', 'records per request', '8192')
  .option('--inflight <n>', 'requests in flight', '4')
  .option('--compress-min-bytes <n>', 'compress values of at least this many bytes in a thread pool before sending (stored compressed if it saves 1/8; 0 = off)', '4096')
  .option('--no-progress', 'no progress bar')
  .addOption(urlOption())
  .action(runLoad);

program
  .command('top')
  .description('the whole cluster in the terminal, refreshed every second: ops/s, p50/p99, memory and state per node, and a total (q or Ctrl-C quits)')
  .addOption(new Option('--client-token-file <file>', 'file holding the client token, if the node requires one (default: $PIKV_CLIENT_TOKEN)'))
  .option('--delay-ms <ms>', 'time between refreshes', '1000')
  .addOption(urlOption())
  .addHelpText('after', `
Reads GET /v1/cluster from the node at --url (any member; it asks the others). Keys as in top:
q or Ctrl-C quits and gives the terminal back, space refreshes now. Not on a terminal, it
prints one screen and exits. The dashboard at http://<node>:<port>/ shows the same live.`)
  .action(runTop);

const cluster = program.command('cluster').description('membership of a cluster (docs/CLUSTER.md)');
function tokenOption(): Option {
  return new Option('--client-token-file <file>', 'file holding the client token, if the node requires one (default: $PIKV_CLIENT_TOKEN)');
}
function adminOptions(command: Command): Command {
  return command
    .addOption(new Option('--cluster-secret-file <file>', 'file holding the cluster secret (default: $PIKV_CLUSTER_SECRET)'))
    .addOption(tokenOption())
    .option('--wait-ms <ms>', 'how long to wait for data to finish moving', '300000')
    .addOption(urlOption());
}
cluster
  .command('status')
  .description('nodes, epoch, up/down, keys per node, data-move progress')
  .option('--json', 'machine-readable output')
  .addOption(tokenOption())
  .addOption(urlOption())
  .action(runClusterStatus);
adminOptions(cluster.command('join').description('admit node ID, reachable at URL (it must run with the same cluster secret)').argument('<id>').argument('<node-url>').option('--weight <n>', 'relative capacity 1..16', '1')).action(runClusterJoin);
adminOptions(cluster.command('leave').description('hand off the keys of node ID (default: the node at --url), which then stops').argument('[id]')).action(runClusterLeave);
adminOptions(cluster.command('remove').description('drop node ID without hand-off (a dead node; its keys are lost); with etcd, refused while its lease is alive unless --force')
  .argument('<id>').option('--force', 'with etcd: remove a node whose lease is alive, by handing its keys off first (as a leave)')).action(runClusterRemove);
adminOptions(cluster.command('set-replicas').description('with etcd: keep N copies of every key (1..5); copies are made or trimmed in the background, then the change switches over (docs/REPLICATION.md)')
  .argument('<n>')).action(runClusterSetReplicas);
adminOptions(cluster.command('set-min-replicas').description('with etcd: refuse writes (NOT_ENOUGH_REPLICAS) to key ranges with fewer than M copies up (1..replicas; default 1: write while any copy is up)')
  .argument('<m>')).action(runClusterSetMinReplicas);
adminOptions(cluster.command('set').description('with etcd: change a cluster setting: `set replicas N` is set-replicas, `set min-replicas M` is set-min-replicas')
  .argument('<setting>', 'replicas or min-replicas').argument('<value>')).action(runClusterSet);

program
  .command('discover')
  .description('list the pikv nodes that answer on the LAN by mDNS (_pikv._tcp): cluster, node id, URL, version, etcd endpoints')
  .option('--timeout <time>', 'how long to listen for answers, e.g. 3s or 500ms (100ms..60s)', '3s')
  .option('--json', 'machine-readable output')
  .option('--cluster <name>', 'only nodes of this cluster')
  .option('--interface <ip>', 'IPv4 address of the interface to ask on (default: every interface)')
  .addHelpText('after', `
What nodes advertise is listed as they say it, unverified: anyone on the LAN can advertise
_pikv._tcp. A node started with --etcd auto uses an advertised etcd endpoint only once the
view stored there passes the HMAC check with the cluster secret (docs/CLUSTER.md). Nodes
advertise unless started with --mdns off; with --mdns auto (the default) a node whose URL is
loopback (127.0.0.1) stays quiet. Needs multicast to the boards: the same LAN segment, UDP
port 5353 open.`)
  .action(runDiscover);

program
  .command('etcd-form')
  .description('run this board\'s etcd member, forming the etcd cluster with the other member boards found on the LAN by mDNS when none exists yet (docs/CLUSTER.md)')
  .requiredOption('--name <name>', 'this member\'s name (the board\'s node id)')
  .requiredOption('--data-dir <dir>', 'etcd\'s data dir; one that holds a member is restarted as it is, never re-formed')
  .option('--cluster-name <name>', 'the pikv cluster (only member boards of the same name and secret count)', 'pikv')
  .option('--members <n>', 'members the etcd cluster has: 1, 3 or 5', '3')
  .option('--address <ip>', 'this board\'s LAN IPv4 address (default: the default route\'s interface, else its only LAN address, waiting up to 60 s for DHCP)')
  .option('--peer-port <port>', 'etcd peer port', '2380')
  .option('--client-port <port>', 'etcd client port (also served on 127.0.0.1)', '2379')
  .option('--etcd-binary <path>', 'the etcd program', 'etcd')
  .option('--status-file <file>', 'write the formation state (waiting and why, running) here as JSON, for pikv serve --formation-status-file')
  .option('--cluster-secret-file <file>', 'file holding the cluster secret (else $PIKV_CLUSTER_SECRET)')
  .option('--mdns-interface <ip>', 'IPv4 address of the interface for mDNS (default: --address)')
  .option('--settle-ms <ms>', 'browse at least this long before forming', '3000')
  .option('--recheck-ms <ms>', 'between looks at the LAN', '1000')
  .option('--heartbeat-interval-ms <ms>', 'etcd --heartbeat-interval', '100')
  .option('--election-timeout-ms <ms>', 'etcd --election-timeout', '1000')
  .addHelpText('after', `
Advertises _pikv-etcd._tcp with the cluster name, member name, peer URL and an HMAC proof made
with the cluster secret; claims without a valid proof are ignored. Starts etcd with
--initial-cluster-state new once exactly --members verified member boards are seen (the list
sorted by name, the token derived from the cluster name and the list); waits, saying why, when it
sees fewer or more, conflicting claims, or an etcd already holding a valid view of the cluster.`)
  .action(runEtcdForm);

program
  .command('dev-cluster')
  .description('try a cluster on one machine: starts etcd and N nodes on free 127.0.0.1 ports, prints how to use them; Ctrl-C stops all')
  .option('--nodes <n>', 'how many nodes, n1..nN (1..16)', '3')
  .option('--workers <n>', 'partition worker threads per node', '2')
  .option('--max-memory <size>', 'memory for the tables of each node', '256mb')
  .addOption(new Option('--etcd-binary <path>', 'the etcd server to run (default: etcd on PATH; Debian: apt-get install etcd-server)').env('PIKV_ETCD_BINARY'))
  .option('--ready-timeout-ms <ms>', 'how long to wait for the nodes to join and settle', '60000')
  .option('--quiet', 'do not forward the nodes\' logs (problems are still reported)')
  .addHelpText('after', `
Starts a single-member etcd (temporary data dir, revision auto-compaction) and the nodes
(pikv serve --etcd ... --node-id nI --port 0) one after the other; n1 creates the cluster and
the others join by themselves. Once all N are in the view with no data move left, it prints
the etcd URL, each node's URL and PID, commands to try, and the export line for this
session's random cluster secret (the nodes get it through their environment, not argv).
Node logs are shown prefixed with the node id. Ctrl-C or SIGTERM stops every node (SIGTERM,
then SIGKILL after 15 s), then etcd, deletes the temporary directory and exits 0; a second
Ctrl-C kills everything at once. Exit 2 if etcd is missing or the cluster does not start.
Not for production: one etcd member and everything on one machine.`)
  .action(runDevCluster);

/**
 * Secrets on the command line show in `ps` and /proc/PID/cmdline to every user of the board,
 * and in shell history: the flags that took them are gone, and using one is an error that says
 * where the secret goes now (before commander, whose own error would echo the value).
 */
const ARGV_SECRETS: Readonly<Record<string, string>> = {
  '--cluster-secret': 'set PIKV_CLUSTER_SECRET or give --cluster-secret-file FILE',
  '--client-token': 'set PIKV_CLIENT_TOKEN or give --client-token-file FILE',
  '--token': 'set PIKV_CLIENT_TOKEN or give --client-token-file FILE',
};
function refuseSecretsOnArgv(args: string[]): void {
  for (const arg of args) {
    if (arg === '--') return;
    const flag = arg.split('=', 1)[0]!;
    const instead = ARGV_SECRETS[flag];
    if (instead === undefined) continue;
    process.stderr.write(`pikv: ${flag} is no longer accepted: a secret on the command line is visible to every user in ps; ${instead} [SECRET_ON_ARGV]\n`);
    process.exit(EXIT_ERROR);
  }
}
refuseSecretsOnArgv(process.argv.slice(2));

program.parseAsync(process.argv).catch((error: unknown) => {
  const code = error instanceof PikvError ? ` [${error.code}]` : '';
  process.stderr.write(`pikv: ${(error as Error).message}${code}\n`);
  process.exit(EXIT_ERROR);
});

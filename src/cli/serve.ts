/**
 * `pikv serve`: merges defaults, --config and flags, starts a node, and stops it gracefully
 * on SIGINT or SIGTERM (exit 0 once in-flight requests are answered).
 */
import { applySettings, capDefaultMemory, defaultConfig, loadConfigFile, validateConfig, type ServerConfig } from '../node/config.js';
import { PikvServer } from '../node/server.js';
import { statSync } from 'node:fs';
import { ClusterConfigError, extractClusterSettings, parseClusterConfig, resolveClientToken, type ClusterConfig } from '../cluster/cluster-config.js';
import { waitForLanAddress } from '../cluster/discovery/lan-address.js';
import { PEER_PROTOCOL_VERSION } from '../protocol/auth.js';
import { PIKV_VERSION } from '../node/resp/info.js';

const discovery = (): Promise<typeof import('./serve-discovery.js')> => import('./serve-discovery.js');

type ServeFlags = Record<string, string | undefined> & { config?: string };

function camelToSnake(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** A config file that holds a secret inline deserves the same care as a secret file. */
function warnIfSecretsExposed(path: string, cluster_settings: Record<string, unknown>): void {
  if (cluster_settings['cluster_secret'] === undefined && cluster_settings['client_token'] === undefined) return;
  const mode = statSync(path).mode;
  if ((mode & 0o077) !== 0) console.error(`pikv: warning: the config file ${path} holds a secret and is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it, or move the secret to cluster_secret_file`);
}

export async function runServe(flags: ServeFlags): Promise<void> {
  let config = defaultConfig();
  // Cluster settings (src/cluster/cluster-config.ts) are split off first; the node's own config never sees them.
  const file = flags.config === undefined ? { cluster: {}, rest: {} } : extractClusterSettings(loadConfigFile(flags.config));
  if (flags.config !== undefined) config = applySettings(config, file.rest, flags.config);
  const overrides: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(flags)) {
    if (name !== 'config' && value !== undefined) overrides[camelToSnake(name)] = value;
  }
  const flagged = extractClusterSettings(overrides);
  config = applySettings(config, flagged.rest, 'flags');
  const memory_given = [file.rest, flagged.rest].some((settings) => ['max_memory', 'max-memory', 'memory_bytes_max'].some((key) => settings[key] !== undefined));
  if (!memory_given) config = capDefaultMemory(config);
  config = validateConfig(config);
  const cluster_settings = { ...file.cluster, ...flagged.cluster };
  if (flags.config !== undefined) warnIfSecretsExposed(flags.config, file.cluster);
  let cluster = parseClusterConfig(cluster_settings, process.env);
  // --advertise auto: this machine's LAN address, before mDNS or etcd hear of this node.
  if (cluster?.advertise === 'auto') cluster = { ...cluster, advertise: await advertiseAuto(cluster, config) };
  // --etcd auto: find the cluster's etcd on the LAN (verified by the view's HMAC) before the node exists.
  if (cluster?.etcd_discover === true) cluster = { ...cluster, etcd: await (await discovery()).findClusterEtcd(cluster) };
  // A lone node has no cluster config, but may still require a client token.
  const client_token = cluster?.client_token ?? resolveClientToken(cluster_settings, process.env);

  // A node that left the cluster (pikv cluster leave) has handed off its keys: it stops by itself.
  const onLeft = (): void => {
    console.log('pikv: left the cluster; stopping');
    setTimeout(() => stop('leave'), 1_000).unref();
  };
  const server = new PikvServer(config, undefined, { config: cluster, client_token, onLeft });
  // Handlers go in before the address is printed: until a handler exists, SIGTERM's default
  // action kills the process outright, and whoever read the address may signal at once.
  let stopping = false;
  let started: Promise<string> | null = null;
  let advertiser: { stop(): Promise<void> } | null = null;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`pikv: ${signal} received, finishing in-flight requests`);
    (started ?? Promise.resolve(''))
      .catch(() => '')
      .then(() => advertiser?.stop())
      .then(() => server.stop())
      .then(
        () => {
          console.log('pikv: stopped');
          process.exit(0);
        },
        (error: unknown) => {
          console.error(`pikv: error while stopping: ${(error as Error).message}`);
          process.exit(2);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  started = server.start();
  const url = await started;
  const memory_mib = Math.round(config.memory_bytes_max / 1024 / 1024);
  const http_url = url.replace(/^ws/, 'http'); // wss:// gives https://
  console.log(`pikv HTTP API on ${http_url}/v1/: curl ${http_url}/v1/health`);
  // Before the "listening on" line, which tests and dev-cluster wait for: whoever reads that
  // line has the RESP address too (right before it, where tools look for it).
  const resp = server.resp_address;
  if (resp !== null) console.log(`pikv RESP (Redis protocol) on redis://${resp}: redis-cli -p ${resp.slice(resp.lastIndexOf(':') + 1)}`);
  else if (config.resp_port === null) console.log('pikv RESP (Redis protocol) is off (--resp-port off)');
  console.log(`pikv listening on ${url} (${config.workers} workers, max memory ${memory_mib} MiB, pid ${process.pid})`);
  if (cluster !== null && !stopping) advertiser = await advertise(cluster, url);
}

/** The URL for `--advertise auto`: this machine's LAN address (waiting for DHCP) and the listen port. */
async function advertiseAuto(cluster: ClusterConfig, config: ServerConfig): Promise<string> {
  if (config.port === 0) throw new ClusterConfigError('--advertise auto needs a fixed --port: peers must be told the port before this node listens');
  const address = await waitForLanAddress(cluster.advertise_wait_ms, (message) => console.log(`pikv: ${message}`));
  return `${config.tls_cert_file === '' ? 'ws' : 'wss'}://${address}:${config.port}`;
}

/** mDNS: a cluster node says it is here (docs/CLUSTER.md), unless --mdns off, or (auto) its URL is loopback, which no other board could use. */
async function advertise(cluster: ClusterConfig, listen_url: string): Promise<{ stop(): Promise<void> } | null> {
  const url = cluster.advertise || listen_url;
  const { advertiseNode, isLoopbackUrl } = await discovery();
  if (cluster.mdns === 'off' || (cluster.mdns === 'auto' && isLoopbackUrl(url))) return null;
  return advertiseNode({
    node_id: cluster.node_id, cluster: cluster.cluster_name, version: PIKV_VERSION, peer_protocol: PEER_PROTOCOL_VERSION, url, etcd: cluster.etcd,
  }, cluster);
}

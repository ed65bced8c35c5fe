/**
 * `pikv discover`: lists the pikv nodes that answer on the LAN (mDNS, `_pikv._tcp`) within
 * `--timeout`, as a table or `--json`. What it lists is what nodes claim about themselves: it is
 * not verified (a node started with `--etcd auto` verifies before it uses anything; see
 * docs/CLUSTER.md). Exit 0 whether or not anything answered; an empty list says so on stderr.
 */
import { browseFor } from '../cluster/discovery/mdns.js';
import type { Discovered } from '../cluster/discovery/txt.js';

export interface DiscoverOptions {
  timeout: string;
  json?: boolean;
  cluster?: string;
  interface?: string;
}

const TIMEOUT_MS_MAX = 60_000;

export class DiscoverUsageError extends Error {
  readonly code = 'BAD_ARGUMENT';
}

/** `3s`, `500ms`, `2.5s` or a bare number of seconds, in ms; 100 ms to 60 s. */
export function parseTimeout(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim());
  const timeout_ms = match === null ? NaN : Number(match[1]) * (match[2] === 'ms' ? 1 : 1000);
  if (!Number.isFinite(timeout_ms) || timeout_ms < 100 || timeout_ms > TIMEOUT_MS_MAX) {
    throw new DiscoverUsageError(`--timeout must be 100ms to 60s (e.g. 3s or 500ms), got ${JSON.stringify(text)}`);
  }
  return Math.round(timeout_ms);
}

export function formatTable(nodes: Discovered[]): string {
  const rows = [['CLUSTER', 'NODE', 'URL', 'VERSION', 'ETCD', 'FROM'], ...nodes.map((n) => [n.cluster, n.node_id, n.url, `${n.version}/p${n.peer_protocol}`, n.etcd.join(',') || '-', n.from])];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n') + '\n';
}

export async function runDiscover(options: DiscoverOptions): Promise<void> {
  const timeout_ms = parseTimeout(options.timeout);
  if (options.interface !== undefined && !/^\d{1,3}(\.\d{1,3}){3}$/.test(options.interface)) throw new DiscoverUsageError(`--interface must be an IPv4 address of this machine, got ${JSON.stringify(options.interface)}`);
  const warnings: string[] = [];
  let nodes = await browseFor(timeout_ms, { interface_address: options.interface, log: (message) => warnings.push(message) });
  if (options.cluster !== undefined) nodes = nodes.filter((node) => node.cluster === options.cluster);
  for (const warning of warnings) process.stderr.write(`pikv: ${warning}\n`);
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify(nodes.map(({ name, node_id, cluster, version, peer_protocol, url, etcd, from }) => ({ name, node_id, cluster, version, peer_protocol, url, etcd, from })), null, 2)}\n`);
    return;
  }
  if (nodes.length === 0) {
    process.stderr.write(`pikv: no pikv node answered within ${timeout_ms} ms${options.cluster === undefined ? '' : ` in cluster "${options.cluster}"`} (mDNS needs multicast between you and the boards: same LAN segment, UDP 5353 open)\n`);
    return;
  }
  process.stdout.write(formatTable(nodes));
}

/**
 * The LAN-discovery side of `pikv serve`, loaded only when a cluster node needs it (so a lone
 * node and `--mdns off` never load bonjour-service): `--etcd auto` before the node starts, and
 * the node's mDNS advertisement once it listens.
 */
import { networkInterfaces } from 'node:os';
import type { ClusterConfig } from '../cluster/cluster-config.js';
import { findEtcd } from '../cluster/discovery/find-etcd.js';
import { Advertiser } from '../cluster/discovery/mdns.js';
import type { Advertisement } from '../cluster/discovery/txt.js';

export { isLoopbackUrl } from '../cluster/discovery/txt.js';

const log = (message: string): void => console.log(`pikv: ${message}`);

/**
 * The interface for mDNS: --mdns-interface, else the advertised address when it is one of this
 * machine's IPv4 addresses (a board on Ethernet and Wi-Fi talks to its cluster where it told
 * the cluster to reach it), else undefined: every interface, multicast sent where routes say.
 */
export function mdnsInterface(cluster: ClusterConfig): string | undefined {
  if (cluster.mdns_interface !== '') return cluster.mdns_interface;
  let host: string;
  try {
    host = new URL(cluster.advertise).hostname;
  } catch {
    return undefined;
  }
  const local = Object.values(networkInterfaces()).flat().some((address) => address !== undefined && address.family === 'IPv4' && !address.internal && address.address === host);
  return local ? host : undefined;
}

/** Waits (for ever, logging why) until the cluster's etcd is found on the LAN and its view verifies. */
export function findClusterEtcd(cluster: ClusterConfig): Promise<string[]> {
  return findEtcd({
    cluster: cluster.cluster_name, secret: cluster.cluster_secret, log,
    interface_address: mdnsInterface(cluster),
  });
}

export function advertiseNode(ad: Advertisement, cluster: ClusterConfig): Advertiser {
  return new Advertiser(ad, { log, interface_address: mdnsInterface(cluster) });
}

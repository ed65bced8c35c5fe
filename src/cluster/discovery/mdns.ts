/**
 * mDNS/DNS-SD on the LAN through `bonjour-service` (pure JavaScript, over `multicast-dns`):
 * a node advertises itself as `_pikv._tcp` (Advertiser), and `pikv discover` / `--etcd auto`
 * browse for others (Browse). What goes in the TXT record, and how an answer is checked, is
 * txt.ts; nothing found here is trusted (find-etcd.ts verifies before use).
 *
 * Multicast leaves by the interface the kernel routes 224.0.0.251 to (on a LAN: the default
 * route), or by `interface_address` when given (a board with Ethernet and Wi-Fi should name the
 * one its cluster is on). The socket binds 0.0.0.0:5353 with SO_REUSEADDR, so it lives beside
 * avahi-daemon; binding the unicast address instead would hear no multicast on Linux.
 */
import { hostname } from 'node:os';
import Bonjour, { type ServiceConfig } from 'bonjour-service';
import { decodeTxt, encodeTxt, SERVICE_TYPE, type Advertisement, type Discovered } from './txt.js';

export interface MdnsOptions {
  /** IPv4 address of the interface to send and listen on; default: every interface, sending where the routes say. */
  interface_address?: string | undefined;
  log: (message: string) => void;
}

/** Services remembered by one browse; more are ignored (and said so once). */
export const DISCOVERED_MAX = 256;
/** How often a running browse asks again (answers to the first query can be lost, and new nodes come up). */
const REQUERY_MS = 1_000;

export type BonjourInstance = InstanceType<typeof Bonjour>;

/** One mDNS socket (formation-mdns.ts opens its own for `_pikv-etcd._tcp`). */
export function openBonjour(options: MdnsOptions): BonjourInstance {
  // bonjour-service hands these to multicast-dns as they are; its type names only ServiceConfig.
  const mdns_options = (options.interface_address === undefined ? {} : { interface: options.interface_address, bind: '0.0.0.0' }) as Partial<ServiceConfig>;
  // Without an error callback bonjour-service throws from a socket callback, killing the node.
  return new Bonjour(mdns_options, (error: Error) => options.log(`mdns: ${error.message}`));
}

/** This node on the LAN as `_pikv._tcp`, until stop(). */
export class Advertiser {
  private readonly bonjour: BonjourInstance;
  readonly name: string;

  constructor(ad: Advertisement, options: MdnsOptions) {
    const txt = encodeTxt(ad);
    this.name = `pikv ${ad.cluster} ${ad.node_id}`.slice(0, 63); // a DNS label holds 63 bytes
    this.bonjour = openBonjour(options);
    const port = Number(new URL(ad.url).port) || (ad.url.startsWith('wss:') ? 443 : 80);
    // The SRV target, answered with this machine's IPv4/IPv6 addresses: `<hostname>.local`, so
    // `http://<hostname>.local:7070/` works from any machine with an mDNS resolver.
    const host = hostname().endsWith('.local') ? hostname() : `${hostname()}.local`;
    const service = this.bonjour.publish({ name: this.name, type: SERVICE_TYPE, port, host, txt, probe: true });
    service.on('error', (error: Error) => options.log(`mdns: advertising "${this.name}" failed: ${error.message}`));
    service.on('up', () => options.log(`mdns: advertising "${this.name}" as _${SERVICE_TYPE}._tcp (${Object.entries(txt).map(([k, v]) => `${k}=${v}`).join(' ')})`));
  }

  /** Says goodbye (TTL 0 records) and closes the socket. */
  stop(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1_000); // goodbye packets are best-effort
      this.bonjour.unpublishAll(() => {
        this.bonjour.destroy(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    });
  }
}

/** A running browse for `_pikv._tcp`: every well-formed advertisement seen so far, newest per instance name. */
export class Browse {
  private readonly bonjour: BonjourInstance;
  private readonly found = new Map<string, Discovered>();
  private readonly timer: NodeJS.Timeout;
  private warned_full = false;
  private warned_bad = new Set<string>();

  constructor(options: MdnsOptions & { onFound?: (node: Discovered) => void }) {
    this.bonjour = openBonjour(options);
    const browser = this.bonjour.find({ type: SERVICE_TYPE });
    const take = (service: { name: string; txt?: unknown; referer?: { address: string } }): void => {
      const ad = decodeTxt(service.txt);
      if (ad === null) {
        if (!this.warned_bad.has(service.name) && this.warned_bad.size < DISCOVERED_MAX) {
          this.warned_bad.add(service.name);
          options.log(`mdns: ignored "${service.name}" from ${service.referer?.address ?? '?'}: not a well-formed pikv advertisement`);
        }
        return;
      }
      if (!this.found.has(service.name) && this.found.size >= DISCOVERED_MAX) {
        if (!this.warned_full) options.log(`mdns: more than ${DISCOVERED_MAX} pikv services on the LAN; ignoring the rest`);
        this.warned_full = true;
        return;
      }
      const node: Discovered = { ...ad, name: service.name, from: service.referer?.address ?? '' };
      this.found.set(service.name, node);
      options.onFound?.(node);
    };
    browser.on('up', take);
    browser.on('txt-update', take);
    browser.on('down', (service: { name: string }) => this.found.delete(service.name));
    this.timer = setInterval(() => browser.update(), REQUERY_MS);
    this.timer.unref();
  }

  nodes(): Discovered[] {
    return [...this.found.values()];
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1_000);
      this.bonjour.destroy(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Browses for `timeout_ms` and returns what answered, sorted by cluster and node id. */
export async function browseFor(timeout_ms: number, options: MdnsOptions): Promise<Discovered[]> {
  const browse = new Browse(options);
  await new Promise((resolve) => setTimeout(resolve, timeout_ms));
  const nodes = browse.nodes();
  await browse.stop();
  return nodes.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.node_id.localeCompare(b.node_id) || a.name.localeCompare(b.name));
}

/**
 * The names and addresses this node answers to, for the HTTP API's Host check and the Origin
 * check of both HTTP and WebSocket (docs/PROTOCOL.md, "HTTP": cross-site requests).
 *
 * Why: a web page a user opens can make the browser send requests to 127.0.0.1:7070 or to a
 * board on the LAN. With DNS rebinding the page's own name (evil.example) is made to resolve to
 * the node, and the browser then treats the node's answers as the page's own; but the browser
 * still sends `Host: evil.example`. A node that answers only requests whose Host is one of its
 * own names cannot be read or written that way.
 *
 * Accepted: the listen host, the host of the advertised URL (--advertise), localhost (and
 * *.localhost), 127.0.0.1 and the rest of 127/8, ::1, this machine's host name (and
 * name.local, for mDNS on a Pi), and every address of its network interfaces. Addresses can
 * change (DHCP), so a miss re-reads the interfaces, at most once every INTERFACE_REFRESH_MS.
 * The port is not checked: a rebinding page uses the node's port too, so it proves nothing.
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

/** A Host that misses is looked up again in fresh interface addresses at most this often. */
const INTERFACE_REFRESH_MS = 10_000;
/** Wildcard listen addresses: not names a client can use, so they add nothing to the list. */
const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * The host part of a Host header or URL authority, lower case, without port, brackets or a
 * trailing dot; null when it is not a well-formed host (which is then refused).
 */
export function hostOf(authority: string): string | null {
  const text = authority.trim().toLowerCase();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return null;
    const rest = text.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    const address = text.slice(1, close);
    return isIP(address) === 6 ? address : null;
  }
  const colon = text.indexOf(':');
  const host = colon < 0 ? text : text.slice(0, colon);
  if (colon >= 0 && !/^\d{1,5}$/.test(text.slice(colon + 1))) return null;
  // Letters, digits, hyphens, dots and underscores (some LAN names have them): nothing that
  // could smuggle another authority (userinfo, a second port, percent-escapes).
  if (host === '' || !/^[a-z0-9._-]+$/.test(host)) return null;
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

export class NodeNames {
  private readonly fixed = new Set<string>(['localhost', '127.0.0.1', '::1']);
  private interfaces = new Set<string>();
  private interfaces_read_ms = 0;
  private readonly listen_host: string;
  /** The advertised URL, read on each check: it is filled in only once the node listens. */
  private readonly advertise: () => string;

  constructor(listen_host: string, advertise: () => string) {
    this.listen_host = listen_host;
    this.advertise = advertise;
    const listen = hostOf(listen_host.includes(':') && !listen_host.startsWith('[') ? `[${listen_host}]` : listen_host);
    if (listen !== null && !WILDCARDS.has(listen)) this.fixed.add(listen);
    const machine = hostname().toLowerCase();
    if (machine !== '') {
      this.fixed.add(machine);
      this.fixed.add(`${machine}.local`);
    }
    this.readInterfaces(Date.now());
  }

  /** True if `host_header` (a Host header's value) names this node. */
  acceptsHost(host_header: string): boolean {
    const host = hostOf(host_header);
    return host !== null && this.knows(host);
  }

  /**
   * True if `origin` (an Origin header: scheme://host[:port], or "null") is a page served under
   * one of this node's names. pikv serves no pages, so in practice any Origin header is a
   * browser page elsewhere, unless the user opened one on the node's own address.
   */
  acceptsOrigin(origin: string): boolean {
    const match = /^[a-z][a-z0-9+.-]*:\/\/([^/?#@]+)$/i.exec(origin.trim());
    if (match === null) return false;
    const host = hostOf(match[1]!);
    return host !== null && this.knows(host);
  }

  /** The names, for an error message that tells the user what would work. */
  describe(): string {
    const advertised = this.advertisedHost();
    const names = [...this.fixed, ...(advertised === null ? [] : [advertised])];
    return `${names.join(', ')} or an address of this machine's interfaces (listening on ${this.listen_host})`;
  }

  private knows(host: string): boolean {
    if (this.fixed.has(host) || this.interfaces.has(host)) return true;
    // RFC 6761: *.localhost and 127/8 are this machine whatever DNS says.
    if (host.endsWith('.localhost') || (isIP(host) === 4 && host.startsWith('127.'))) return true;
    if (host === this.advertisedHost()) return true;
    const now_ms = Date.now();
    if (now_ms - this.interfaces_read_ms < INTERFACE_REFRESH_MS) return false;
    this.readInterfaces(now_ms);
    return this.interfaces.has(host);
  }

  private advertisedHost(): string | null {
    const url = this.advertise();
    if (url === '') return null;
    try {
      return hostOf(new URL(url).host);
    } catch {
      return null;
    }
  }

  private readInterfaces(now_ms: number): void {
    this.interfaces_read_ms = now_ms;
    const found = new Set<string>();
    for (const addresses of Object.values(networkInterfaces())) {
      for (const entry of addresses ?? []) {
        // Link-local IPv6 addresses carry a zone (fe80::1%eth0) that a Host header never does.
        found.add(entry.address.toLowerCase().replace(/%.*$/, ''));
      }
    }
    this.interfaces = found;
  }
}

/**
 * `--advertise auto`: the IPv4 address this machine is reached at on its LAN, so that identical
 * Pi cards need no address typed in (docs/CLUSTER.md, "Finding each other on the LAN").
 *
 * The choice, in order:
 * 1. the first IPv4 address of the interface that carries the default route (the lowest metric
 *    in /proc/net/route): on a board with Ethernet and Wi-Fi, the one its traffic leaves by;
 * 2. else the only IPv4 address that is neither loopback nor link-local (169.254/16, which a
 *    board gives itself when DHCP failed and which peers on other links cannot reach);
 * 3. else no choice: none at all (DHCP has not answered yet: wait), or several with no default
 *    route to break the tie (say which, and ask for --advertise).
 *
 * Pure functions over what the OS reports, plus one reader of the live state; waiting is the
 * caller's (a board waits for DHCP after power-on, a test does not).
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

export type LanAddressChoice =
  | { address: string; interface_name: string; why: 'default route' | 'only address' }
  | { address: null; problem: string };

/** Interfaces that carry a default route (destination 0.0.0.0/0), lowest metric first. */
export function defaultRouteInterfaces(proc_net_route: string): string[] {
  const routes: { name: string; metric: number }[] = [];
  for (const line of proc_net_route.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...: the default route has
    // destination and mask 00000000; flag 0x1 (RTF_UP) says it is in use.
    if (fields.length < 8 || fields[1] !== '00000000' || fields[7] !== '00000000') continue;
    if ((Number.parseInt(fields[3]!, 16) & 0x1) === 0) continue;
    routes.push({ name: fields[0]!, metric: Number(fields[6]) });
  }
  routes.sort((a, b) => a.metric - b.metric);
  return [...new Set(routes.map((route) => route.name))];
}

function usable(info: NetworkInterfaceInfo): boolean {
  return info.family === 'IPv4' && !info.internal && !info.address.startsWith('169.254.');
}

export function chooseLanAddress(interfaces: Interfaces, default_route: string[]): LanAddressChoice {
  for (const name of default_route) {
    const address = (interfaces[name] ?? []).find(usable);
    if (address !== undefined) return { address: address.address, interface_name: name, why: 'default route' };
  }
  const candidates = Object.entries(interfaces).flatMap(([name, list]) => (list ?? []).filter(usable).map((info) => ({ name, address: info.address })));
  if (candidates.length === 1) return { address: candidates[0]!.address, interface_name: candidates[0]!.name, why: 'only address' };
  if (candidates.length === 0) return { address: null, problem: 'this machine has no IPv4 address on a LAN yet (only loopback or link-local 169.254.x.x)' };
  return {
    address: null,
    problem: `this machine has several LAN addresses and no default route to choose by (${candidates.map((c) => `${c.name} ${c.address}`).join(', ')}): give --advertise ws://<address>:<port>`,
  };
}

/** The choice from the machine's live state (no /proc/net/route outside Linux: no default route). */
export function lanAddress(): LanAddressChoice {
  let routes = '';
  try {
    routes = readFileSync('/proc/net/route', 'utf8');
  } catch {
    // Not Linux, or no procfs: fall back to the only address.
  }
  return chooseLanAddress(networkInterfaces(), defaultRouteInterfaces(routes));
}

export class LanAddressError extends Error {}

/**
 * Waits up to `wait_ms` for a LAN address (DHCP can take tens of seconds after power-on),
 * telling `log` once what it waits for. Several addresses with no default route is not
 * something time fixes unless a route appears, so it is retried too, and reported at the end.
 */
export async function waitForLanAddress(wait_ms: number, log: (message: string) => void, poll_ms = 500): Promise<string> {
  const deadline = Date.now() + wait_ms;
  let said = false;
  for (;;) {
    const choice = lanAddress();
    if (choice.address !== null) {
      log(`advertise auto: ${choice.address} (${choice.interface_name}, ${choice.why})`);
      return choice.address;
    }
    if (Date.now() >= deadline) throw new LanAddressError(`advertise auto: no address after ${Math.round(wait_ms / 1000)} s: ${choice.problem}`);
    if (!said) log(`advertise auto: waiting up to ${Math.round(wait_ms / 1000)} s: ${choice.problem}`);
    said = true;
    await sleep(poll_ms);
  }
}

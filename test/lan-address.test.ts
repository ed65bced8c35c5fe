/**
 * `--advertise auto` (src/cluster/discovery/lan-address.ts): which address a board tells its
 * peers, from the interfaces and routes the OS reports. The same rule runs for real in
 * test/discovery-netns.test.ts, where every node is started with --advertise auto.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, it } from 'node:test';
import { chooseLanAddress, defaultRouteInterfaces, type Interfaces } from '../src/cluster/discovery/lan-address.js';
import { parseClusterConfig } from '../src/cluster/cluster-config.js';
import { CLI_PATH } from './helpers/server-process.js';

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: '255.255.255.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal, cidr: `${address}/24` };
}
function v6(address: string): NetworkInterfaceInfo {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: `${address}/64`, scopeid: 0 };
}

const ROUTE_HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT';
/** /proc/net/route of a Pi on Ethernet (metric 202) and Wi-Fi (metric 303), as dhcpcd sets them. */
const PI_ROUTES = [
  ROUTE_HEADER,
  'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t303\t00000000\t0\t0\t0',
  'eth0\t00000000\t01000A0A\t0003\t0\t0\t202\t00000000\t0\t0\t0',
  'eth0\t00000A0A\t00000000\t0001\t0\t0\t202\t00FFFFFF\t0\t0\t0',
  'wlan0\t0001A8C0\t00000000\t0001\t0\t0\t303\t00FFFFFF\t0\t0\t0',
].join('\n');

describe('advertise auto: the LAN address', () => {
  it('reads the default routes from /proc/net/route, lowest metric first, skipping routes that are down or not default', () => {
    assert.deepEqual(defaultRouteInterfaces(PI_ROUTES), ['eth0', 'wlan0']);
    assert.deepEqual(defaultRouteInterfaces(`${ROUTE_HEADER}\neth0\t00000000\t01000A0A\t0002\t0\t0\t0\t00000000\t0\t0\t0`), [], 'RTF_UP clear');
    assert.deepEqual(defaultRouteInterfaces(`${ROUTE_HEADER}\neth0\t00000A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0`), []);
    assert.deepEqual(defaultRouteInterfaces(''), []);
    assert.deepEqual(defaultRouteInterfaces('garbage\nmore garbage'), []);
  });

  it('takes the IPv4 address of the default route\'s interface on a board with Ethernet and Wi-Fi', () => {
    const interfaces: Interfaces = { lo: [v4('127.0.0.1', true)], wlan0: [v6('fe80::1'), v4('192.168.1.23')], eth0: [v6('fe80::2'), v4('10.10.0.11')] };
    assert.deepEqual(chooseLanAddress(interfaces, ['eth0', 'wlan0']), { address: '10.10.0.11', interface_name: 'eth0', why: 'default route' });
    assert.deepEqual(chooseLanAddress(interfaces, ['wlan0']), { address: '192.168.1.23', interface_name: 'wlan0', why: 'default route' });
    // A default route on an interface with no usable address falls through to the next.
    assert.equal(chooseLanAddress({ ...interfaces, usb0: [v4('169.254.3.4')] }, ['usb0', 'wlan0']).address, '192.168.1.23');
  });

  it('without a default route takes the only LAN address, and refuses to guess between several', () => {
    assert.deepEqual(chooseLanAddress({ lo: [v4('127.0.0.1', true)], veth0: [v4('10.205.7.3')] }, []), { address: '10.205.7.3', interface_name: 'veth0', why: 'only address' });
    const several = chooseLanAddress({ eth0: [v4('10.0.0.11')], wlan0: [v4('192.168.1.23')] }, []);
    assert.equal(several.address, null);
    assert.match((several as { problem: string }).problem, /several LAN addresses.*eth0 10\.0\.0\.11, wlan0 192\.168\.1\.23.*--advertise/);
  });

  it('counts loopback, link-local and IPv6 as no address (DHCP has not answered yet)', () => {
    const none = chooseLanAddress({ lo: [v4('127.0.0.1', true)], eth0: [v6('fe80::2'), v4('169.254.10.20')] }, ['eth0']);
    assert.equal(none.address, null);
    assert.match((none as { problem: string }).problem, /no IPv4 address on a LAN yet/);
  });

  it('is accepted by the cluster settings as advertise "auto", with its wait configurable', () => {
    const config = parseClusterConfig({ node_id: 'n1', advertise: 'auto', advertise_wait_ms: '500' }, { PIKV_CLUSTER_SECRET: 'a-secret-long-enough' });
    assert.equal(config?.advertise, 'auto');
    assert.equal(config?.advertise_wait_ms, 500);
    assert.equal(parseClusterConfig({ node_id: 'n1' }, { PIKV_CLUSTER_SECRET: 'a-secret-long-enough' })?.advertise_wait_ms, 60_000);
    assert.throws(() => parseClusterConfig({ node_id: 'n1', advertise: 'automatic' }, { PIKV_CLUSTER_SECRET: 'a-secret-long-enough' }), /advertise must be ws:\/\/host:port or auto/);
  });

  it('pikv serve refuses --advertise auto without a fixed port, before it listens', () => {
    const run = spawnSync(process.execPath, [CLI_PATH, 'serve', '--node-id', 'a', '--advertise', 'auto', '--port', '0', '--workers', '1'],
      { env: { ...process.env, PIKV_CLUSTER_SECRET: 'a-secret-long-enough' }, encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /--advertise auto needs a fixed --port/);
    assert.doesNotMatch(run.stdout, /listening on/);
  });
});

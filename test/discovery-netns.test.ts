/**
 * LAN discovery across network namespaces (issue #12, item 4): every process runs in a
 * namespace this test creates (names `pd<pid>-*`, addresses 10.205.<x>.0/24 that exist only
 * inside them, veth pairs into a bridge in its own namespace, so multicast flows between
 * them as on one LAN segment and reaches nothing outside).
 *
 * - etcd (Debian's etcd-server) in its own namespace; n1 uses it explicitly
 *   (`--etcd http://...`), as a board configured by hand or an etcd member board would, and so
 *   creates the cluster and advertises that endpoint.
 * - A rogue: its own etcd and a pikv node r1 with the same cluster name but another secret, so
 *   the view in its etcd is signed with the wrong secret. It is up first.
 * - n2 (`--etcd auto`) starts before n1: it must see the rogue's endpoint, refuse it (the HMAC
 *   check fails), and wait, not join the rogue's cluster nor create one. Then n1 starts, and
 *   n3 (`--join auto`): both n2 and n3 must find the real etcd, join through it (the join
 *   request in etcd, carried out by the controller), and the view must settle on n1, n2, n3.
 * - `pikv discover --json` in a client namespace lists all four nodes as they advertise
 *   themselves; `pikv cluster status` shows the real cluster without r1, the rogue's without
 *   n2/n3; a value put through n3 is read back through n2.
 * - Then a twin: t1, with the right secret, pointed by hand at a third etcd, creates a valid view
 *   of the same cluster there. n4 (`--etcd auto`) now sees two etcd clusters that both pass the
 *   HMAC check: it must wait, saying which, and start on neither.
 *
 * n2, n3 and n4 listen on 0.0.0.0 with `--advertise auto`, as identical Pi cards do: each must
 * tell the cluster, and mDNS, the one address its namespace has.
 *
 * Nodes have no multicast route (they send mDNS on their advertised address's interface); the
 * client namespace has one (224.0.0.0/4 via eth0, as a default route gives on a LAN), so both
 * ways out are used. Skips with a message where `ip netns` or etcd is unavailable.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { CLI_PATH } from './helpers/server-process.js';
import { etcdMissing } from './helpers/etcd.js';
import { ip, netnsUnavailable, NetnsWorld, type NetnsProc } from './helpers/netns-world.js';

const TAG = `pd${process.pid % 100000}`;
const SUBNET = `10.205.${process.pid % 250}`;
const PORT = 7070;
const CLUSTER = 'disc';
const SECRET = 'discovery-netns-secret';
const ROGUE_SECRET = 'not-the-cluster-secret';
const HOSTS = { n1: 1, n2: 2, n3: 3, n4: 4, r1: 50, t1: 60, cl: 100, etcd: 200, retcd: 201, tetcd: 202 } as const;
type Name = keyof typeof HOSTS;
const world = new NetnsWorld(TAG, SUBNET);
const address = (name: Name): string => world.address(HOSTS[name]);
const nsOf = (name: Name): string => `${TAG}-${name}`;
const urlOf = (name: Name): string => `ws://${address(name)}:${PORT}`;
const ETCD_URL = `http://${address('etcd')}:2379`;
const ROGUE_ETCD_URL = `http://${address('retcd')}:2379`;

function startEtcd(name: 'etcd' | 'retcd' | 'tetcd'): NetnsProc {
  return world.startEtcd(nsOf(name), name, `http://${address(name)}:2379`, 'pikv-discovery-etcd-');
}

/** A pikv node in its namespace; `etcd` is a URL or 'auto', or null for `--join auto`. */
function startNode(name: 'n1' | 'n2' | 'n3' | 'n4' | 'r1' | 't1', etcd: string | null, secret = SECRET): NetnsProc {
  // Nodes that find etcd by mDNS are started as an identical Pi card starts them: listening on
  // every address, and telling peers the one address their namespace has (--advertise auto).
  const auto = etcd === null || etcd === 'auto';
  const args = [CLI_PATH, 'serve', '--host', auto ? '0.0.0.0' : address(name), '--port', String(PORT), '--advertise', auto ? 'auto' : urlOf(name), '--node-id', name,
    '--cluster-name', CLUSTER, '--lease-ttl-ms', '2000', '--controller-tick-ms', '50', '--workers', '1', '--max-memory', '32mb', '--resp-port', 'off'];
  args.push(...(etcd === null ? ['--join', 'auto'] : ['--etcd', etcd]));
  // The secret travels in the environment (pikv refuses it on the command line).
  return world.spawn(nsOf(name), name, process.execPath, args, { env: { ...process.env, PIKV_CLUSTER_SECRET: secret } });
}

async function cli(args: string[], secret = SECRET): Promise<string> {
  const proc = world.spawn(nsOf('cl'), `pikv ${args[0]}`, process.execPath, [CLI_PATH, ...args], { env: { ...process.env, PIKV_CLUSTER_SECRET: secret } });
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 30_000);
  await proc.exited;
  clearTimeout(timer);
  assert.equal(proc.child.exitCode, 0, `pikv ${args.join(' ')} failed:\n${proc.text}`);
  return proc.text;
}

const skip = netnsUnavailable(TAG) ?? etcdMissing();

describe('LAN discovery across network namespaces', { skip: skip ?? false }, () => {
  after(() => world.cleanUp());

  it('three nodes find their etcd by mDNS and form a cluster; a rogue advertiser with a wrong-secret view is ignored; two valid etcds make a new node wait', { timeout: 150_000 }, async () => {
    world.addBridge();
    for (const name of Object.keys(HOSTS) as Name[]) world.addNamespace(nsOf(name), HOSTS[name]);
    ip('-n', nsOf('cl'), 'route', 'add', '224.0.0.0/4', 'dev', 'eth0');

    startEtcd('etcd');
    startEtcd('retcd');
    // The rogue: same cluster name, another secret, its own etcd; it creates "its" cluster there.
    const rogue = startNode('r1', ROGUE_ETCD_URL, ROGUE_SECRET);
    await rogue.waitForText(/view epoch 1 \(etcd\): nodes r1\b/, 30_000);
    await rogue.waitForText(/mdns: advertising/, 15_000);

    // n2 first: the only etcd on the LAN is the rogue's. It must refuse it and wait.
    const n2 = startNode('n2', 'auto');
    await n2.waitForText(new RegExp(`discovery: no etcd endpoint found on the LAN passed the check: ${ROGUE_ETCD_URL.replace(/\./g, '\\.')} ignored \\([^)]*wrong HMAC`), 30_000);
    assert.doesNotMatch(n2.text, /listening on|view epoch|discovery: using/, 'n2 must not start on an etcd that failed the check');

    const n1 = startNode('n1', ETCD_URL);
    await n1.waitForText(/view epoch 1 \(etcd\): nodes n1\b/, 30_000);
    const n3 = startNode('n3', null);
    for (const node of [n2, n3]) {
      const using = await node.waitForText(/discovery: using etcd (\S+) /, 45_000);
      assert.equal(using[1], ETCD_URL, `${node.name} chose ${using[1]}`);
      assert.match(node.text, new RegExp(`advertise auto: ${address(node.name as Name).replace(/\./g, '\\.')} \\(eth0, only address\\)`), `${node.name} found its own address`);
    }
    assert.match(n3.text, /ignored http:\/\/[\d.]+:2379 \([^)]*wrong HMAC/, 'n3 saw the rogue and ignored it');

    // Joining goes through etcd: each asks to join, the controller (n1) carries it out.
    const settled = /view epoch \d+ \(etcd\): nodes ((?:n[123],){2}n[123])(?!; moving)/;
    for (const node of [n1, n2, n3]) assert.equal((await node.waitForText(settled, 60_000))[1]!.split(',').sort().join(','), 'n1,n2,n3', node.name);

    const found = JSON.parse(await cli(['discover', '--json', '--timeout', '3s'])) as { node_id: string; cluster: string; url: string; etcd: string[] }[];
    const byId = new Map(found.map((node) => [node.node_id, node]));
    for (const id of ['n1', 'n2', 'n3', 'r1'] as const) {
      assert.ok(byId.has(id), `pikv discover lists ${id}: ${JSON.stringify(found)}`);
      assert.equal(byId.get(id)!.url, urlOf(id));
      assert.equal(byId.get(id)!.cluster, CLUSTER);
    }
    assert.deepEqual(byId.get('n2')!.etcd, [ETCD_URL], 'a node that found its etcd advertises it in turn');
    assert.deepEqual(byId.get('r1')!.etcd, [ROGUE_ETCD_URL]);
    const table = await cli(['discover', '--timeout', '3s', '--cluster', CLUSTER]);
    assert.match(table, new RegExp(`^${CLUSTER}\\s+n3\\s+${urlOf('n3').replace(/\./g, '\\.')}\\s`, 'm'), table);

    const status = JSON.parse(await cli(['cluster', 'status', '--json', '--url', urlOf('n1')])) as { view: { nodes: { id: string }[] } };
    assert.deepEqual(status.view.nodes.map((n) => n.id).sort(), ['n1', 'n2', 'n3']);
    const rogue_status = JSON.parse(await cli(['cluster', 'status', '--json', '--url', urlOf('r1')], ROGUE_SECRET)) as { view: { nodes: { id: string }[] } };
    assert.deepEqual(rogue_status.view.nodes.map((n) => n.id), ['r1'], 'nobody joined the rogue');

    await cli(['put', 'found', 'by-mdns', '--url', urlOf('n3')]);
    assert.equal(await cli(['get', 'found', '--url', urlOf('n2')]), 'by-mdns');

    // A second etcd cluster holding a *valid* view of the same cluster (t1 knows the secret and
    // was pointed at another etcd by hand, as a restored backup or a copy would be): a new node
    // cannot tell which is live, so it must wait and say why, and join neither.
    const TWIN_ETCD_URL = `http://${address('tetcd')}:2379`;
    startEtcd('tetcd');
    const twin = startNode('t1', TWIN_ETCD_URL);
    await twin.waitForText(/view epoch 1 \(etcd\): nodes t1\b/, 30_000);
    await twin.waitForText(/mdns: advertising/, 15_000);
    const n4 = startNode('n4', 'auto');
    const waiting = await n4.waitForText(/discovery: cannot tell which etcd is this cluster's: ([^\n]*)/, 30_000);
    assert.ok(waiting[1]!.includes(ETCD_URL) && waiting[1]!.includes(TWIN_ETCD_URL), waiting[0]);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.doesNotMatch(n4.text, /listening on|view epoch|discovery: using/, 'n4 must not start while two etcd clusters claim its cluster');
  });
});

if (skip !== null) console.log(`# discovery-netns: skipped: ${skip}`);

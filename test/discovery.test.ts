/**
 * LAN discovery without a LAN: the TXT record's encoding and what a hostile one is refused
 * for, the "one etcd cluster or nothing" rule, `--etcd auto` settings, `pikv discover`'s
 * timeout, and the HMAC gate (verifyEndpoint) against a real etcd on loopback. Multicast
 * itself is tested across network namespaces in discovery-netns.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClusterConfig } from '../src/cluster/cluster-config.js';
import { CANDIDATES_MAX, candidateEndpoints, decide, sameEtcdCluster, verifyEndpoint, type EndpointVerdict } from '../src/cluster/discovery/find-etcd.js';
import { decodeTxt, encodeTxt, isLoopbackUrl, type Advertisement, type Discovered } from '../src/cluster/discovery/txt.js';
import { ClusterKeys } from '../src/cluster/etcd/keys.js';
import { signView } from '../src/cluster/etcd/signed-view.js';
import { freeLoopbackPort } from '../src/cluster/etcd/local-server.js';
import { formatTable, parseTimeout } from '../src/cli/discover.js';
import { etcdFixture, etcdMissing, startEtcd } from './helpers/etcd.js';

const AD: Advertisement = { node_id: 'pi1', cluster: 'home', version: '0.1.0', peer_protocol: 1, url: 'ws://10.0.0.11:7070', etcd: ['http://10.0.0.11:2379', 'http://10.0.0.12:2379'] };

describe('discovery TXT records', () => {
  it('round-trips, as bonjour-service hands TXT values back (strings or Buffers)', () => {
    const txt = encodeTxt(AD);
    assert.deepEqual(txt, { id: 'pi1', cluster: 'home', v: '0.1.0', pv: '1', url: 'ws://10.0.0.11:7070', etcd: 'http://10.0.0.11:2379,http://10.0.0.12:2379' });
    assert.deepEqual(decodeTxt(txt), AD);
    assert.deepEqual(decodeTxt(Object.fromEntries(Object.entries(txt).map(([k, v]) => [k, Buffer.from(v)]))), AD);
    assert.deepEqual(decodeTxt({ ...txt, etcd: undefined }), { ...AD, etcd: [] });
  });

  it('leaves loopback etcd URLs out (no other board can reach them) and keeps the record within one TXT string', () => {
    assert.equal(encodeTxt({ ...AD, etcd: ['http://127.0.0.1:2379'] })['etcd'], undefined);
    const many = Array.from({ length: 7 }, (_, i) => `http://etcd-member-with-a-long-name-${i}.example.lan:2379`);
    const etcd = encodeTxt({ ...AD, etcd: many })['etcd']!;
    assert.ok(`etcd=${etcd}`.length <= 255, etcd);
    assert.ok(etcd.split(',').length >= 1 && many.join(',').startsWith(etcd), etcd);
    assert.ok(isLoopbackUrl('ws://127.0.0.1:7070') && isLoopbackUrl('ws://localhost:1') && !isLoopbackUrl('ws://10.0.0.1:7070'));
    assert.throws(() => encodeTxt({ ...AD, node_id: 'a b' }), /cannot be advertised/);
  });

  it('refuses malformed or hostile records whole', () => {
    const txt = encodeTxt(AD);
    for (const bad of [
      null, 'text', {}, { ...txt, id: '' }, { ...txt, id: 'x/../y' }, { ...txt, cluster: 'a/b' }, { ...txt, url: 'http://10.0.0.1:7070' },
      { ...txt, url: 'ws://10.0.0.1:7070/path' }, { ...txt, etcd: 'http://10.0.0.1:2379,file:///etc/passwd' }, { ...txt, etcd: 'http://h:1,'.repeat(8).slice(0, -1) },
      { ...txt, pv: 'x' }, { ...txt, v: 'a'.repeat(40) },
    ]) assert.equal(decodeTxt(bad), null, JSON.stringify(bad));
  });

  it('candidate endpoints come only from advertisements of the cluster asked for', () => {
    const node = (cluster: string, etcd: string[]): Discovered => ({ ...AD, cluster, etcd, name: `${cluster}`, from: '10.0.0.1' });
    assert.deepEqual(candidateEndpoints([node('home', ['http://b:1', 'http://a:1']), node('home', ['http://a:1']), node('other', ['http://c:1'])], 'home'), ['http://a:1', 'http://b:1']);
    const flood = Array.from({ length: 40 }, (_, i) => node('home', [`http://h${String(i).padStart(2, '0')}:1`]));
    assert.equal(candidateEndpoints(flood, 'home').length, CANDIDATES_MAX, 'a flood of advertisements is checked only so far');
  });
});

describe('choosing etcd endpoints', () => {
  const ok = (endpoint: string, id: string): EndpointVerdict => ({ endpoint, outcome: 'verified', etcd_cluster_id: id, epoch: 3 });
  it('uses the verified endpoints of one etcd cluster, ignoring the rest', () => {
    assert.deepEqual(decide([ok('http://a:1', '7'), { endpoint: 'http://r:1', outcome: 'bad-view', detail: 'wrong HMAC' }, ok('http://b:1', '7')], new Map([['http://b:1', true]])), { endpoints: ['http://a:1', 'http://b:1'] });
  });
  it('waits, saying why, when two etcd clusters hold a valid view (even with equal cluster ids), or none does', () => {
    const two = decide([ok('http://a:1', '7'), ok('http://b:1', '7')], new Map([['http://b:1', false]]));
    assert.ok('waiting' in two && /cannot tell which etcd/.test(two.waiting) && two.waiting.includes('http://b:1'), JSON.stringify(two));
    assert.ok('waiting' in decide([ok('http://a:1', '7'), ok('http://b:1', '7')]), 'an endpoint not probed is not the same cluster');
    const none = decide([{ endpoint: 'http://r:1', outcome: 'bad-view', detail: 'wrong HMAC' }, { endpoint: 'http://e:1', outcome: 'no-view', detail: 'no view' }]);
    assert.ok('waiting' in none && none.waiting.includes('http://r:1 ignored (wrong HMAC)') && none.waiting.includes('http://e:1 ignored (no view)'), JSON.stringify(none));
    assert.ok('waiting' in decide([]));
  });
});

describe('discovery settings', () => {
  const env = { PIKV_CLUSTER_SECRET: 's3cret' };
  it('--etcd auto and --join auto both mean: find etcd on the LAN', () => {
    for (const settings of [{ node_id: 'n', etcd: 'auto' }, { node_id: 'n', join: 'auto' }]) {
      const config = parseClusterConfig(settings, env)!;
      assert.equal(config.etcd_discover, true);
      assert.deepEqual(config.etcd, []);
      assert.deepEqual(config.join, []);
      assert.equal(config.mdns, 'auto');
    }
    assert.equal(parseClusterConfig({ node_id: 'n', etcd: 'http://e:2379' }, env)!.etcd_discover, false);
  });
  it('refuses auto mixed with URLs, and auto without mDNS', () => {
    assert.throws(() => parseClusterConfig({ node_id: 'n', etcd: 'auto,http://e:2379' }, env), /only value/);
    assert.throws(() => parseClusterConfig({ node_id: 'n', etcd: 'auto', join: 'ws://x:1' }, env), /give no etcd URLs/);
    assert.throws(() => parseClusterConfig({ node_id: 'n', etcd: 'auto', mdns: 'off' }, env), /--mdns off/);
    assert.throws(() => parseClusterConfig({ node_id: 'n', mdns: 'loud' }, env), /mdns must be/);
    assert.throws(() => parseClusterConfig({ node_id: 'n', mdns_interface: 'eth0' }, env), /IPv4/);
    assert.equal(parseClusterConfig({ mdns: 'off' }, env), null, 'mdns alone does not make a cluster node');
  });
  it('pikv discover --timeout takes 3s, 500ms or seconds, within 100ms..60s', () => {
    assert.equal(parseTimeout('3s'), 3000);
    assert.equal(parseTimeout('500ms'), 500);
    assert.equal(parseTimeout('2.5'), 2500);
    for (const bad of ['0', '50ms', '61s', 'soon', '-1s', '']) assert.throws(() => parseTimeout(bad), /--timeout/, bad);
  });
  it('the table has one line per node, unverified values as given', () => {
    const table = formatTable([{ ...AD, name: 'pikv home pi1', from: '10.0.0.11' }]);
    assert.match(table, /^CLUSTER\s+NODE\s+URL\s+VERSION\s+ETCD\s+FROM\n/);
    assert.match(table, /^home\s+pi1\s+ws:\/\/10\.0\.0\.11:7070\s+0\.1\.0\/p1\s+http:\/\/10\.0\.0\.11:2379,http:\/\/10\.0\.0\.12:2379\s+10\.0\.0\.11$/m);
  });
});

describe('the HMAC gate against a real etcd', { skip: etcdMissing() ?? false, timeout: 60_000 }, () => {
  const fixture = etcdFixture();
  const view = { epoch: 4, nodes: [{ id: 'n1', url: 'ws://10.0.0.1:7070', weight: 1 }] };

  it('an endpoint is verified only by a view signed with our secret for our cluster', async () => {
    const url = fixture.etcd.client_url;
    assert.equal((await verifyEndpoint(url, 'gate', 'right-secret')).outcome, 'no-view', 'an empty etcd proves nothing');
    await fixture.client.put(new ClusterKeys('gate').view).value(signView('gate', view, 'wrong-secret'));
    const wrong = await verifyEndpoint(url, 'gate', 'right-secret');
    assert.ok(wrong.outcome === 'bad-view' && /wrong HMAC/.test(wrong.detail), JSON.stringify(wrong));
    await fixture.client.put(new ClusterKeys('gate').view).value(signView('other', view, 'right-secret'));
    assert.equal((await verifyEndpoint(url, 'gate', 'right-secret')).outcome, 'bad-view', 'a view signed for another cluster name');
    await fixture.client.put(new ClusterKeys('gate').view).value(signView('gate', view, 'right-secret'));
    const good = await verifyEndpoint(url, 'gate', 'right-secret');
    assert.equal(good.outcome, 'verified');
    assert.ok(good.outcome === 'verified' && good.epoch === 4 && /^\d+$/.test(good.etcd_cluster_id), JSON.stringify(good));
  });

  it('two endpoints are one etcd cluster only if a probe key written through one is read through the other', async () => {
    const url = fixture.etcd.client_url;
    const other = await startEtcd();
    try {
      assert.equal(await sameEtcdCluster(url, url.replace('127.0.0.1', 'localhost'), 'gate'), true, 'the same etcd by two names');
      assert.equal(await sameEtcdCluster(url, other.client_url, 'gate'), false, 'two etcds');
      const left = await fixture.client.getAll().prefix('/pikv/gate/discovery/').keys();
      assert.deepEqual(left, [], 'the probe key is gone');
    } finally {
      await other.stop();
    }
  });

  it('an endpoint that does not answer is unreachable, within the deadline', async () => {
    const port = await freeLoopbackPort();
    const verdict = await verifyEndpoint(`http://127.0.0.1:${port}`, 'gate', 'right-secret', 500);
    assert.equal(verdict.outcome, 'unreachable');
  });
});

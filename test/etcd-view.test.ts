import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEtcdClient } from '../src/cluster/etcd/client.js';
import { isClusterEtcdError } from '../src/cluster/etcd/errors.js';
import { ClusterKeys, checkAdminRequest } from '../src/cluster/etcd/keys.js';
import { canonicalJson, signView, verifyView } from '../src/cluster/etcd/signed-view.js';
import { ViewStore, type StoredView } from '../src/cluster/etcd/view-store.js';
import { checkView, type ClusterView } from '../src/routing/view.js';
import { etcdFixture, etcdMissing, startEtcdProxy, waitUntil } from './helpers/etcd.js';

const SECRET = 'test-secret';

function view(epoch: number, ids: string[] = ['a']): ClusterView {
  return { epoch, nodes: ids.map((id, i) => ({ id, url: `ws://127.0.0.1:${7000 + i}`, weight: 1 })) };
}

describe('signed views (no etcd)', () => {
  it('canonical JSON sorts keys at every level', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } }), '{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}');
  });

  it('round-trips, and rejects a wrong secret, another cluster, a tampered view and garbage with VIEW_SIGNATURE_INVALID', () => {
    const stored = signView('c1', view(3), SECRET);
    assert.deepEqual(verifyView('c1', stored, SECRET, checkView), view(3));
    const invalid = (fn: () => unknown): void => assert.throws(fn, (err) => isClusterEtcdError(err, 'VIEW_SIGNATURE_INVALID'));
    invalid(() => verifyView('c1', stored, 'other-secret'));
    invalid(() => verifyView('c2', stored, SECRET));
    invalid(() => verifyView('c1', stored.replace('"epoch":3', '"epoch":4'), SECRET));
    invalid(() => verifyView('c1', JSON.stringify(view(3)), SECRET));
    invalid(() => verifyView('c1', 'not json', SECRET));
    assert.throws(() => signView('c1', view(1), ''), RangeError);
  });

  it('keys of two clusters do not overlap; admin requests are validated', () => {
    const a = new ClusterKeys('a');
    const ab = new ClusterKeys('ab');
    assert.equal(a.view, '/pikv/a/view');
    assert.ok(!ab.member('x').startsWith(a.prefix));
    assert.equal(a.memberIdOf(a.member('n1')), 'n1');
    assert.throws(() => new ClusterKeys('a/b'), (err) => isClusterEtcdError(err, 'BAD_CLUSTER_KEY'));
    assert.throws(() => a.member('x/y'));
    assert.deepEqual(checkAdminRequest({ kind: 'join', node_id: 'n', url: 'ws://h:1', weight: 2 }), { kind: 'join', node_id: 'n', url: 'ws://h:1', weight: 2 });
    assert.throws(() => checkAdminRequest({ kind: 'weight', node_id: 'n', weight: 99 }));
    assert.throws(() => checkAdminRequest({ kind: 'explode' }));
  });
});

describe('view store against a real etcd', { skip: etcdMissing() ?? false, timeout: 60_000 }, () => {
  const fixture = etcdFixture();
  const logs: string[] = [];
  const store = (cluster: string, secret = SECRET): ViewStore<ClusterView> =>
    new ViewStore<ClusterView>({ client: fixture.client, cluster, secret, check: checkView, log: (line) => logs.push(line) });


  it('creates, then of two writers racing from the same revision exactly one wins', async () => {
    const views = store('race');
    assert.equal(await views.readView(), null);
    const created = await views.casView(0, view(1));
    assert.ok(created.ok);
    assert.equal((await views.casView(0, view(1))).ok, false, 'a second create conflicts');
    for (let round = 0; round < 10; round++) {
      const current = (await views.readView())!;
      const results = await Promise.all([
        views.casView(current.mod_revision, view(current.view.epoch + 1, ['a', 'b'])),
        views.casView(current.mod_revision, view(current.view.epoch + 1, ['a', 'c'])),
      ]);
      assert.equal(results.filter((r) => r.ok).length, 1, `round ${round}: exactly one writer wins`);
      const loser = results.find((r) => !r.ok)!;
      assert.ok(!loser.ok && loser.current !== null && loser.current.view.epoch === current.view.epoch + 1, 'the loser sees the winner');
    }
    assert.equal((await views.readView())!.view.epoch, 11);
  });

  it('refuses a change that does not raise the epoch by exactly one, without writing', async () => {
    const views = store('epoch');
    const created = await views.casView(0, view(5));
    assert.ok(created.ok);
    for (const epoch of [5, 7, 4]) {
      await assert.rejects(views.casView(created.mod_revision, view(epoch)), (err) => isClusterEtcdError(err, 'VIEW_EPOCH_INVALID'));
    }
    const current = (await views.readView())!;
    assert.equal(current.mod_revision, created.mod_revision);
    assert.ok((await views.casView(created.mod_revision, view(6))).ok);
  });

  it('watchers drop a view signed with another secret, and deliver the next valid one', async () => {
    const views = store('forged');
    const forger = store('forged', 'wrong-secret');
    assert.ok((await views.casView(0, view(1))).ok);
    const seen: StoredView<ClusterView>[] = [];
    const watch = views.watchView((stored) => seen.push(stored));
    try {
      await waitUntil('the first view', () => seen.length === 1);
      const current = (await views.readView())!;
      // The forger cannot pass casView's epoch check (it cannot read the view), so it writes raw.
      await fixture.client.put(views.keys.view).value(signView('forged', view(2, ['evil']), 'wrong-secret'));
      await assert.rejects(views.readView(), (err) => isClusterEtcdError(err, 'VIEW_SIGNATURE_INVALID'));
      assert.equal((await forger.readView())!.view.nodes[0]!.id, 'evil', 'only the forger believes it');
      await waitUntil('the forged view to be logged', () => logs.some((line) => line.includes('dropped the view')));
      // Restore a valid view at the next epoch (an operator with the secret would do this).
      await fixture.client.put(views.keys.view).value(signView('forged', view(2, ['a', 'b']), SECRET));
      await waitUntil('the next valid view', () => seen.length === 2);
      assert.deepEqual(seen.map((s) => s.view.epoch), [1, 2]);
      assert.ok(seen.every((s) => !s.view.nodes.some((n) => n.id === 'evil')));
      assert.ok(seen[1]!.mod_revision > current.mod_revision);
    } finally {
      await watch.close();
    }
  });

  it('two clusters with different names share one etcd without interference', async () => {
    const one = store('shared-1');
    const two = store('shared-2');
    assert.ok((await one.casView(0, view(1, ['x']))).ok);
    assert.ok((await two.casView(0, view(9, ['y']))).ok);
    assert.equal((await one.readView())!.view.epoch, 1);
    assert.equal((await two.readView())!.view.nodes[0]!.id, 'y');
  });

  it('delivers every change in order while running', async () => {
    const views = store('order');
    const seen: number[] = [];
    const watch = views.watchView((stored) => seen.push(stored.view.epoch));
    try {
      let mod = 0;
      for (let epoch = 1; epoch <= 30; epoch++) {
        const result = await views.casView(mod, view(epoch));
        assert.ok(result.ok);
        mod = result.mod_revision;
      }
      await waitUntil('30 views', () => seen.at(-1) === 30);
      assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i + 1), 'every view, in order, once');
    } finally {
      await watch.close();
    }
  });

  it('a watch cut off while history is compacted re-reads and resumes with the latest view', async () => {
    const proxy = await startEtcdProxy(fixture.etcd.client_url);
    const watcher_client = createEtcdClient({ hosts: [proxy.client_url] });
    const views = store('compact');
    const watched = new ViewStore<ClusterView>({ client: watcher_client, cluster: 'compact', secret: SECRET, check: checkView, log: (line) => logs.push(line) });
    const seen: number[] = [];
    const watch = watched.watchView((stored) => seen.push(stored.view.epoch));
    try {
      let mod = 0;
      for (let epoch = 1; epoch <= 3; epoch++) mod = ((await views.casView(mod, view(epoch))) as { mod_revision: number }).mod_revision;
      await waitUntil('epoch 3 through the proxy', () => seen.at(-1) === 3);
      proxy.cut(); // the watcher falls behind: its stream is gone and it cannot reconnect
      for (let epoch = 4; epoch <= 60; epoch++) {
        mod = ((await views.casView(mod, view(epoch))) as { mod_revision: number }).mod_revision;
        await fixture.client.put('/unrelated/noise').value(String(epoch)); // more revisions than view changes
      }
      await fixture.client.kv.compact({ revision: mod, physical: true });
      proxy.restore();
      await waitUntil('the latest view after compaction', () => seen.at(-1) === 60, 15_000);
      assert.ok(watch.resyncs >= 1, 'the watch re-read the view');
      assert.ok(seen.length < 60, 'history was compacted: intermediate views were skipped');
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, 'never backwards');
      // And it keeps watching from there.
      await views.casView(mod, view(61));
      await waitUntil('epoch 61', () => seen.at(-1) === 61);
    } finally {
      await watch.close();
      watcher_client.close();
      await proxy.close();
    }
  });

  it('a watch started after a remembered revision that was compacted re-reads the latest view', async () => {
    const views = store('remembered');
    let mod = ((await views.casView(0, view(1))) as { mod_revision: number }).mod_revision;
    const remembered = mod;
    for (let epoch = 2; epoch <= 10; epoch++) mod = ((await views.casView(mod, view(epoch))) as { mod_revision: number }).mod_revision;
    await fixture.client.kv.compact({ revision: mod, physical: true });
    const seen: number[] = [];
    const watch = views.watchView((stored) => seen.push(stored.view.epoch), { after_mod_revision: remembered });
    try {
      await waitUntil('epoch 10', () => seen.at(-1) === 10);
      assert.deepEqual(seen, [10]);
    } finally {
      await watch.close();
    }
  });
});

/**
 * min_replicas (docs/REPLICATION.md, "Degraded states"): with real etcd and real nodes at N=2.
 * With min_replicas 2, a node's death leaves the slots it held with one copy up: their writes are
 * refused with NOT_ENOUGH_REPLICAS (and not applied), their reads go on, and slots whose two
 * copies are both up keep taking writes. `pikv cluster set-min-replicas 1` lets them write again.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { connectCluster } from '../src/index.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';
import { Placement } from '../src/routing/placement.js';
import { HashRing } from '../src/routing/ring.js';
import type { ClusterView } from '../src/routing/view.js';
import { etcdMissing } from './helpers/etcd.js';
import { viewOf } from './helpers/cluster-view.js';
import { clusters, ENV, startThree, waitFor, withCluster } from './helpers/etcd-cluster.js';
import { runCli } from './helpers/server-process.js';

const skip = etcdMissing() ?? false;

/** `count` keys whose two copies are exactly on `holders` in `view`. */
function keysOn(view: ClusterView, holders: string[], count: number): string[] {
  const placement = new Placement(new HashRing(view.nodes), view.replicas ?? 1, new Set());
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) {
    const key = `mr-${holders.join('')}-${i}`;
    const hash = murmur3_x86_32(Buffer.from(key), 0, Buffer.byteLength(key), KEY_HASH_SEED);
    if (holders.every((id) => placement.holds(id, hash))) keys.push(key);
  }
  return keys;
}

/** The first view of three members with no change in progress. */
function settledThree(url: string): Promise<ClusterView> {
  return waitFor(async () => {
    const v = await viewOf(url).catch(() => null);
    return v !== null && v.next === undefined && v.nodes.length === 3 ? v : null;
  }, 30_000);
}

describe('min_replicas', { skip, timeout: 120_000 }, () => {
  after(async () => {
    for (const cluster of clusters) await cluster.stop();
  });

  it('refuses writes to slots below min_replicas, serves their reads, and writes again after set-min-replicas 1', { timeout: 90_000 }, async () => {
    await withCluster('min-replicas', async (cluster) => {
      await startThree(cluster, false);
      const a = cluster.get('a').url;
      const view = await settledThree(a);
      assert.equal(view.replicas, 2);
      assert.equal(view.min_replicas, 2, 'the cluster was created with --min-replicas 2');
      const with_c = [...keysOn(view, ['a', 'c'], 20), ...keysOn(view, ['b', 'c'], 20)];
      const without_c = keysOn(view, ['a', 'b'], 20);
      const client = await connectCluster([a], { request_timeout_ms: 3_000 });
      cluster.closers.push(() => client.close());
      const put = (keys: string[], value: string) => client.batch(keys.map((key) => ({ op: 'put' as const, key, value })));
      assert.ok((await put([...with_c, ...without_c], 'v1')).every((r) => r.code === 'OK'));

      await cluster.kill('c');
      await waitFor(async () => ((await viewOf(a).catch(() => null))?.down?.includes('c') === true ? true : null), 15_000);
      // The client learns c is down from its first NODE_DOWN (it re-reads the view), then resends.
      const refused = await waitFor(async () => {
        const r = await put(with_c, 'v2').catch(() => null);
        return r !== null && !r.some((x) => x.code === 'NODE_DOWN') ? r : null;
      }, 10_000);
      assert.deepEqual(new Set(refused.map((r) => r.code)), new Set(['NOT_ENOUGH_REPLICAS']), 'every write to a slot with one copy up is refused');
      const read = await client.batch(with_c.map((key) => ({ op: 'get' as const, key })));
      assert.ok(read.every((r) => r.code === 'OK' && Buffer.from(r.value!).toString() === 'v1'), 'reads go on, and the refused writes were not applied');
      assert.ok((await put(without_c, 'v2')).every((r) => r.code === 'OK'), 'slots with both copies up take writes');

      const status = await runCli(['cluster', 'status', '--url', a], ENV);
      assert.match(status.stdout, /min_replicas 2/);
      assert.match(status.stdout, /below min_replicas: writes refused/);

      const lowered = await runCli(['cluster', 'set', 'min-replicas', '1', '--url', a, '--wait-ms', '20000'], ENV);
      assert.equal(lowered.code, 0, lowered.stderr);
      const after_results = await waitFor(async () => {
        const r = await put(with_c, 'v3').catch(() => null);
        return r !== null && r.every((x) => x.code === 'OK') ? r : null;
      }, 10_000);
      assert.equal(after_results.length, with_c.length);
    }, ['--replicas', '2', '--min-replicas', '2', '--down-grace-ms', '600000']);
  });

  it('answers NOT_ENOUGH_REPLICAS, not OK, for a write whose only backup froze and was marked down while it waited', { timeout: 90_000 }, async () => {
    await withCluster('min-replicas-frozen', async (cluster) => {
      await startThree(cluster, false);
      const a = cluster.get('a').url;
      const view = await settledThree(a);
      // Keys whose copies are a and c, written through a (their primary is a or c; the client routes).
      const keys = keysOn(view, ['a', 'c'], 10);
      const client = await connectCluster([a], { request_timeout_ms: 20_000 });
      cluster.closers.push(() => client.close());
      const c = cluster.get('c');
      process.kill(c.process.pid, 'SIGSTOP');
      cluster.closers.push(async () => {
        try { process.kill(c.process.pid, 'SIGCONT'); } catch { /* gone */ }
      });
      // Only the keys a is primary of: their answers wait for c, which is frozen.
      const placement = new Placement(new HashRing(view.nodes), 2, new Set(), 2);
      const on_a = keys.filter((key) => placement.primaryOf(murmur3_x86_32(Buffer.from(key), 0, Buffer.byteLength(key), KEY_HASH_SEED))?.id === 'a');
      assert.ok(on_a.length > 0);
      const results = await client.batch(on_a.map((key) => ({ op: 'put' as const, key, value: 'while-c-frozen' })));
      const marked = await viewOf(a);
      assert.ok(marked.down?.includes('c'), 'c was marked down while the writes waited');
      // Without the after-append check these writes would answer OK once c is marked down. On a
      // starved machine a's own lease fence can run out while they wait: NODE_DOWN, also "not
      // done" (seen once at load average 17). Anything else, OK above all, is the bug.
      const codes = new Set(results.map((r) => r.code));
      assert.ok(!codes.has('OK') && [...codes].every((code) => code === 'NOT_ENOUGH_REPLICAS' || code === 'NODE_DOWN'), `a write left on one copy of two is not reported done: ${[...codes].join(', ')}`);
    }, ['--replicas', '2', '--min-replicas', '2', '--down-grace-ms', '600000']);
  });
});

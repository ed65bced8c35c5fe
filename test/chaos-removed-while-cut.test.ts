/**
 * Found by `npm run chaos` (seed 9, --netns, a partition of node e for 5 s with a 3 s grace):
 * a running member cut off from etcd for longer than its lease plus the down grace is marked
 * down and removed (its copies rebuilt on the others), as REPLICATION.md step 4 says; it should
 * then "wipe its tables and join again". Instead it stops itself for good: when its link comes
 * back it reads the newest view, in which it is absent, without having seen the views between
 * (the one that marked it down, the removal's start); `ClusterNode.adopt` then finds it was a
 * full member and not failed, takes the removal for a leave ("this node has left the cluster"),
 * and the process exits. A board whose network blips for longer than lease + grace (60 s by
 * default) drops out of the cluster until someone restarts pikv by hand.
 *
 * Real processes: etcd, nodes a and b, and node c whose etcd traffic goes through a TCP proxy
 * (test/helpers/etcd.ts startEtcdProxy), N = 2, a 1 s grace. c's link to etcd is cut until a and
 * b have removed it, then restored. c must keep running and be a member again within a bound.
 * Every process is stopped by PID.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { freeLoopbackPort } from '../src/cluster/etcd/local-server.js';
import { etcdMissing } from './helpers/etcd.js';
import type { ServerProcess } from './helpers/server-process.js';
import { waitForHealthyView, waitForView } from './helpers/cluster-view.js';
import { fill } from './helpers/etcd-cluster.js';
import { ProxiedEtcdCluster } from './helpers/proxied-etcd-cluster.js';

const skip = etcdMissing() ?? false;
const cluster = new ProxiedEtcdCluster('removed');

async function serve(id: string, etcd_url: string): Promise<ServerProcess> {
  const dir = cluster.dataDir(id);
  return cluster.serve(id, await freeLoopbackPort(), etcd_url, dir);
}

describe('a member removed while cut off from etcd', { skip, timeout: 120_000 }, () => {
  after(() => cluster.stop());

  it('joins again when its link comes back, instead of taking the removal for a leave and stopping', { timeout: 100_000 }, async () => {
    await cluster.start();
    const { etcd_url, proxy } = cluster;
    const a = await serve('a', etcd_url);
    await waitForView(a.url, ['a']);
    await serve('b', etcd_url);
    await waitForView(a.url, ['a', 'b']);
    const c = await serve('c', proxy.client_url);
    await waitForView(a.url, ['a', 'b', 'c']);
    await fill(a.url, 5_000);

    proxy.cut();
    // Marked down after its lease, removed after the 1 s grace: a settled view of a and b.
    const removed = await waitForHealthyView(a.url, ['a', 'b'], 40_000);
    proxy.restore();
    console.log(`# c removed at epoch ${removed.epoch} while cut off; link restored`);

    const back = await waitForView(a.url, ['a', 'b', 'c'], 30_000).catch(() => null);
    const exited = c.child.exitCode !== null || c.child.signalCode !== null;
    const said = c.output().split('\n').filter((line) => /left the cluster|joins again|stopping|stopped/.test(line)).join(' | ');
    assert.ok(!exited, `c stopped itself after its removal (exit ${c.child.exitCode}); it said: ${said}`);
    assert.ok(back !== null, `c did not join again within 30 s; it said: ${said}`);
  });
});

/**
 * Found by `npm run chaos` (seed 5, --netns): a node that was removed (down past its grace)
 * and comes back asks to join by writing a request to etcd. If that one write fails (etcd
 * restarting, a blip on the node's link to etcd), the node never asks again while the view's
 * epoch stays the same: `requestJoinIfAbsent` (etcd-membership.ts) records the epoch before
 * the write succeeds, and retries only for a newer epoch. In a quiet cluster nothing else
 * changes the epoch, so the node stays out for good: running, registered, serving nothing,
 * and the cluster one copy short of the board the operator thinks is back. (In the chaos run
 * it stayed out ~45 s, until an unrelated kill -9 bumped the epoch.)
 *
 * Reproduced with real processes: etcd, nodes a and b, and node c whose etcd traffic goes
 * through a TCP proxy (test/helpers/etcd.ts startEtcdProxy). c holds many keys on its
 * --data-dir, is killed -9 and removed after its grace; it is restarted on its data dir and,
 * once it has read the view (it then deletes its old copies before it asks to join), its link
 * to etcd is cut, so the join request fails; the link is restored a moment later. c must be a
 * member again within a bound. Every process is stopped by PID.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { freeLoopbackPort } from '../src/cluster/etcd/local-server.js';
import { etcdMissing } from './helpers/etcd.js';
import { viewOf, waitForHealthyView, waitForView } from './helpers/cluster-view.js';
import { fill, waitFor } from './helpers/etcd-cluster.js';
import { ProxiedEtcdCluster } from './helpers/proxied-etcd-cluster.js';

const skip = etcdMissing() ?? false;
const cluster = new ProxiedEtcdCluster('rejoin');

describe('a removed node coming back while its link to etcd blips', { skip, timeout: 120_000 }, () => {
  after(() => cluster.stop());

  it('asks to join again after a failed join request, and is a member again', { timeout: 100_000 }, async () => {
    await cluster.start();
    const { etcd_url, proxy } = cluster;
    const a = await cluster.serve('a', await freeLoopbackPort(), etcd_url, cluster.dataDir('a'));
    await waitForView(a.url, ['a']);
    const b = await cluster.serve('b', await freeLoopbackPort(), etcd_url, cluster.dataDir('b'));
    await waitForView(a.url, ['a', 'b']);
    const c_port = await freeLoopbackPort();
    const c_dir = cluster.dataDir('c');
    const c1 = await cluster.serve('c', c_port, proxy.client_url, c_dir);
    await waitForView(a.url, ['a', 'b', 'c']);
    // Keys on c's disk: when it comes back outside the view it deletes them before it asks to
    // join, which gives the test time to cut its link after it read the view.
    await fill(a.url, 40_000);

    process.kill(c1.pid, 'SIGKILL');
    await c1.exited;
    // Down, then removed after its grace (1 s), its copies rebuilt on a and b.
    await waitForHealthyView(a.url, ['a', 'b'], 40_000);
    const quiet = await viewOf(a.url);

    const c2 = await cluster.serve('c', c_port, proxy.client_url, c_dir);
    // It read the view (it prints it); cut its link to etcd before its clean-up is done.
    await waitFor(async () => (/view epoch \d+ \(etcd\)/.test(c2.output()) ? true : null), 15_000, 2);
    proxy.cut();
    const failed = await waitFor(async () => (/join request failed/.test(c2.output()) ? true : null), 10_000, 20).catch(() => false);
    proxy.restore();
    const joined_before_cut = (await viewOf(a.url)).nodes.some((n) => n.id === 'c') || /view epoch \d+ \(etcd\): nodes [a-c,]*c/.test(c2.output());
    assert.ok(failed, `precondition not reached: c's join request did not fail while its link was cut (joined before the cut: ${joined_before_cut}); c's output:\n${c2.output().slice(-3000)}`);
    console.log(`# c's join request failed at epoch ${quiet.epoch}; link restored`);

    // Nothing else happens in the cluster: c must still get in, by asking again.
    const back = await waitForView(a.url, ['a', 'b', 'c'], 30_000).catch(() => null);
    const view_now = await viewOf(a.url);
    assert.ok(back !== null, `c never joined again after one failed join request: view stays at epoch ${view_now.epoch} with ${view_now.nodes.map((n) => n.id).join(',')} (it was ${quiet.epoch}); c's output:\n${c2.output().slice(-2000)}`);
    void b;
  });
});

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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freeLoopbackPort } from '../src/cluster/etcd/local-server.js';
import { etcdMissing, startEtcd, startEtcdProxy, type EtcdProcess, type EtcdProxy } from './helpers/etcd.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { viewOf, waitForView } from './helpers/cluster-view.js';
import { ENV, fill, waitFor } from './helpers/etcd-cluster.js';

const skip = etcdMissing() ?? false;
const started: ServerProcess[] = [];
const dirs: string[] = [];
let etcd: EtcdProcess | null = null;
let proxy: EtcdProxy | null = null;

function serve(id: string, etcd_url: string): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), `pikv-removed-${id}-`));
  dirs.push(dir);
  return freeLoopbackPort().then((port) => startServer(['--port', String(port), '--node-id', id, '--etcd', etcd_url, '--workers', '1', '--max-memory', '128mb',
    '--replicas', '2', '--lease-ttl-ms', '2000', '--down-grace-ms', '1000', '--controller-tick-ms', '50', '--heartbeat-interval-ms', '200',
    '--forward-timeout-ms', '2000', '--data-dir', dir, '--fsync', 'always'], ENV)).then((server) => {
    started.push(server);
    return server;
  });
}

async function stopAll(): Promise<void> {
  for (const server of started.splice(0)) {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      process.kill(server.pid, 'SIGKILL');
      await server.exited;
    }
  }
  await proxy?.close();
  proxy = null;
  await etcd?.stop();
  etcd = null;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

describe('a member removed while cut off from etcd', { skip, timeout: 120_000 }, () => {
  after(stopAll);

  it('joins again when its link comes back, instead of taking the removal for a leave and stopping', { timeout: 100_000 }, async () => {
    etcd = await startEtcd();
    proxy = await startEtcdProxy(etcd.client_url);
    const a = await serve('a', etcd.client_url);
    await waitForView(a.url, ['a']);
    await serve('b', etcd.client_url);
    await waitForView(a.url, ['a', 'b']);
    const c = await serve('c', proxy.client_url);
    await waitForView(a.url, ['a', 'b', 'c']);
    await fill(a.url, 5_000);

    proxy.cut();
    // Marked down after its lease, removed after the 1 s grace: a settled view of a and b.
    const removed = await waitFor(async () => {
      const view = await viewOf(a.url).catch(() => null);
      return view !== null && view.next === undefined && (view.down?.length ?? 0) === 0 && view.nodes.map((n) => n.id).sort().join(',') === 'a,b' ? view : null;
    }, 40_000, 50);
    proxy.restore();
    console.log(`# c removed at epoch ${removed.epoch} while cut off; link restored`);

    const back = await waitForView(a.url, ['a', 'b', 'c'], 30_000).catch(() => null);
    const exited = c.child.exitCode !== null || c.child.signalCode !== null;
    const said = c.output().split('\n').filter((line) => /left the cluster|joins again|stopping|stopped/.test(line)).join(' | ');
    assert.ok(!exited, `c stopped itself after its removal (exit ${c.child.exitCode}); it said: ${said}`);
    assert.ok(back !== null, `c did not join again within 30 s; it said: ${said}`);
  });
});

/**
 * Fault tests of the etcd membership (docs/MEMBERSHIP.md, issue #9 "How it will be checked"),
 * with real processes: a real etcd and real `pikv serve --etcd` nodes on loopback, killed with
 * SIGKILL, frozen with SIGSTOP, restarted on the same --data-dir and port, while a ring-aware
 * writer (connectCluster) and a plain writer (connected to a node that stays up) run through
 * every fault, and the lost-write checker (helpers/lost-write-checker.ts) reads every key at
 * the end.
 *
 * Each scenario runs its own etcd and nodes, and stops all of them by PID when it ends (and
 * again in `after`). PIKV_TEST_LOGS=<prefix> writes every node's output (every incarnation)
 * to <prefix>-<scenario>-<id>.log when a scenario fails.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { connect, type PikvClient } from '../src/index.js';
import { ClusterKeys } from '../src/cluster/etcd/keys.js';
import { HashRing } from '../src/routing/ring.js';
import { etcdMissing } from './helpers/etcd.js';
import { runCli } from './helpers/server-process.js';
import { delay } from './helpers/raw-socket.js';
import { viewOf, waitForView } from './helpers/cluster-view.js';
import { clusters, ENV, fill, LEASE_TTL_MS, startThree, statusOf, waitFor, waitForNext, withCluster, Writers, type NodeStatus } from './helpers/etcd-cluster.js';

const skip = etcdMissing() ?? false;

describe('membership in etcd under faults', { skip, timeout: 180_000 }, () => {
  after(async () => {
    for (const cluster of clusters) await cluster.stop();
  });

  it('kill -9 of the controller mid-move: restarted on its data dir, the move completes and no acknowledged write is lost', { timeout: 60_000 }, async () => {
    await withCluster('controller', async (cluster) => {
      await startThree(cluster, true);
      const controller = await cluster.controller();
      const stay = [...cluster.members.keys()].find((id) => id !== controller)!;
      const stay_url = cluster.get(stay).url;
      await fill(stay_url, 30_000);
      const writers = await Writers.start(cluster, stay_url);
      await delay(500);
      await cluster.add('d', true);
      const moving = await waitForNext(stay_url);
      await cluster.kill(controller);
      assert.ok(moving.next!.some((n) => n.id === 'd'), JSON.stringify(moving));
      const view_at_kill = await viewOf(stay_url);
      console.log(`# controller scenario: killed controller ${controller} at epoch ${view_at_kill.epoch}${view_at_kill.next === undefined ? ' (the move had already switched)' : ' mid-move'}`);
      // Still mid-move right after the kill: the switch needs the controller (and, if it is an old owner, its drained key).
      await delay(300);
      await cluster.restart(controller);
      await waitForView(stay_url, ['a', 'b', 'c', 'd'], 40_000);
      await waitForView(cluster.get(controller).url, ['a', 'b', 'c', 'd'], 10_000);
      await delay(500);
      await writers.stop();
      await writers.check(cluster, stay_url);
    });
  });

  it('a member frozen with SIGSTOP past its lease refuses with CLUSTER_UNAVAILABLE on waking, then serves again; nothing is lost', { timeout: 60_000 }, async () => {
    await withCluster('frozen', async (cluster) => {
      await startThree(cluster, false);
      const controller = await cluster.controller();
      const ids = [...cluster.members.keys()];
      const frozen = ids.find((id) => id !== controller)!;
      const stay = ids.find((id) => id !== controller && id !== frozen)!;
      const view = await viewOf(cluster.get(stay).url);
      const ring = new HashRing(view.nodes);
      const probes: string[] = [];
      for (let i = 0; probes.length < 50; i++) if (ring.ownerOfKey(`probe${i}`).id === frozen) probes.push(`probe${i}`);
      const writers = await Writers.start(cluster, cluster.get(stay).url);
      await delay(500);
      const direct = await connect(cluster.get(frozen).url, { request_timeout_ms: 20_000 });
      cluster.closers.push(() => direct.close());
      const pid = cluster.get(frozen).process.pid;
      process.kill(pid, 'SIGSTOP');
      const stopped_at = Date.now();
      let woke_at = 0;
      let during: ReturnType<PikvClient['batch']>;
      try {
        // Sent well past its fence deadline (one lease TTL): it takes them when it wakes, after the deadline.
        await delay(LEASE_TTL_MS + 1_000);
        during = direct.batch(probes.map((key) => ({ op: 'put' as const, key, value: 'zombie' })));
        await delay(Math.max(0, LEASE_TTL_MS + 2_000 - (Date.now() - stopped_at)));
      } finally {
        process.kill(pid, 'SIGCONT');
        woke_at = Date.now();
      }
      const taken_late = await during!;
      assert.deepEqual([...new Set(taken_late.map((r) => r.code))], ['CLUSTER_UNAVAILABLE'], 'ops taken after the fence deadline must be refused');
      // Until it has a new session and the view it refuses; then it serves again.
      const seen = new Set<string>();
      await waitFor(async () => {
        const [result] = await direct.batch([{ op: 'put', key: 'after-wake', value: 'ok' }]);
        seen.add(result!.code);
        return result!.code === 'OK' ? true : null;
      }, 15_000, 20);
      assert.deepEqual([...seen].filter((code) => code !== 'OK' && code !== 'CLUSTER_UNAVAILABLE'), [], JSON.stringify([...seen]));
      const served_after_ms = Date.now() - woke_at;
      await waitForView(cluster.get(stay).url, ids, 10_000);
      // Ring-aware writes of every key (the frozen node's too) succeed again.
      await waitFor(async () => {
        const results = await writers.aware.batch(Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: `recover${i}`, value: 'v' })));
        return results.every((r) => r.code === 'OK') ? true : null;
      }, 10_000);
      // The refused probes were never applied.
      const read = await writers.aware.batch(probes.map((key) => ({ op: 'get' as const, key })));
      assert.deepEqual([...new Set(read.map((r) => r.code))], ['NOT_FOUND'], 'a write refused after the fence deadline was applied');
      await delay(300);
      await writers.stop();
      await direct.close();
      await writers.check(cluster, cluster.get(stay).url);
      assert.ok(served_after_ms < 15_000, `served again ${served_after_ms} ms after SIGCONT`);
      assert.match(cluster.get(frozen).process.output(), /lease lost|fence/i);
    });
  });

  // Bug found here (about one run in five under load), now fixed: the restarted d first read the
  // view with its old incarnation still joining; the controller then dropped that incarnation
  // from `next`, and the new process took the drop for a leave and stopped, so the join never
  // finished. A node dropped while only joining now joins again (cluster-node.ts adopt).
  it('a stream link cut mid-move (the joining node killed -9 and restarted on its data dir): the move completes, nothing is lost', { timeout: 60_000 }, async () => {
    await withCluster('stream', async (cluster) => {
      await startThree(cluster, false);
      const stay_url = cluster.get('a').url;
      await fill(stay_url, 30_000);
      const writers = await Writers.start(cluster, stay_url);
      await delay(500);
      await cluster.add('d', true);
      await waitForNext(stay_url);
      // Wait until some old owner has started streaming to d (keys sent), then cut it.
      const streaming = await waitFor(async () => {
        for (const id of ['a', 'b', 'c']) {
          const status = await statusOf(cluster.get(id).url).catch(() => null);
          const stream = status?.migration?.streams.find((s) => s.to === 'd');
          if (stream !== undefined && stream.keys_sent > 0) return { id, ...stream };
        }
        return null;
      }, 10_000, 5).catch(() => null);
      await cluster.kill('d');
      const view_at_kill = await viewOf(stay_url);
      await delay(500);
      await cluster.restart('d');
      await waitForView(stay_url, ['a', 'b', 'c', 'd'], 40_000);
      await delay(500);
      await writers.stop();
      await writers.check(cluster, stay_url);
      // Not an assertion on timing luck, but say where the kill landed.
      console.log(`# stream scenario: killed d ${view_at_kill.next === undefined ? 'after the switch' : streaming === null ? 'mid-move, before a key was counted sent' : `mid-move, ${streaming.keys_sent} keys sent by ${streaming.id}, ${streaming.keys_acked} acked`}`);
    });
  });

  // Bug found here, now fixed: a node killed right after the switch that gave it ranges left every old owner's clean-up
  // of that switch waiting for a heartbeat from it (cleanup.ts waited for every peer of the view), so no live node ever
  // reported clean at that epoch, and the controller held the remove "until a,b,c finish deleting old copies": forever.
  // With etcd the clean-up no longer waits for peers (cluster-node.ts reconcileCleanup, holdCleanup).
  it('remove of a dead node right after a switch: its keys are lost, every other key survives, clients ride through', { timeout: 60_000 }, async () => {
    await withCluster('remove', async (cluster) => {
      await startThree(cluster, false);
      const stay_url = cluster.get('a').url;
      const writers = await Writers.start(cluster, stay_url);
      await delay(500);
      await cluster.add('d', false);
      const before = await waitForView(stay_url, ['a', 'b', 'c', 'd'], 30_000);
      await cluster.kill('d');
      const ring = new HashRing(before.nodes);
      const lost = (key: string): boolean => ring.ownerOfKey(key).id === 'd';
      // Wait until etcd expired d's lease: its member key is gone.
      const etcd = new Etcd3({ hosts: cluster.etcd_url });
      try {
        const member_key = new ClusterKeys('pikv').member('d');
        await waitFor(async () => ((await etcd.get(member_key).string()) === null ? true : null), LEASE_TTL_MS + 5_000, 50);
      } finally {
        etcd.close();
      }
      const removed = await runCli(['cluster', 'remove', 'd', '--url', stay_url, '--wait-ms', '20000'], ENV);
      if (removed.code !== 0) {
        const cleanups = await Promise.all(['a', 'b', 'c'].map(async (id) => {
          const status = await statusOf(cluster.get(id).url).catch(() => null) as (NodeStatus & { cleanup?: unknown; clean_epoch?: number; epoch?: number }) | null;
          return `${id}: epoch ${status?.epoch} clean_epoch ${status?.clean_epoch} cleanup ${JSON.stringify(status?.cleanup)}`;
        }));
        assert.fail(`remove of dead d did not finish: ${removed.stdout}${removed.stderr}\n${cleanups.join('\n')}`);
      }
      const removed_at = Date.now();
      await waitForView(stay_url, ['a', 'b', 'c'], 10_000);
      // Ring-aware writes of surviving keys succeed again within about 5 s.
      const surviving = Array.from({ length: 300 }, (_, i) => `r${i}`).filter((key) => !lost(key));
      await waitFor(async () => {
        const results = await writers.aware.batch(surviving.map((key) => ({ op: 'get' as const, key })));
        return results.every((r) => r.code === 'OK' || r.code === 'NOT_FOUND') ? true : null;
      }, 5_000, 50);
      await waitFor(async () => {
        const results = await writers.aware.batch(Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: `after-remove${i}`, value: 'v' })));
        return results.every((r) => r.code === 'OK') ? true : null;
      }, Math.max(1_000, 5_000 - (Date.now() - removed_at)), 50);
      await delay(500);
      await writers.stop();
      const excluded = writers.writers.reduce((n, w) => n + [...w.acked.keys()].filter(lost).length, 0);
      assert.ok(excluded > 0, 'd owned none of the checked keys');
      await writers.check(cluster, stay_url, lost);
    });
  });
});

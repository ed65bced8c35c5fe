/**
 * Membership in etcd (docs/MEMBERSHIP.md), with real processes: a real etcd and real
 * `pikv serve --etcd` nodes on loopback, ring-aware and plain writers running through every
 * change, and a lost-write checker (helpers/lost-write-checker.ts) at the end. Each test
 * reproduces one of the bugs the gossip membership had (docs/CLUSTER.md) and shows it gone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, connectCluster, Op, Status, type PikvClient } from '../src/index.js';
import { etcdMissing, startEtcd, type EtcdProcess } from './helpers/etcd.js';
import { VersionWriter } from './helpers/lost-write-checker.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { delay, waitFor } from './helpers/raw-socket.js';
import { viewOf, waitForView } from './helpers/cluster-view.js';

const SECRET = 'etcd-test-secret';
const ENV = { PIKV_CLUSTER_SECRET: SECRET };
const skip = etcdMissing() ?? false;

function startEtcdNode(etcd: EtcdProcess, id: string, extra: string[] = []): Promise<ServerProcess> {
  return startServer(['--workers', '2', '--max-memory', '64mb', '--node-id', id, '--etcd', etcd.client_url,
    '--lease-ttl-ms', '1000', '--heartbeat-interval-ms', '100', '--forward-timeout-ms', '2000', '--controller-tick-ms', '50', ...extra], ENV);
}

describe('membership in etcd', { skip, timeout: 240_000 }, () => {
  let etcd: EtcdProcess;
  const nodes = new Map<string, ServerProcess>();
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const node of nodes.values()) await node.stop('SIGKILL');
    await etcd?.stop();
  });

  it('joins, a leave and a forced remove under ring-aware and plain writers lose no acknowledged write', async () => {
    nodes.set('a', await startEtcdNode(etcd, 'a'));
    const a = nodes.get('a')!;
    await waitForView(a.url, ['a']);
    const aware = await connectCluster([a.url]);
    const plain = await connect(a.url);
    let running = true;
    const writers = [new VersionWriter('r', aware), new VersionWriter('p', plain)];
    const runs = writers.map((writer) => writer.run(() => running));
    for (const id of ['b', 'c', 'd']) {
      nodes.set(id, await startEtcdNode(etcd, id));
      await waitForView(a.url, [...nodes.keys()]);
    }
    // A remove of a node whose lease is alive is refused without --force (the controller checks etcd, not one link).
    const refused = await runCli(['cluster', 'remove', 'c', '--url', a.url, '--wait-ms', '1500'], ENV);
    assert.notEqual(refused.code, 0, `remove of a live node without --force: ${refused.stdout}${refused.stderr}`);
    assert.equal((await viewOf(a.url)).nodes.length, 4);
    const leave = await runCli(['cluster', 'leave', '--url', nodes.get('b')!.url, '--wait-ms', '30000'], ENV);
    assert.equal(leave.code, 0, leave.stdout + leave.stderr);
    await nodes.get('b')!.exited;
    nodes.delete('b');
    const forced = await runCli(['cluster', 'remove', 'c', '--force', '--url', a.url, '--wait-ms', '30000'], ENV);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr + '\n--- a:\n' + a.output().split('\n').slice(-30).join('\n'));
    await waitForView(a.url, ['a', 'd']);
    await delay(300);
    running = false;
    await Promise.all(runs);
    const reader = await connectCluster([a.url]);
    for (const writer of writers) {
      const anomalies = await writer.check(reader);
      if (anomalies.length > 0 && process.env['PIKV_TEST_LOGS'] !== undefined) {
        for (const [id, node] of nodes) writeFileSync(`${process.env['PIKV_TEST_LOGS']}-${id}.log`, node.output());
      }
      assert.equal(anomalies.length, 0, `${writer.summary()}: ${anomalies.length} anomalies, e.g. ${JSON.stringify(anomalies.slice(0, 5))}`);
      assert.ok(writer.ops_acked > 500, writer.summary());
    }
    await reader.close();
    await aware.close();
    await plain.close();
    assert.match(a.output(), /remove of c refused: its lease is alive/);
  });

  it('a node cut off from etcd stops serving within its lease, and serves again once etcd is back', async () => {
    const a = nodes.get('a')!;
    const client = await connect(a.url);
    await client.put('before', 'x');
    const paused_at_ms = Date.now();
    process.kill(etcd.pid(), 'SIGSTOP');
    try {
      // Lease 1 s (etcd may grant 2 s): within a few seconds every op answers CLUSTER_UNAVAILABLE.
      const code = await waitFor(async () => {
        const result = await client.batch([{ op: 'put', key: 'during', value: 'y' }]);
        return result[0]!.code === 'CLUSTER_UNAVAILABLE' ? result[0]!.code : null;
      }, 8_000);
      assert.equal(code, 'CLUSTER_UNAVAILABLE');
      assert.ok(Date.now() - paused_at_ms < 8_000);
    } finally {
      process.kill(etcd.pid(), 'SIGCONT');
    }
    await waitFor(async () => ((await client.batch([{ op: 'get', key: 'before' }]))[0]!.code === 'OK' ? true : null), 20_000);
    assert.equal(Buffer.from((await client.get('before'))!).toString(), 'x');
    await client.close();
  });

  it('a restarted node serves nothing until it has read the view from etcd (no ghost writes)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pikv-etcd-restart-'));
    try {
      nodes.set('e', await startEtcdNode(etcd, 'e', ['--data-dir', dir]));
      await waitForView(nodes.get('a')!.url, ['a', 'd', 'e']);
      await nodes.get('e')!.stop('SIGKILL');
      process.kill(etcd.pid(), 'SIGSTOP');
      try {
        // The restarted node cannot reach etcd: it must refuse every data op, not serve its old ring.
        nodes.set('e', await startEtcdNode(etcd, 'e', ['--data-dir', dir]));
        const client: PikvClient = await connect(nodes.get('e')!.url);
        const results = await client.batch(Array.from({ length: 50 }, (_, i) => ({ op: 'put' as const, key: `ghost${i}`, value: 'g' })));
        assert.ok(results.every((r) => r.code === 'CLUSTER_UNAVAILABLE'), JSON.stringify([...new Set(results.map((r) => r.code))]));
        await client.close();
      } finally {
        process.kill(etcd.pid(), 'SIGCONT');
      }
      await waitFor(async () => {
        const client = await connect(nodes.get('e')!.url);
        const [result] = await client.batch([{ op: 'put', key: 'after-restart', value: 'ok' }]).finally(() => client.close());
        return result!.code === 'OK' ? true : null;
      }, 20_000);
      const status = await connect(nodes.get('e')!.url);
      const reply = await status.batchColumns({ op: Uint8Array.of(Op.CLUSTER_STATUS), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
      assert.equal(reply.status[0], Status.OK);
      await status.close();
    } finally {
      await nodes.get('e')?.stop('SIGKILL');
      nodes.delete('e');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

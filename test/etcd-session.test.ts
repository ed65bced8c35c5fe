import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { createEtcdClient } from '../src/cluster/etcd/client.js';
import { Members, type MemberRecord } from '../src/cluster/etcd/members.js';
import { EtcdSession, type LeaseLoss } from '../src/cluster/etcd/session.js';
import { ViewStore } from '../src/cluster/etcd/view-store.js';
import { etcdFixture, etcdMissing, startEtcd, waitUntil } from './helpers/etcd.js';

const quiet = (): void => {};

describe('etcd session: granted TTL', { skip: etcdMissing() ?? false, timeout: 30_000 }, () => {
  it('fences with the TTL etcd granted, not the one requested', async () => {
    // election timeout 1000 ms, heartbeat 100 ms: etcd's minimum lease TTL is 1.5 election timeouts, rounded up: 2 s.
    const etcd = await startEtcd({ heartbeat_interval_ms: 100, election_timeout_ms: 1000 });
    const client = createEtcdClient({ hosts: [etcd.client_url] });
    const logs: string[] = [];
    let session: EtcdSession | null = null;
    try {
      const before_ms = performance.now();
      session = await EtcdSession.start({ client, lease_ttl_ms: 1000, log: (line) => logs.push(line) });
      assert.equal(session.granted_ttl_ms, 2000);
      assert.ok(logs.some((line) => line.includes('etcd granted 2 s')));
      const deadline_ms = session.fenceDeadlineMs();
      assert.ok(deadline_ms > before_ms + 2000 - session.margin_ms - 1 && deadline_ms <= performance.now() + 2000 - session.margin_ms, `deadline ${deadline_ms - before_ms} ms after start`);
      assert.equal(session.margin_ms, 2000 * 0.1 + 100);
      // Keep-alives go at a third of the granted TTL, not the requested one, and keep it live.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.ok(session.isLive());
      assert.ok(session.keepalives_answered >= 2 && session.keepalives_answered <= 5, `${session.keepalives_answered} keep-alives in 2.5 s`);
    } finally {
      await session?.close();
      client.close();
      await etcd.stop();
    }
  });
});

describe('etcd session and members', { skip: etcdMissing() ?? false, timeout: 60_000 }, () => {
  const fixture = etcdFixture();


  it('keeps a 1 s lease alive, and the deadline tracks the last answered send time', async () => {
    const session = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    try {
      assert.equal(session.granted_ttl_ms, 1000);
      const first = session.fenceDeadlineMs();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(session.isLive());
      assert.ok(session.fenceDeadlineMs() > first + 1000, 'the deadline moved forward with keep-alives');
      assert.equal(session.fenceDeadlineMs(), session.last_answered_sent_at_ms + 1000 - session.margin_ms);
      assert.ok(session.last_answered_sent_at_ms <= performance.now());
    } finally {
      await session.close();
    }
  });

  it('after the keep-alive stops, the fence deadline passes before etcd expires the lease and the member key disappears within TTL + slack', async () => {
    const members = new Members({ client: fixture.client, cluster: 'expiry', log: quiet });
    const session = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    const registration = await members.register(session, 'n1', { url: 'ws://127.0.0.1:7001', weight: 1 });
    let lost_at_ms = 0;
    session.on('lost', () => (lost_at_ms = performance.now()));
    try {
      await new Promise((resolve) => setTimeout(resolve, 700)); // a few keep-alives
      assert.deepEqual([...(await members.liveness(['n1', 'n2']))], [['n1', true], ['n2', false]]);
      session.stopKeepAlive();
      const sent_ms = session.last_answered_sent_at_ms;
      const deadline_ms = session.fenceDeadlineMs();
      let gone_at_ms = 0;
      await waitUntil('the member key to expire', async () => {
        const present = (await members.list()).has('n1');
        if (!present) gone_at_ms = performance.now();
        return !present;
      }, 5000, 10);
      assert.ok(lost_at_ms > 0 && lost_at_ms >= deadline_ms, "'lost' fired at the fence deadline");
      assert.ok(!session.isLive());
      assert.ok(deadline_ms < gone_at_ms, `fenced at +${(deadline_ms - sent_ms).toFixed(0)} ms, etcd expired the key at +${(gone_at_ms - sent_ms).toFixed(0)} ms`);
      assert.ok(gone_at_ms - sent_ms >= 1000 - 20, 'etcd never expires before sent + TTL');
      // fixture.etcd's lessor checks expiry every 500 ms; allow that plus scheduling.
      assert.ok(gone_at_ms - sent_ms < 1000 + 1500, `expired at +${(gone_at_ms - sent_ms).toFixed(0)} ms`);
    } finally {
      await registration.close({ remove: false }).catch(() => {});
      await session.close();
    }
  });

  it('a lease revoked behind its back is reported lost, and the session grants a new one and re-registers', async () => {
    const members = new Members({ client: fixture.client, cluster: 'revoked', log: quiet });
    const session = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    const registration = await members.register(session, 'n1', { url: 'ws://127.0.0.1:7001', weight: 2 });
    const losses: LeaseLoss[] = [];
    session.on('lost', (loss: LeaseLoss) => losses.push(loss));
    try {
      const old_lease = session.lease_id!;
      await fixture.client.leaseClient.leaseRevoke({ ID: old_lease });
      await waitUntil('a new lease', () => session.lease_id !== null && session.lease_id !== old_lease, 5000);
      assert.equal(losses[0]?.lease_id, old_lease);
      assert.match(losses[0]!.reason, /TTL 0/);
      await waitUntil('re-registration under the new lease', async () => (await members.list()).get('n1')?.lease_id === session.lease_id, 5000);
      assert.equal(registration.writes, 2);
      assert.equal((await members.list()).get('n1')!.weight, 2);
    } finally {
      await registration.close();
      await session.close();
    }
  });

  it('watches members come and go', async () => {
    const members = new Members({ client: fixture.client, cluster: 'watched', log: quiet });
    const snapshots: string[][] = [];
    const watch = members.watch((live: ReadonlyMap<string, MemberRecord>) => snapshots.push([...live.keys()].sort()));
    const a = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    const b = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    try {
      await members.register(a, 'a', { url: 'ws://127.0.0.1:1', weight: 1 });
      await members.register(b, 'b', { url: 'ws://127.0.0.1:2', weight: 1 });
      await waitUntil('both members', () => snapshots.at(-1)?.join() === 'a,b');
      await b.close(); // revokes: b's key goes at once
      await waitUntil('only a', () => snapshots.at(-1)?.join() === 'a');
    } finally {
      await watch.close();
      await a.close();
      await b.close();
    }
  });

  it('survives an etcd restart mid-session: the session recovers, the member is registered, view watches go on', async () => {
    const members = new Members({ client: fixture.client, cluster: 'restart', log: quiet });
    const views = new ViewStore({ client: fixture.client, cluster: 'restart', secret: 's', log: quiet });
    const session = await EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet });
    const registration = await members.register(session, 'n1', { url: 'ws://127.0.0.1:7001', weight: 1 });
    const created = await views.casView(0, { epoch: 1 });
    assert.ok(created.ok);
    const epochs: number[] = [];
    const watch = views.watchView((stored) => epochs.push(stored.view.epoch));
    try {
      await waitUntil('epoch 1', () => epochs.at(-1) === 1);
      await fixture.etcd.restart('SIGKILL', 1500); // down longer than the TTL: the fence deadline passes
      await waitUntil('a live session again', () => session.isLive(), 10_000);
      await waitUntil('the member key under the live lease', async () => (await members.list()).get('n1')?.lease_id === session.lease_id, 10_000);
      assert.ok(session.leases_granted >= 2, 'the old lease was given up and a new one granted');
      const changed = await views.casView(created.mod_revision, { epoch: 2 });
      assert.ok(changed.ok);
      await waitUntil('epoch 2 through the same watch', () => epochs.at(-1) === 2, 10_000);
      assert.deepEqual(epochs, [1, 2]);
    } finally {
      await watch.close();
      await registration.close().catch(() => {});
      await session.close();
    }
  });
});

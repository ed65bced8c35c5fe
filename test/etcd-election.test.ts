import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { ControllerElection, type Leader } from '../src/cluster/etcd/election.js';
import { EtcdSession } from '../src/cluster/etcd/session.js';
import { etcdFixture, etcdMissing, waitUntil } from './helpers/etcd.js';

const quiet = (): void => {};

describe('controller election', { skip: etcdMissing() ?? false, timeout: 60_000 }, () => {
  const fixture = etcdFixture();


  async function candidates(cluster: string, count: number): Promise<{ sessions: EtcdSession[]; elections: ControllerElection[] }> {
    const sessions = await Promise.all(Array.from({ length: count }, () => EtcdSession.start({ client: fixture.client, lease_ttl_ms: 1000, log: quiet })));
    const elections = sessions.map((session, i) => new ControllerElection({ client: fixture.client, cluster, session, node_id: `n${i}`, recheck_ms: 200 }));
    return { sessions, elections };
  }

  async function stopAll(sessions: EtcdSession[], elections: ControllerElection[]): Promise<void> {
    for (const election of elections) election.close();
    for (const session of sessions) await session.close();
  }

  it('one leader at a time; after its lease is lost another takes over with a greater token, only after the old one fenced itself', async () => {
    const { sessions, elections } = await candidates('takeover', 3);
    let overlap = 0;
    const sampler = setInterval(() => {
      if (elections.filter((e) => e.isLeader()).length > 1) overlap += 1;
    }, 5);
    const observed: (string | null)[] = [];
    const observer = elections[0]!.observe((leader) => observed.push(leader?.node_id ?? null));
    try {
      const campaigns = elections.map((e, i) => e.campaign().then((leader) => ({ i, leader, at_ms: performance.now() })));
      for (const campaign of campaigns) campaign.catch(() => {}); // the losers' campaigns end with 'election closed'
      const first = await Promise.race(campaigns);
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(elections.filter((e) => e.isLeader()).length, 1, 'exactly one leader');
      assert.deepEqual(await elections[1]!.leader(), first.leader);

      // The leader hangs: its keep-alives stop. Someone else must take over, and not before it fenced itself.
      const old = first.i;
      const old_deadline_ms = sessions[old]!.fenceDeadlineMs();
      sessions[old]!.stopKeepAlive();
      const next = await Promise.race(campaigns.filter((_, i) => i !== old));
      assert.notEqual(next.i, old);
      assert.ok(next.leader.revision > first.leader.revision, 'the fencing token grows');
      assert.ok(next.at_ms > old_deadline_ms, `new leader at +${(next.at_ms - old_deadline_ms).toFixed(0)} ms after the old one's fence deadline`);
      assert.ok(!elections[old]!.isLeader());
      await waitUntil('the observer to see the new leader', () => observed.at(-1) === `n${next.i}`);

      // The deposed leader's guard no longer matches: its writes fail in fixture.etcd itself.
      const stale_guard = { key: Buffer.from(elections[0]!.keys.controller), target: 'Create' as const, result: 'Equal' as const, create_revision: first.leader.revision };
      const stale = await fixture.client.kv.txn({ compare: [stale_guard], success: [{ request_put: { key: Buffer.from('/pikv/takeover/probe'), value: Buffer.from('x') } }] });
      assert.equal(stale.succeeded, false);
      const fresh = await fixture.client.kv.txn({ compare: [elections[next.i]!.leaderGuard()], success: [{ request_put: { key: Buffer.from('/pikv/takeover/probe'), value: Buffer.from('y') } }] });
      assert.equal(fresh.succeeded, true);

      // Resigning hands over at once to the last candidate.
      await elections[next.i]!.resign();
      const last = await Promise.race(campaigns.filter((_, i) => i !== old && i !== next.i));
      assert.ok(last.leader.revision > next.leader.revision);
      assert.equal(overlap, 0, 'never two leaders at once');
    } finally {
      clearInterval(sampler);
      await observer.close();
      await stopAll(sessions, elections);
    }
  });

  it('a leader whose session is lost is deposed', async () => {
    const { sessions, elections } = await candidates('deposed', 1);
    const deposed: { leader: Leader; reason: string }[] = [];
    elections[0]!.on('deposed', (event: { leader: Leader; reason: string }) => deposed.push(event));
    try {
      await elections[0]!.campaign();
      assert.ok(elections[0]!.isLeader());
      await fixture.client.leaseClient.leaseRevoke({ ID: sessions[0]!.lease_id! });
      await waitUntil('deposed', () => deposed.length === 1, 5000);
      assert.ok(!elections[0]!.isLeader());
      assert.throws(() => elections[0]!.leaderGuard());
      // It can campaign again under its new lease.
      const again = await elections[0]!.campaign();
      assert.equal(again.lease_id, sessions[0]!.lease_id);
      assert.ok(elections[0]!.isLeader());
    } finally {
      await stopAll(sessions, elections);
    }
  });
});

/**
 * First formation of the etcd cluster by mDNS (issue #12 item 4, issue #9 item 11), across
 * network namespaces on a bridge this test creates (names `pf<pid>-*`, addresses
 * 10.206.<x>.0/24 that exist only inside them). Every board runs `pikv etcd-form` with the same
 * arguments but its name (an identical card); etcd is Debian's etcd-server, started by it.
 *
 * - A rogue board (x1) marked as member with the wrong secret is up first: the others must
 *   ignore its claim (its proof fails), and it never sees a cluster to form.
 * - m1 and m2 alone: each waits and says "saw 2 of 3 members (m1, m2)", in its log and in its
 *   status file; no etcd starts.
 * - m3 comes: all three form one etcd cluster: `etcdctl member list` shows exactly m1, m2, m3,
 *   started, the same through each member; the status files say running with the same list.
 * - m2's driver is stopped and started again: its data dir holds a member, so it restarts it
 *   as it is (never re-forms), and the cluster still has 3 members.
 * - m4, with the right secret and marked member, boots after the cluster formed: it must wait
 *   (the running cluster's list does not name it) and start no etcd.
 * - Then pikv as the image runs it (`card.js serve`), from cards that hold no address (node id,
 *   secret, and etcd_member on m1): the node on m1 finds its own address (advertise auto),
 *   uses its own member and creates the pikv cluster; a pikv-only board p1 finds that etcd by
 *   mDNS (the view's HMAC checked) and joins through etcd; the view settles on both, each with
 *   the URL of the address its board found.
 *
 * Bounded in time; every driver is stopped with SIGTERM (which stops its etcd), then every
 * process still there (drivers and the etcd PIDs they logged) is SIGKILLed by PID, and the
 * namespaces deleted. Skips where `ip netns` or etcd is unavailable.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CLI_PATH } from './helpers/server-process.js';
import { ETCD_BINARY, etcdMissing } from './helpers/etcd.js';
import { netnsUnavailable, NetnsWorld, type NetnsProc } from './helpers/netns-world.js';

const CARD_JS = join(dirname(CLI_PATH), '../../pi-image/card.js');
const TAG = `pf${process.pid % 100000}`;
const SUBNET = `10.206.${process.pid % 250}`;
const CLUSTER = 'formtest';
const SECRET = 'formation-netns-secret';
const HOSTS = { m1: 1, m2: 2, m3: 3, m4: 4, p1: 10, x1: 50 } as const;
type Name = keyof typeof HOSTS;
const world = new NetnsWorld(TAG, SUBNET);
const address = (name: Name): string => world.address(HOSTS[name]);
const nsOf = (name: Name): string => `${TAG}-${name}`;
const data_dirs = new Map<Name, string>();
const etcd_pids = new Set<number>();

function startBoard(name: Name, secret = SECRET): NetnsProc {
  if (!data_dirs.has(name)) data_dirs.set(name, world.tempDir(`pikv-formation-${name}-`));
  const dir = data_dirs.get(name)!;
  const args = [CLI_PATH, 'etcd-form', '--name', name, '--cluster-name', CLUSTER, '--members', '3',
    '--data-dir', join(dir, 'etcd'), '--status-file', join(dir, 'status.json'), '--etcd-binary', ETCD_BINARY,
    '--settle-ms', '1500', '--recheck-ms', '500', '--heartbeat-interval-ms', '50', '--election-timeout-ms', '500'];
  const proc = world.spawn(nsOf(name), name, process.execPath, args, {
    env: { ...process.env, PIKV_CLUSTER_SECRET: secret },
    output: (chunk) => {
      for (const match of chunk.matchAll(/etcd started, pid (\d+)/g)) etcd_pids.add(Number(match[1]));
      return chunk;
    },
  });
  return proc;
}

function status(name: Name): { state: string; reason: string; initial_cluster: string; seen: string[] } {
  return JSON.parse(readFileSync(join(data_dirs.get(name)!, 'status.json'), 'utf8')) as { state: string; reason: string; initial_cluster: string; seen: string[] };
}

/** `etcdctl member list` through one member, run inside that member's namespace. */
function memberList(name: Name): string[] {
  const out = execFileSync('ip', ['netns', 'exec', nsOf(name), 'etcdctl', '--endpoints', `http://${address(name)}:2379`, '--command-timeout', '5s', 'member', 'list'],
    { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 15_000 });
  return out.trim().split('\n').sort();
}

async function stopBoard(proc: NetnsProc): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  await Promise.race([proc.exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
}

const skip = netnsUnavailable(TAG) ?? etcdMissing();

describe('etcd formation by mDNS across network namespaces', { skip: skip ?? false }, () => {
  after(async () => {
    await Promise.all(world.procs.map(stopBoard));
    for (const pid of etcd_pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch { /* already stopped by its driver */ }
    }
    await world.cleanUp();
  });

  it('three identical member boards form one etcd cluster; 2 of 3 wait and say why; a wrong-secret board is ignored; a restart reuses its member; a late fourth board waits', { timeout: 150_000 }, async () => {
    world.addBridge();
    for (const name of Object.keys(HOSTS) as Name[]) world.addNamespace(nsOf(name), HOSTS[name]);

    const rogue = startBoard('x1', 'not-the-cluster-secret');
    const m1 = startBoard('m1');
    const m2 = startBoard('m2');
    for (const board of [m1, m2]) await board.waitForText(/waiting for etcd formation: saw 2 of 3 members \(m1, m2\)/, 30_000);
    await m1.waitForText(/formation: ignored "pikv-etcd formtest x1" from [\d.]+: its proof does not verify with the cluster secret/, 15_000);
    assert.equal(status('m2').state, 'waiting');
    assert.equal(status('m2').reason, 'waiting for etcd formation: saw 2 of 3 members (m1, m2)', m2.text);
    assert.doesNotMatch(m1.text + m2.text, /etcd started/, 'no etcd with 2 of 3');

    const m3 = startBoard('m3');
    const boards = [m1, m2, m3];
    const expected_list = `m1=http://${address('m1')}:2380,m2=http://${address('m2')}:2380,m3=http://${address('m3')}:2380`;
    for (const board of boards) {
      const forming = await board.waitForText(/--initial-cluster (\S+) --initial-cluster-token (\S+)/, 30_000);
      assert.equal(forming[1], expected_list, board.name);
      await board.waitForText(/etcd started, pid \d+/, 10_000);
    }
    const tokens = new Set(boards.map((board) => /--initial-cluster-token (\S+)/.exec(board.text)![1]));
    assert.equal(tokens.size, 1, 'one token everywhere');

    // One etcd cluster of exactly m1, m2, m3, all started; each member shows the same list.
    const started = (name: Name): Promise<string[]> => m1.waitFor(`3 started members through ${name}`, () => {
      try {
        const lines = memberList(name);
        // ID, status, name, peer URL, client URL (empty until the member has published it), learner
        return lines.length === 3 && lines.every((line) => line.split(', ')[1] === 'started' && line.split(', ')[4] !== '') ? lines : null;
      } catch {
        return null;
      }
    }, 30_000);
    const lists = await Promise.all((['m1', 'm2', 'm3'] as const).map(started));
    for (const lines of lists) assert.deepEqual(lines, lists[0]);
    assert.deepEqual(lists[0]!.map((line) => line.split(', ')[2]).sort(), ['m1', 'm2', 'm3']);
    for (const name of ['m1', 'm2', 'm3'] as const) {
      const state = await m1.waitFor(`${name}'s status file saying running`, () => (status(name).state === 'running' ? status(name) : null), 10_000);
      assert.equal(state.initial_cluster, expected_list, name);
    }
    assert.doesNotMatch(rogue.text, /etcd started/);
    assert.match(status('x1').reason, /saw 1 of 3 members \(x1\)/, 'the rogue sees nobody it can verify');

    // A restart: the data dir holds a member, so it is started as it is.
    await stopBoard(m2);
    assert.ok(m2.child.exitCode !== null || m2.child.signalCode !== null, 'm2 stopped on SIGTERM');
    const m2_again = startBoard('m2');
    await m2_again.waitForText(/already holds an etcd member: restarting it as it is \(never re-formed\)/, 15_000);
    await m2_again.waitForText(/etcd started, pid \d+/, 10_000);
    assert.equal((await started('m2')).length, 3);

    // A fourth board marked member, with the right secret, after formation: it waits.
    const m4 = startBoard('m4');
    const waiting = await m4.waitForText(/an etcd cluster of "formtest" already runs \(([^)]*)\) without this board; not forming a second/, 30_000);
    assert.equal(waiting[1], expected_list);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.doesNotMatch(m4.text, /etcd started/);
    assert.equal(status('m4').state, 'waiting');
    assert.equal(memberList('m1').length, 3, 'still exactly 3 members');

    // pikv on the formed etcd, started as the image starts it (card.js serve) from identical
    // cards that hold no address: a member board's node uses its own member at the address it
    // finds itself (advertise auto); a pikv-only board finds that etcd by mDNS.
    const startNode = (name: Name, member: boolean): NetnsProc => {
      const card_file = join(world.tempDir(`pikv-card-${name}-`), 'pikv.json');
      writeFileSync(card_file, JSON.stringify({
        node_id: `n-${name}`, cluster_secret: SECRET, cluster_name: CLUSTER, ...(member ? { etcd_member: true } : {}),
        data_dir: '', workers: 1, max_memory: '32mb', serve: { lease_ttl_ms: 2000, controller_tick_ms: 50, resp_port: 'off' },
      }));
      return world.spawn(nsOf(name), `pikv ${name}`, process.execPath, [CARD_JS, 'serve', card_file]);
    };
    const n1 = startNode('m1', true);
    await n1.waitForText(/view epoch 1 \(etcd\): nodes n-m1\b/, 30_000);
    assert.match(n1.text, new RegExp(`advertise auto: ${address('m1').replace(/\./g, '\\.')} \\(eth0, only address\\)`));
    const p1 = startNode('p1', false);
    const using = await p1.waitForText(/discovery: using etcd (\S+) /, 45_000);
    assert.equal(using[1], `http://${address('m1')}:2379`);
    const settled = /view epoch \d+ \(etcd\): nodes (n-m1,n-p1|n-p1,n-m1)(?!; moving)/;
    for (const node of [n1, p1]) await node.waitForText(settled, 60_000);
    assert.match(p1.text, new RegExp(`advertise auto: ${address('p1').replace(/\./g, '\\.')} `));
    const status_out = execFileSync('ip', ['netns', 'exec', nsOf('p1'), process.execPath, CLI_PATH, 'cluster', 'status', '--json', '--url', `ws://${address('p1')}:7070`],
      { env: { ...process.env, PIKV_CLUSTER_SECRET: SECRET }, encoding: 'utf8', timeout: 20_000 });
    const view_nodes = (JSON.parse(status_out) as { view: { nodes: { id: string; url: string }[] } }).view.nodes;
    assert.deepEqual(view_nodes.map((n) => `${n.id} ${n.url}`).sort(), [`n-m1 ws://${address('m1')}:7070`, `n-p1 ws://${address('p1')}:7070`], 'each board told the cluster the address it found');
  });
});

if (skip !== null) console.log(`# formation-netns: skipped: ${skip}`);

/**
 * A 3-node cluster on loopback: forwarding, the ring-aware client, stale-ring retries, auth
 * refusals, a join and a leave under writes, and a node killed with SIGKILL; then old copies
 * deleted after a move, and no deleted key coming back when its range moves back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, connectCluster, PikvClusterClient, type PikvClient } from '../src/index.js';
import { HashRing } from '../src/routing/ring.js';
import { Op, Status } from '../src/protocol/constants.js';
import { ErrorCode, PikvError } from '../src/protocol/errors.js';
import { delay } from './helpers/raw-socket.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { clusterOp, ringOf, SECRET, startNode, waitForClean, waitForMembers } from './helpers/cluster.js';

const KEYS = 2000;

describe('a 3-node cluster', () => {
  const nodes: ServerProcess[] = [];
  let a: ServerProcess, b: ServerProcess, c: ServerProcess;

  before(async () => {
    a = await startNode('a');
    [b, c] = await Promise.all([startNode('b', [a.url]), startNode('c', [a.url])]);
    nodes.push(a, b, c);
    await waitForMembers([a.url, b.url, c.url], ['a', 'b', 'c']);
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop('SIGKILL')));
    // PIKV_TEST_LOGS=1 prints every node's output (a crashed node shows its error here).
    if (process.env['PIKV_TEST_LOGS'] === '1') for (const node of nodes) console.log(`---- node ${node.url} ----\n${node.output()}`);
  });

  it('forwards ops for keys another node owns, and answers in request order', async () => {
    const client = await connect(a.url);
    const puts = Array.from({ length: KEYS }, (_, i) => ({ op: 'put' as const, key: `k${i}`, value: `v${i}` }));
    assert.ok((await client.batch(puts)).every((r) => r.code === 'OK'));
    await client.close();
    for (const node of [b, c]) {
      const reader = await connect(node.url);
      const results = await reader.batch(Array.from({ length: KEYS }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
      results.forEach((r, i) => assert.equal(Buffer.from(r.value!).toString(), `v${i}`));
      await reader.close();
    }
    const statuses = await Promise.all([a, b, c].map((node) => clusterOp(node.url, Op.CLUSTER_STATUS) as Promise<{ keys: number }>));
    assert.equal(statuses.reduce((sum, s) => sum + s.keys, 0), KEYS, 'each key is stored once');
    for (const status of statuses) assert.ok(status.keys > KEYS / 6, `keys spread: ${statuses.map((s) => s.keys)}`);
  });

  it('answers STALE_RING to a ring-aware request for a key the node does not own', async () => {
    const view = await ringOf(a.url);
    const ring = new HashRing(view.nodes);
    const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => ring.ownerOfKey(k).id !== 'a')!;
    const client = await connect(a.url);
    const reply = await client.batchColumns({ op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(key.length), value_lengths: new Uint32Array(1), keys: Buffer.from(key), values: new Uint8Array(0), ring_epoch: view.epoch });
    assert.equal(reply.status[0], Status.STALE_RING);
    await client.close();
  });

  it('sends each op straight to its owner with connectCluster', async () => {
    const kv = await connectCluster([b.url]);
    const results = await kv.batch(Array.from({ length: KEYS }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
    results.forEach((r, i) => assert.equal(Buffer.from(r.value!).toString(), `v${i}`));
    await kv.put('direct', 'yes');
    assert.equal(Buffer.from((await kv.get('direct'))!).toString(), 'yes');
    assert.equal(await kv.delete('direct'), true);
    assert.equal(await kv.get('direct'), undefined);
    const before_forwarded = await Promise.all([a, b, c].map((n) => clusterOp(n.url, Op.CLUSTER_STATUS) as Promise<{ ops_forwarded: number }>));
    await kv.batch(Array.from({ length: 500 }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
    const after_forwarded = await Promise.all([a, b, c].map((n) => clusterOp(n.url, Op.CLUSTER_STATUS) as Promise<{ ops_forwarded: number }>));
    after_forwarded.forEach((s, i) => assert.equal(s.ops_forwarded, before_forwarded[i]!.ops_forwarded, 'no extra hop'));
    await kv.close();
  });

  it('refreshes a stale ring and retries only the refused ops', async () => {
    const view = await ringOf(a.url);
    const only_a = view.nodes.filter((n) => n.id === 'a');
    const kv = new PikvClusterClient([a.url], { epoch: 1, nodes: only_a }, {});
    const results = await kv.batch(Array.from({ length: 300 }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
    results.forEach((r, i) => assert.equal(Buffer.from(r.value!).toString(), `v${i}`));
    assert.equal(kv.epoch, view.epoch);
    await kv.close();
  });

  it('refuses peer connections and admin ops without the right secret, and logs them', async () => {
    // A wrong secret: the node's proof does not check out, so the client drops it unread.
    await assert.rejects(connect(a.url, { peer: { secret: 'wrong', node_id: 'intruder' } }), (error: PikvError) => error.code === ErrorCode.PEER_AUTH_FAILED);
    const plain = await connect(a.url);
    const reply = await plain.batchColumns({ op: Uint8Array.of(Op.CLUSTER_ADMIN), key_lengths: Uint32Array.of(1), value_lengths: new Uint32Array(1), keys: Uint8Array.of(0xa0), values: new Uint8Array(0) });
    assert.equal(reply.status[0], Status.AUTH_FAILED);
    await plain.close();
    const cli = await runCli(['cluster', 'remove', 'b', '--url', a.url], { PIKV_CLUSTER_SECRET: 'wrong' });
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /PEER_AUTH_FAILED/);
    assert.match(a.output(), /peer "intruder" from .* closed before proving the cluster secret \(PEER_AUTH_FAILED\)/);
    assert.match(a.output(), /peer "admin" from .* closed before proving the cluster secret \(PEER_AUTH_FAILED\)/);
    assert.equal((await ringOf(a.url)).nodes.length, 3);
  });

  it('moves exactly the right keys on a join, a leave and a remove of a live node while writes continue', async () => {
    const kv = await connectCluster([a.url]);
    // The first test writes k0..k1999; write them again so this test also runs alone (--test-name-pattern).
    assert.ok((await kv.batch(Array.from({ length: KEYS }, (_, i) => ({ op: 'put' as const, key: `k${i}`, value: `v${i}` })))).every((r) => r.code === 'OK'));
    const latest = new Map<string, string>();
    /** Keys whose last write failed (e.g. NODE_DOWN): it may or may not have been applied. */
    const uncertain = new Set<string>();
    let writing = true;
    let round = 0;
    const writer = (async () => {
      while (writing) {
        round++;
        const ops = Array.from({ length: 200 }, (_, i) => ({ op: 'put' as const, key: `w${(round * 37 + i) % 1500}`, value: `r${round}` }));
        const results = await kv.batch(ops);
        results.forEach((r, i) => {
          if (r.code === 'OK') {
            latest.set(ops[i]!.key, ops[i]!.value);
            uncertain.delete(ops[i]!.key);
          } else {
            uncertain.add(ops[i]!.key);
          }
        });
        await delay(5);
      }
    })();
    // A plain client on one node, next to the ring-aware one: the node forwards for it, and
    // sends again what an owner refuses with STALE_RING while the views converge.
    const plain = await connect(a.url);
    const plain_codes = new Map<string, number>();
    const plain_latest = new Map<string, string>();
    const plain_writer = (async () => {
      let plain_round = 0;
      while (writing) {
        plain_round++;
        const ops = Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: `p${(plain_round * 13 + i) % 700}`, value: `q${plain_round}` }));
        const results = await plain.batch(ops);
        results.forEach((r, i) => {
          plain_codes.set(r.code, (plain_codes.get(r.code) ?? 0) + 1);
          if (r.code === 'OK') plain_latest.set(ops[i]!.key, ops[i]!.value);
          else plain_latest.delete(ops[i]!.key);
        });
        await delay(5);
      }
    })();
    const d = await startNode('d', [c.url]);
    nodes.push(d);
    await waitForMembers([a.url, b.url, c.url, d.url], ['a', 'b', 'c', 'd']);
    const leave = await runCli(['cluster', 'leave', '--url', b.url, '--wait-ms', '30000'], { PIKV_CLUSTER_SECRET: SECRET });
    assert.equal(leave.code, 0, leave.stderr);
    await waitForMembers([a.url, c.url, d.url], ['a', 'c', 'd']);
    assert.equal(await b.exited, 0, 'the node that left stops by itself');
    const received = (await clusterOp(d.url, Op.CLUSTER_STATUS)) as { keys: number };
    assert.ok(received.keys > 0, 'the new node received keys');
    // `remove` is for dead boards; a node that is up is handed off as a leave, losing nothing.
    await waitForClean([a.url, c.url, d.url]);
    const remove = await runCli(['cluster', 'remove', 'd', '--url', a.url, '--wait-ms', '30000'], { PIKV_CLUSTER_SECRET: SECRET });
    assert.equal(remove.code, 0, remove.stderr);
    await waitForMembers([a.url, c.url], ['a', 'c']);
    assert.equal(await d.exited, 0, 'the removed live node handed off and stopped');
    writing = false;
    await writer;
    await plain_writer;
    assert.equal(plain_codes.get('STALE_RING') ?? 0, 0, `plain client results: ${JSON.stringify([...plain_codes])}`);
    const plain_keys = [...plain_latest.keys()];
    const plain_reads = await plain.batch(plain_keys.map((key) => ({ op: 'get' as const, key })));
    plain_keys.forEach((key, i) => assert.equal(Buffer.from(plain_reads[i]!.value ?? []).toString(), plain_latest.get(key), key));
    await plain.close();
    assert.ok(round > 10, `writes continued (${round} rounds)`);
    const reader = await connectCluster([a.url]);
    const keys = [...latest.keys()].filter((key) => !uncertain.has(key));
    assert.ok(uncertain.size < 50, `few writes failed during the moves (${uncertain.size})`);
    const results = await reader.batch(keys.map((key) => ({ op: 'get' as const, key })));
    const wrong = keys.filter((key, i) => results[i]!.code !== 'OK' || Buffer.from(results[i]!.value!).toString() !== latest.get(key));
    assert.deepEqual(wrong, [], 'every acknowledged write reads back with its latest value');
    const old = await reader.batch(Array.from({ length: KEYS }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
    old.forEach((r, i) => assert.equal(Buffer.from(r.value!).toString(), `v${i}`));
    await Promise.all([kv.close(), reader.close()]);
  });

  it('fails ops for a killed node fast with NODE_DOWN and shows it down', async () => {
    const victim = nodes.find((n) => n.url === c.url)!;
    const view = await ringOf(a.url);
    const ring = new HashRing(view.nodes);
    await victim.stop('SIGKILL');
    const client: PikvClient = await connect(a.url);
    await delay(500);
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const started_ms = Date.now();
    const results = await client.batch(keys.map((key) => ({ op: 'get' as const, key })));
    assert.ok(Date.now() - started_ms < 1_000, 'no hang');
    keys.forEach((key, i) => assert.equal(results[i]!.code, ring.ownerOfKey(key).id === 'c' ? 'NODE_DOWN' : 'OK', key));
    await client.close();
    const status = await runCli(['cluster', 'status', '--url', a.url]);
    assert.match(status.stdout, /^c\s+\S+\s+down/m);
  });
});

describe('old copies after a move', () => {
  const nodes: ServerProcess[] = [];

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop('SIGKILL')));
  });

  it('are deleted, so a range moving back brings back no deleted key', async () => {
    const p = await startNode('p');
    nodes.push(p);
    nodes.push(...(await Promise.all([startNode('q', [p.url]), startNode('r', [p.url])])));
    const [, q, r] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    await waitForMembers([p.url, q.url, r.url], ['p', 'q', 'r']);
    const count = 3000;
    const kv = await connectCluster([p.url]);
    const expected = new Map(Array.from({ length: count }, (_, i) => [`m${i}`, `v${i}`]));
    assert.ok((await kv.batch([...expected].map(([key, value]) => ({ op: 'put' as const, key, value })))).every((x) => x.code === 'OK'));
    const before_join = await waitForClean([p.url, q.url, r.url]);

    const s = await startNode('s', [q.url]);
    nodes.push(s);
    const view = await waitForMembers([p.url, q.url, r.url, s.url], ['p', 'q', 'r', 's']);
    // At once, while the old owners may still be cleaning: delete a third of the moved keys, update a third.
    const ring = new HashRing(view.nodes);
    const moved = [...expected.keys()].filter((key) => ring.ownerOfKey(key).id === 's');
    assert.ok(moved.length > count / 8, `keys moved to s (${moved.length})`);
    const deleted = moved.filter((_, i) => i % 3 === 0);
    const updated = moved.filter((_, i) => i % 3 === 1);
    const results = await kv.batch([...deleted.map((key) => ({ op: 'delete' as const, key })), ...updated.map((key) => ({ op: 'put' as const, key, value: `u-${key}` }))]);
    assert.ok(results.every((x) => x.code === 'OK'), JSON.stringify(results.find((x) => x.code !== 'OK')));
    for (const key of deleted) expected.delete(key);
    for (const key of updated) expected.set(key, `u-${key}`);

    const after_join = await waitForClean([p.url, q.url, r.url, s.url]);
    assert.equal(after_join.reduce((sum, x) => sum + x.keys, 0), expected.size, `each key is held once: ${after_join.map((x) => x.keys)}`);
    after_join.slice(0, 3).forEach((x, i) => assert.ok(x.keys < before_join[i]!.keys, 'the old owners dropped their copies'));

    const leave = await runCli(['cluster', 'leave', '--url', s.url, '--wait-ms', '20000'], { PIKV_CLUSTER_SECRET: SECRET });
    assert.equal(leave.code, 0, leave.stderr);
    await waitForMembers([p.url, q.url, r.url], ['p', 'q', 'r']);
    assert.equal(await s.exited, 0);
    await kv.close();
    const reader = await connectCluster([p.url]);
    const reads = await reader.batch(Array.from({ length: count }, (_, i) => ({ op: 'get' as const, key: `m${i}` })));
    const wrong = reads.map((x, i) => [`m${i}`, x] as const).filter(([key, x]) => {
      const want = expected.get(key);
      return want === undefined ? x.code !== 'NOT_FOUND' : x.code !== 'OK' || Buffer.from(x.value!).toString() !== want;
    });
    assert.deepEqual(wrong.map(([key, x]) => `${key}:${x.code}`), [], 'deleted keys stay deleted, updated keys keep their last value');
    const final = await waitForClean([p.url, q.url, r.url]);
    assert.equal(final.reduce((sum, x) => sum + x.keys, 0), expected.size);
    await reader.close();
  });
});

describe('a node with a client token', () => {
  it('refuses clients without the token', async () => {
    const node = await startServer(['--workers', '1'], { PIKV_CLIENT_TOKEN: 'tok' });
    try {
      await assert.rejects(connect(node.url), (error: PikvError) => error.code === ErrorCode.AUTH_FAILED);
      await assert.rejects(connect(node.url, { token: 'nope' }), (error: PikvError) => error.code === ErrorCode.AUTH_FAILED);
      const client = await connect(node.url, { token: 'tok' });
      await client.put('x', '1');
      await client.close();
    } finally {
      await node.stop();
    }
  });
});

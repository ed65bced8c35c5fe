/**
 * Listing, counting and clearing keys over RESP: SCAN (redis-cli --scan, ioredis, redis-py),
 * KEYS, DBSIZE and FLUSHALL, on one node and in a three-node cluster with two copies of every
 * key, where DBSIZE and SCAN must count every key once. SCAN must not miss a key that is present
 * for the whole scan even when the table grows in the middle of it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { connect, connectCluster } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { findRedisCli, findRedisPython, runTool } from './helpers/resp-socket.js';
import { clusters, startThree, withCluster } from './helpers/etcd-cluster.js';
import { etcdMissing } from './helpers/etcd.js';

const REDIS_CLI = findRedisCli();
const PYTHON = findRedisPython();
const NO_REDIS_CLI = REDIS_CLI === null ? 'redis-cli is not installed (Debian: apt-get install redis-tools)' : false;
const NO_PYTHON = PYTHON === null ? 'redis-py is not installed (Debian: apt-get install python3-redis)' : false;

async function cliLines(port: number, args: string[]): Promise<string[]> {
  const result = await runTool(REDIS_CLI!, ['-p', String(port), ...args]);
  assert.equal(result.stderr, '', `redis-cli ${args.join(' ')}`);
  return result.stdout.split('\n').filter((line) => line !== '');
}

function redisAt(port: number): Redis {
  return new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
}

async function indexSlots(url: string): Promise<number> {
  const kv = await connect(url);
  try {
    const stats = await kv.stats();
    return (stats['per_worker'] as { index_slots: number }[]).reduce((sum, worker) => sum + worker.index_slots, 0);
  } finally {
    await kv.close();
  }
}

describe('SCAN, KEYS, DBSIZE and FLUSHALL on one node', { timeout: 120_000 }, () => {
  let server: ServerProcess | null = null;
  after(async () => {
    await server?.stop();
  });

  it('lists every key once, filters by MATCH and TYPE, and misses no key when the table grows mid-scan', async () => {
    server = await startServer(['--workers', '1', '--resp-port', '0', '--allow-flush']);
    const port = server.resp_port!;
    const redis = redisAt(port);
    try {
      await redis.connect();
      const KEPT = 1000;
      let pipeline = redis.pipeline();
      for (let i = 0; i < KEPT; i++) pipeline.set(`g:${i}`, 'v');
      await pipeline.exec();
      assert.equal(await redis.dbsize(), KEPT);

      if (REDIS_CLI !== null) {
        const listed = await cliLines(port, ['--scan']);
        assert.equal(listed.length, KEPT, 'redis-cli --scan lists as many keys as there are');
        assert.equal(new Set(listed).size, KEPT, 'each once');
        const matched = await cliLines(port, ['--scan', '--pattern', 'g:1?']);
        assert.deepEqual(matched.sort(), Array.from({ length: 10 }, (_, i) => `g:1${i}`).sort());
      }
      assert.deepEqual((await redis.keys('g:99?')).sort(), Array.from({ length: 10 }, (_, i) => `g:99${i}`).sort());
      assert.deepEqual(await redis.call('scan', '0', 'TYPE', 'hash', 'COUNT', '5000'), ['0', []], 'every pikv key is a string');

      // Start a scan, grow the table many times over, then finish the scan.
      const seen = new Set<string>();
      let cursor = '0';
      for (let page = 0; page < 5; page++) {
        const [next, keys] = await redis.scan(cursor, 'COUNT', 20);
        for (const key of keys) seen.add(key);
        cursor = next;
      }
      assert.notEqual(cursor, '0', 'the scan is still under way');
      const slots_before = await indexSlots(server.url);
      for (let batch = 0; batch < 6; batch++) {
        pipeline = redis.pipeline();
        for (let i = 0; i < 10_000; i++) pipeline.set(`fill:${batch}:${i}`, 'x');
        await pipeline.exec();
      }
      const slots_after = await indexSlots(server.url);
      assert.ok(slots_after >= 8 * slots_before, `the table grew mid-scan: ${slots_before} -> ${slots_after} slots`);
      let pages = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', 'g:*', 'COUNT', 500);
        for (const key of keys) {
          assert.match(key, /^g:/, 'MATCH filters');
          seen.add(key);
        }
        cursor = next;
        pages++;
        assert.ok(pages < 10_000, 'the scan ends');
      } while (cursor !== '0');
      const missed = Array.from({ length: KEPT }, (_, i) => `g:${i}`).filter((key) => !seen.has(key));
      assert.deepEqual(missed, [], 'no key present for the whole scan was missed');

      assert.equal(await redis.dbsize(), KEPT + 60_000);
      assert.equal(await redis.flushall(), 'OK');
      assert.equal(await redis.dbsize(), 0);
      assert.deepEqual(await redis.scan('0', 'COUNT', 100), ['0', []]);
    } finally {
      redis.disconnect();
    }
  });

  it('redis-py scan_iter and keys', { skip: NO_PYTHON }, async () => {
    const port = server!.resp_port!;
    const script = `
import sys, redis
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), socket_timeout=10)
assert r.flushall() is True
for i in range(500):
    r.set('py:%d' % i, i)
keys = list(r.scan_iter(match='py:*', count=50))
assert len(keys) == 500 and len(set(keys)) == 500, len(keys)
assert sorted(r.keys('py:4?')) == sorted([b'py:4%d' % i for i in range(10)])
assert r.dbsize() == 500
assert r.flushdb() is True and r.dbsize() == 0
print('redis-py ok')
`;
    const result = await runTool(PYTHON!, ['-c', script, String(port)]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /redis-py ok/);
  });
});

describe('SCAN, DBSIZE and FLUSHALL in a cluster with two copies of every key', { timeout: 180_000 }, () => {
  after(async () => {
    for (const cluster of clusters) await cluster.stop();
  });

  it('count and list every key once on any node, and FLUSHALL empties every copy', { skip: etcdMissing() ?? NO_REDIS_CLI }, async () => {
    await withCluster('resp-keyspace', async (cluster) => {
      await startThree(cluster, false);
      const urls = cluster.urls();
      const ports = ['a', 'b', 'c'].map((id) => cluster.get(id).process.resp_port!);
      const kv = await connectCluster([urls[0]!]);
      const redis = redisAt(ports[1]!);
      try {
        const KEYS = 300;
        for (let i = 0; i < KEYS; i++) {
          for (let attempt = 0; ; attempt++) {
            const [result] = await kv.batch([{ op: 'put', key: `k:${i}`, value: 'v' }]);
            if (result!.code === 'OK') break;
            if (attempt > 50) throw new Error(`put k:${i}: ${result!.code}`);
            await sleep(100);
          }
        }
        // Conditional writes through RESP on another node: forwarded to each key's primary and replicated.
        await redis.connect();
        const NX_KEYS = 100;
        for (let i = 0; i < NX_KEYS; i++) assert.equal(await redis.setnx(`nx:${i}`, 'first'), 1);
        for (let i = 0; i < NX_KEYS; i++) assert.equal(await redis.setnx(`nx:${i}`, 'second'), 0);
        const total = KEYS + NX_KEYS;
        // The ring-aware cluster client sends the same ops straight to each key's primary.
        assert.equal(await kv.putIfAbsent('nx:0', 'third'), false);
        assert.equal(await kv.putIfAbsent('ws:new', 'x'), true);
        assert.equal(Buffer.from((await kv.getAndDelete('ws:new'))!).toString(), 'x');
        assert.equal(await kv.getAndDelete('ws:new'), undefined);
        assert.equal(Buffer.from((await kv.get('nx:0'))!).toString(), 'first');

        const copies = async (): Promise<number> => {
          let sum = 0;
          for (const url of urls) {
            const node = await connect(url);
            try {
              sum += (await node.stats())['keys'] as number;
            } finally {
              await node.close();
            }
          }
          return sum;
        };
        assert.equal(await copies(), 2 * total, 'two copies of every key (SETNX writes replicated too), so a naive sum would count each twice');
        for (const port of ports) {
          const node = redisAt(port);
          try {
            await node.connect();
            assert.equal(await node.dbsize(), total, `DBSIZE on RESP port ${port} counts every key once`);
          } finally {
            node.disconnect();
          }
        }
        const listed = await cliLines(ports[2]!, ['--scan', '--pattern', '*']);
        assert.equal(listed.length, total, 'redis-cli --scan on one node lists the cluster, each key once');
        const expected = new Set([...Array.from({ length: KEYS }, (_, i) => `k:${i}`), ...Array.from({ length: NX_KEYS }, (_, i) => `nx:${i}`)]);
        assert.deepEqual(new Set(listed), expected);

        assert.equal(await redis.flushall(), 'OK');
        assert.equal(await redis.dbsize(), 0);
        assert.equal(await copies(), 0, 'FLUSHALL deleted every copy');
        assert.equal(await kv.get('k:1'), undefined);
      } finally {
        redis.disconnect();
        await kv.close();
      }
    }, ['--replicas', '2', '--resp-port', '0', '--allow-flush']);
  });
});

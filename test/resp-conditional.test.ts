/**
 * Conditional and read-and-write commands (SET NX/XX/GET, SETNX, GETSET, GETDEL, GETEX) through
 * real clients against a real `pikv serve`: redis-cli (arguments and -x from stdin), ioredis,
 * redis-py, pikv's own client (putIfAbsent, ...), atomicity under concurrent SETNX, and a
 * conditional write that survives a restart with --data-dir (its log record must not be
 * cancelled as a failed put).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connect, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { findRedisCli, findRedisPython, runTool } from './helpers/resp-socket.js';

const REDIS_CLI = findRedisCli();
const PYTHON = findRedisPython();
const NO_REDIS_CLI = REDIS_CLI === null ? 'redis-cli is not installed (Debian: apt-get install redis-tools)' : false;
const NO_PYTHON = PYTHON === null ? 'redis-py is not installed (Debian: apt-get install python3-redis)' : false;

describe('RESP conditional and read-and-write commands', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let port: number;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '2', '--resp-port', '0']);
    port = server.resp_port!;
    kv = await connect(server.url);
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0);
  });

  const cli = async (args: string[], input = ''): Promise<string> => {
    const result = await runTool(REDIS_CLI!, ['-p', String(port), ...args], input);
    assert.equal(result.stderr, '', `redis-cli ${args.join(' ')}`);
    return result.stdout.trimEnd();
  };

  it('redis-cli: SET NX/XX/GET, SETNX, GETSET, GETDEL, GETEX', { skip: NO_REDIS_CLI }, async () => {
    assert.equal(await cli(['set', 'c:a', '1', 'NX']), 'OK');
    assert.equal(await cli(['set', 'c:a', '2', 'NX']), '', 'NX on an existing key: nil');
    assert.equal(await cli(['get', 'c:a']), '1', 'and nothing written');
    assert.equal(await cli(['set', 'c:b', '1', 'XX']), '', 'XX on an absent key: nil');
    assert.equal(await cli(['exists', 'c:b']), '0', 'and nothing written');
    assert.equal(await cli(['set', 'c:a', '3', 'XX', 'GET']), '1', 'XX GET: the old value');
    assert.equal(await cli(['get', 'c:a']), '3');
    assert.equal(await cli(['set', 'c:a', '4', 'NX', 'GET']), '3', 'NX GET on an existing key: its value, nothing written');
    assert.equal(await cli(['get', 'c:a']), '3');
    assert.equal(await cli(['set', 'c:n', '5', 'NX', 'GET']), '', 'NX GET on an absent key: nil, written');
    assert.equal(await cli(['get', 'c:n']), '5');
    assert.equal(await cli(['set', 'c:a', '6', 'GET', 'EX', '100']), '3');
    assert.equal(await cli(['ttl', 'c:a']), '100');
    assert.equal(await cli(['set', 'c:a', '7', 'XX', 'KEEPTTL']), 'OK');
    assert.equal(await cli(['ttl', 'c:a']), '100', 'KEEPTTL with XX keeps the expiry');
    assert.match(await cli(['set', 'c:a', '8', 'NX', 'XX']), /^ERR syntax error/);
    assert.equal(await cli(['setnx', 'c:a', 'x']), '0');
    assert.equal(await cli(['setnx', 'c:s', 'x']), '1');
    assert.equal(await cli(['getset', 'c:s', 'y']), 'x');
    assert.equal(await cli(['getset', 'c:gs', 'y']), '');
    assert.equal(await cli(['getdel', 'c:s']), 'y');
    assert.equal(await cli(['getdel', 'c:s']), '', 'GETDEL deleted the key');
    assert.equal(await cli(['exists', 'c:s']), '0');
    assert.equal(await cli(['getex', 'c:a', 'PERSIST']), '7');
    assert.equal(await cli(['ttl', 'c:a']), '-1', 'GETEX PERSIST removed the expiry');
    assert.equal(await cli(['getex', 'c:a', 'PX', '50000']), '7');
    const pttl = Number(await cli(['pttl', 'c:a']));
    assert.ok(pttl > 40_000 && pttl <= 50_000, `PTTL ${pttl}`);
    assert.equal(await cli(['getex', 'c:a']), '7', 'GETEX without options is GET');
    assert.equal(await cli(['getex', 'c:a', 'EXAT', '1']), '7', 'a past time: the value, then the key is gone');
    assert.equal(await cli(['exists', 'c:a']), '0');
    assert.equal(await cli(['getex', 'c:none', 'EX', '5']), '');
    assert.match(await cli(['getex', 'c:none', 'EX', '0']), /^ERR invalid expire time in 'getex' command/);
    // -x: the last argument from stdin, as a file's bytes would be given.
    assert.equal(await cli(['-x', 'setnx', 'c:x'], 'from stdin'), '1');
    assert.equal(await cli(['-x', 'setnx', 'c:x'], 'again'), '0');
    assert.equal(await cli(['-x', 'getset', 'c:x'], 'from stdin'), 'from stdin');
    assert.equal(await cli(['get', 'c:x']), 'from stdin');
  });

  it('ioredis: ordinary and pipelined', async () => {
    const redis = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      assert.equal(await redis.set('io:c', 'v1', 'NX'), 'OK');
      assert.equal(await redis.set('io:c', 'v2', 'NX'), null);
      assert.equal(await redis.setnx('io:c', 'v3'), 0);
      assert.equal(await redis.set('io:c', 'v4', 'XX', 'GET'), 'v1');
      assert.equal(await redis.getdel('io:c'), 'v4');
      assert.equal(await redis.getdel('io:c'), null);
      // A pipeline is one batch: NX on the same key twice in it must still see the first write.
      const results = await redis.pipeline().set('io:p', 'a', 'NX').set('io:p', 'b', 'NX').getset('io:p', 'c').get('io:p').exec();
      assert.deepEqual(results!.map(([error, value]) => [error, value]), [[null, 'OK'], [null, null], [null, 'a'], [null, 'c']]);
      assert.equal(await redis.getex('io:p', 'EX', 30), 'c');
      assert.equal(await redis.ttl('io:p'), 30);
    } finally {
      redis.disconnect();
    }
  });

  it('redis-py', { skip: NO_PYTHON }, async () => {
    const script = `
import sys, redis
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), socket_timeout=10)
assert r.set('py:c', 'a', nx=True) is True
assert r.set('py:c', 'b', nx=True) is None
assert r.set('py:c', 'b', xx=True, get=True) == b'a'
assert r.setnx('py:c', 'z') is False
assert r.getset('py:c', 'd') == b'b'
assert r.getex('py:c', px=20000) == b'd' and 0 < r.pttl('py:c') <= 20000
assert r.getex('py:c', persist=True) == b'd' and r.ttl('py:c') == -1
assert r.getdel('py:c') == b'd' and r.get('py:c') is None
print('redis-py ok')
`;
    const result = await runTool(PYTHON!, ['-c', script, String(port)]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /redis-py ok/);
  });

  it('the WebSocket client: putIfAbsent, putIfPresent, getAndPut, getAndDelete, getAndExpire', async () => {
    assert.equal(await kv.putIfAbsent('ws:c', 'one'), true);
    assert.equal(await kv.putIfAbsent('ws:c', 'two'), false);
    assert.equal(await kv.putIfPresent('ws:none', 'x'), false);
    assert.equal(await kv.get('ws:none'), undefined);
    assert.equal(await kv.putIfPresent('ws:c', 'three', { ttl_ms: 60_000 }), true);
    assert.equal(Buffer.from((await kv.getAndPut('ws:c', 'four', { keep_ttl: true }))!).toString(), 'three');
    const ttl = await kv.ttl('ws:c');
    assert.ok(typeof ttl === 'number' && ttl > 50_000, `keep_ttl kept it: ${ttl}`);
    assert.equal(Buffer.from((await kv.getAndExpire('ws:c', null))!).toString(), 'four');
    assert.equal(await kv.ttl('ws:c'), null);
    assert.equal(Buffer.from((await kv.getAndDelete('ws:c'))!).toString(), 'four');
    assert.equal(await kv.getAndDelete('ws:c'), undefined);
  });

  it('SETNX is atomic: of many concurrent clients, exactly one wins each key', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(server.url)));
    try {
      const KEYS = 200;
      const wins = await Promise.all(clients.map(async (client, c) => {
        const calls: Promise<boolean>[] = [];
        for (let k = 0; k < KEYS; k++) calls.push(client.putIfAbsent(`race:${k}`, `client ${c}`));
        return Promise.all(calls);
      }));
      for (let k = 0; k < KEYS; k++) {
        const winners = wins.map((won, c) => (won[k] ? c : -1)).filter((c) => c >= 0);
        assert.equal(winners.length, 1, `race:${k}: winners ${winners.join(',')}`);
        assert.equal(Buffer.from((await kv.get(`race:${k}`))!).toString(), `client ${winners[0]}`);
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

describe('conditional writes with --data-dir', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pikv-cond-'));
  let server: ServerProcess | null = null;
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a write made by SET NX, GETSET or GETEX is logged and survives a restart; one refused is not', async () => {
    const args = ['--workers', '2', '--data-dir', dir, '--fsync', 'always'];
    server = await startServer(args);
    let kv = await connect(server.url);
    assert.equal(await kv.putIfAbsent('d:nx', 'written'), true);
    assert.equal(await kv.putIfAbsent('d:nx', 'refused'), false);
    assert.equal(await kv.getAndPut('d:gs', 'new'), undefined);
    await kv.put('d:ex', 'v');
    await kv.put('d:del', 'v');
    assert.equal(Buffer.from((await kv.getAndExpire('d:ex', 600_000))!).toString(), 'v');
    assert.equal(Buffer.from((await kv.getAndDelete('d:del'))!).toString(), 'v');
    await kv.close();
    assert.equal(await server.stop(), 0);
    server = await startServer(args);
    kv = await connect(server.url);
    try {
      assert.equal(Buffer.from((await kv.get('d:nx'))!).toString(), 'written');
      assert.equal(Buffer.from((await kv.get('d:gs'))!).toString(), 'new');
      const ttl = await kv.ttl('d:ex');
      assert.ok(typeof ttl === 'number' && ttl > 500_000, `GETEX's expiry was logged: ${ttl}`);
      assert.equal(await kv.get('d:del'), undefined, 'GETDEL\'s delete was logged');
    } finally {
      await kv.close();
    }
  });
});

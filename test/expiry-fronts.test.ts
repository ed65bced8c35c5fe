/**
 * Key expiry through the other fronts, with real tools against a real node: redis-cli (SET EX,
 * SETEX, EXPIRE, TTL, PTTL, PERSIST, KEEPTTL), curl (PUT ?ttl=), the CLI (pikv put --ttl), and
 * active expiry of 1M keys while a client keeps reading.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, Op, type PikvClient } from '../src/index.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { findRedisCli, runTool } from './helpers/resp-socket.js';
import { curl, httpBase, NO_CURL } from './helpers/http.js';

const REDIS_CLI = findRedisCli();
const NO_REDIS_CLI = REDIS_CLI === null ? 'redis-cli is not installed (Debian: apt-get install redis-tools)' : false;

describe('expiry through RESP, HTTP and the CLI', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;
  const cli = async (...args: string[]): Promise<string> => {
    const result = await runTool(REDIS_CLI!, ['-p', String(server.resp_port), ...args]);
    return result.stdout.trim();
  };
  before(async () => {
    server = await startServer(['--workers', '2', '--resp-port', '0']);
    kv = await connect(server.url);
  });
  after(async () => {
    await kv?.close();
    await server?.stop();
  });

  it('redis-cli: SET EX/PX/EXAT/PXAT/KEEPTTL, SETEX, PSETEX, EXPIRE*, TTL, PTTL, PERSIST', { skip: NO_REDIS_CLI }, async () => {
    assert.equal(await cli('set', 'r:a', 'v', 'EX', '100'), 'OK');
    const ttl = Number(await cli('ttl', 'r:a'));
    assert.ok(ttl >= 95 && ttl <= 100, `TTL ${ttl}`);
    const pttl = Number(await cli('pttl', 'r:a'));
    assert.ok(pttl > 95_000 && pttl <= 100_000, `PTTL ${pttl}`);
    assert.equal(await cli('ttl', 'r:none'), '-2');
    assert.equal(await cli('pttl', 'r:none'), '-2');
    assert.equal(await cli('set', 'r:b', 'v'), 'OK');
    assert.equal(await cli('ttl', 'r:b'), '-1');
    assert.equal(await cli('expire', 'r:b', '50'), '1');
    assert.ok(Number(await cli('ttl', 'r:b')) >= 45);
    assert.equal(await cli('persist', 'r:b'), '1');
    assert.equal(await cli('persist', 'r:b'), '0');
    assert.equal(await cli('ttl', 'r:b'), '-1');
    assert.equal(await cli('expire', 'r:none', '50'), '0');
    // SET without KEEPTTL clears the TTL; with KEEPTTL keeps it.
    assert.equal(await cli('set', 'r:a', 'w', 'KEEPTTL'), 'OK');
    assert.ok(Number(await cli('ttl', 'r:a')) >= 95);
    assert.equal(await cli('get', 'r:a'), 'w');
    assert.equal(await cli('set', 'r:a', 'x'), 'OK');
    assert.equal(await cli('ttl', 'r:a'), '-1');
    const now_s = Math.floor(Date.now() / 1000);
    assert.equal(await cli('set', 'r:c', 'v', 'EXAT', String(now_s + 200)), 'OK');
    assert.ok(Number(await cli('ttl', 'r:c')) > 190);
    assert.equal(await cli('set', 'r:d', 'v', 'PXAT', String(Date.now() + 300_000)), 'OK');
    assert.ok(Number(await cli('pttl', 'r:d')) > 290_000);
    assert.equal(await cli('set', 'r:e', 'v', 'PX', '200'), 'OK');
    assert.equal(await cli('setex', 'r:f', '300', 'sv'), 'OK');
    assert.ok(Number(await cli('ttl', 'r:f')) >= 295);
    assert.equal(await cli('psetex', 'r:g', '250', 'pv'), 'OK');
    assert.equal(await cli('pexpireat', 'r:c', String(Date.now() + 400_000)), '1');
    assert.ok(Number(await cli('pttl', 'r:c')) > 390_000);
    assert.equal(await cli('expireat', 'r:c', String(now_s + 500)), '1');
    assert.ok(Number(await cli('ttl', 'r:c')) > 490);
    assert.equal(await cli('pexpire', 'r:c', '600000'), '1');
    assert.ok(Number(await cli('pttl', 'r:c')) > 590_000);
    // A time not in the future deletes the key, as in Redis.
    assert.equal(await cli('expire', 'r:c', '-1'), '1');
    assert.equal(await cli('exists', 'r:c'), '0');
    await sleep(400);
    assert.equal(await cli('get', 'r:e'), '');
    assert.equal(await cli('get', 'r:g'), '');
    assert.equal(await cli('exists', 'r:e', 'r:g', 'r:f'), '1');
    // Errors as Redis words them.
    assert.match(await cli('set', 'r:h', 'v', 'EX', '0'), /^ERR invalid expire time in 'set' command/);
    assert.match(await cli('set', 'r:h', 'v', 'EX', 'ten'), /^ERR value is not an integer or out of range/);
    assert.match(await cli('set', 'r:h', 'v', 'EX', '5', 'PX', '5'), /^ERR syntax error/);
    assert.match(await cli('setex', 'r:h', '-3', 'v'), /^ERR invalid expire time in 'setex' command/);
    assert.match(await cli('expire', 'r:h', '5', 'NX'), /^ERR EXPIRE NX is not supported yet/);
    assert.match(await cli('expire', 'r:h', '99999999999999999999'), /^ERR value is not an integer or out of range/);
    // The same key seen from the WebSocket client.
    assert.ok(((await kv.ttl('r:f')) ?? 0) > 290_000);
  });

  it('curl: PUT /v1/kv/{key}?ttl=SECONDS', { skip: NO_CURL }, async () => {
    const base = httpBase(server.url);
    const put = await curl(['-X', 'PUT', '-H', 'content-type: application/octet-stream', '-H', 'x-pikv-test: 1', '--data-binary', 'hv', `${base}/v1/kv/h:a?ttl=3`]);
    assert.ok(put.status === 204 || put.status === 403, `status ${put.status}`);
    if (put.status === 403) {
      // A write without a JSON or CBOR type is refused as cross-site (docs/PROTOCOL.md): send one.
      const again = await curl(['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', 'hv', `${base}/v1/kv/h:a?ttl=3`]);
      assert.equal(again.status, 204);
    }
    const ttl = await kv.ttl('h:a');
    assert.ok(typeof ttl === 'number' && ttl > 0 && ttl <= 3000, `ttl ${ttl}`);
    assert.equal((await curl([`${base}/v1/kv/h:a`])).body.toString(), 'hv');
    await sleep(3200);
    assert.equal((await curl([`${base}/v1/kv/h:a`])).status, 404);
    const bad = await curl(['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', 'v', `${base}/v1/kv/h:b?ttl=-5`]);
    assert.equal(bad.status, 400);
    assert.match(bad.body.toString(), /"error":"BAD_EXPIRY"/);
  });

  it('pikv put --ttl', async () => {
    const put = await runCli(['put', '--url', server.url, '--ttl', '10s', 'c:a', 'cv']);
    assert.equal(put.code, 0, put.stderr);
    const ttl = await kv.ttl('c:a');
    assert.ok(typeof ttl === 'number' && ttl > 9000 && ttl <= 10_000, `ttl ${ttl}`);
    const bad = await runCli(['put', '--url', server.url, '--ttl', 'soon', 'c:b', 'v']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--ttl/);
    assert.equal(await kv.get('c:b'), undefined);
  });
});

describe('active expiry', { timeout: 180_000 }, () => {
  it('deletes 1M expired keys within seconds while GETs keep being answered', async () => {
    const server = await startServer(['--workers', '2', '--max-memory', '640mb']);
    const kv = await connect(server.url);
    try {
      const KEYS = 1_000_000;
      const PER_FRAME = 50_000;
      // Long enough for the load to finish first on a slow, shared machine (checked below).
      const TTL_MS = 20_000;
      await kv.put('keeper', 'stays');
      const loaded_ms = Date.now();
      for (let start = 0; start < KEYS; start += PER_FRAME) {
        const count = Math.min(PER_FRAME, KEYS - start);
        const keys: Buffer[] = [];
        for (let i = 0; i < count; i++) keys.push(Buffer.from(`ax:${start + i}`));
        const key_lengths = new Uint32Array(keys.map((key) => key.length));
        const results = await kv.batchColumns({
          op: new Uint8Array(count).fill(Op.PUT), key_lengths, value_lengths: new Uint32Array(count).fill(8),
          keys: Buffer.concat(keys), values: Buffer.alloc(8 * count, 0x76), ttl: new Float64Array(count).fill(TTL_MS),
        });
        assert.ok(results.status.every((status) => status === 0), 'every put answered OK');
      }
      const load_s = (Date.now() - loaded_ms) / 1000;
      assert.ok(load_s * 1000 < TTL_MS, `loading took ${load_s} s, longer than the TTL`);
      const stats_loaded = await kv.stats();
      assert.equal(stats_loaded['keys'], KEYS + 1);
      assert.equal(stats_loaded['expiring_keys'], KEYS);
      // Nothing touches the expired keys: only active expiry can delete them.
      let latency_max_ms = 0;
      let gets = 0;
      let keys_left = KEYS + 1;
      const deadline_ms = loaded_ms + TTL_MS + 30_000;
      while (keys_left > 1) {
        assert.ok(Date.now() < deadline_ms, `${keys_left} keys left 30 s after they expired`);
        const started = performance.now();
        assert.equal(Buffer.from((await kv.get('keeper'))!).toString(), 'stays');
        latency_max_ms = Math.max(latency_max_ms, performance.now() - started);
        gets++;
        keys_left = (await kv.stats())['keys'] as number;
        await sleep(10);
      }
      const done_s = (Date.now() - loaded_ms - TTL_MS) / 1000;
      const stats = await kv.stats();
      assert.equal(stats['expired_keys'], KEYS);
      assert.equal(stats['expiring_keys'], 0);
      // A stall would show as a GET waiting behind the expiry work; steps are ~4 ms each.
      assert.ok(latency_max_ms < 1000, `slowest GET during active expiry took ${latency_max_ms} ms`);
      console.log(`active expiry: loaded in ${load_s.toFixed(1)} s; 1M keys gone ${done_s.toFixed(1)} s after their TTL; ${gets} GETs meanwhile, slowest ${latency_max_ms.toFixed(1)} ms`);
    } finally {
      await kv.close();
      await server.stop();
    }
  });
});

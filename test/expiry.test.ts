/**
 * Key expiry on a real node: the WebSocket client's ttl options and ops, the wire columns and
 * their error codes, lazy and active expiry, the clock check, and TTLs across a restart with
 * --data-dir (docs/PROTOCOL.md, "Expiry").
 */
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, Op, WireCodec, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { temporaryDataDir } from './helpers/persistence.js';
import { FORMAT_VERSION } from '../src/persistence/format.js';

const servers: ServerProcess[] = [];
const clients: PikvClient[] = [];
after(async () => {
  for (const client of clients) await client.close();
  for (const server of servers) await server.stop();
});

async function start(args: string[] = []): Promise<{ server: ServerProcess; kv: PikvClient }> {
  const server = await startServer(['--workers', '2', ...args]);
  servers.push(server);
  const kv = await connect(server.url);
  clients.push(kv);
  return { server, kv };
}

async function waitUntil(probe: () => Promise<boolean>, timeout_ms: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > timeout_ms) throw new Error(`${what}: not within ${timeout_ms} ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

describe('expiry over the WebSocket protocol', { timeout: 60_000 }, () => {
  it('put with ttl_ms, ttl, expire, persist, and a plain put clears the TTL', async () => {
    const { kv } = await start();
    await kv.put('a', '1', { ttl_ms: 60_000 });
    const ttl = await kv.ttl('a');
    assert.ok(typeof ttl === 'number' && ttl > 58_000 && ttl <= 60_000, `ttl ${ttl}`);
    assert.equal(await kv.ttl('nope'), undefined);
    await kv.put('b', '2');
    assert.equal(await kv.ttl('b'), null);
    assert.equal(await kv.expire('b', 30_000), true);
    const b_ttl = await kv.ttl('b');
    assert.ok(typeof b_ttl === 'number' && b_ttl > 28_000 && b_ttl <= 30_000);
    assert.equal(await kv.persist('b'), true);
    assert.equal(await kv.persist('b'), false, 'no TTL left to remove');
    assert.equal(await kv.ttl('b'), null);
    assert.equal(await kv.expire('missing', 1000), false);
    // KEEPTTL keeps it; a plain put drops it.
    await kv.put('a', 'x', { keep_ttl: true });
    assert.ok(((await kv.ttl('a')) ?? 0) > 50_000);
    assert.equal(Buffer.from((await kv.get('a'))!).toString(), 'x');
    await kv.put('a', 'y');
    assert.equal(await kv.ttl('a'), null);
    // expire(k, 0) deletes at once, as Redis's EXPIRE with a time not in the future does.
    assert.equal(await kv.expire('a', 0), true);
    assert.equal(await kv.get('a'), undefined);
  });

  it('an expired key is never returned, and the worker deletes it', async () => {
    const { kv } = await start();
    // Long enough to be read back first on a loaded machine.
    await kv.put('short', 'v', { ttl_ms: 1500 });
    await kv.put('batched', 'v', { ttl_ms: 1500 });
    assert.equal(Buffer.from((await kv.get('short'))!).toString(), 'v');
    await sleep(1700);
    assert.equal(await kv.get('short'), undefined);
    const results = await kv.batch([{ op: 'get', key: 'batched' }, { op: 'put', key: 'c', value: 'v', ttl_ms: 100_000 }]);
    assert.equal(results[0]!.code, 'NOT_FOUND');
    assert.equal(results[1]!.code, 'OK');
    await waitUntil(async () => (await kv.stats())['keys'] === 1, 5000, 'expired keys deleted');
    const stats = await kv.stats();
    assert.equal(stats['expired_keys'], 2);
    assert.equal(stats['expiring_keys'], 1);
    assert.deepEqual(stats['clock'], { synced: true, reason: (stats['clock'] as { reason: string }).reason });
  });

  it('bad expiry columns answer BAD_EXPIRY; a node with an unsynchronised clock answers CLOCK_UNSYNCED', async () => {
    const { server, kv } = await start();
    const codec = new WireCodec();
    const ws_results = async (url: string, batch: Parameters<PikvClient['batchColumns']>[0]): Promise<number[]> => {
      const client = await connect(url);
      try {
        return [...(await client.batchColumns(batch)).status];
      } finally {
        await client.close();
      }
    };
    void codec;
    const one = (op: number, xp: number | null, tl: number | null) => ({
      op: new Uint8Array([op]), key_lengths: new Uint32Array([1]), value_lengths: new Uint32Array([op === Op.PUT ? 1 : 0]),
      keys: Buffer.from('k'), values: Buffer.from(op === Op.PUT ? 'v' : ''),
      ...(xp === null ? {} : { expiry: new Float64Array([xp]) }), ...(tl === null ? {} : { ttl: new Float64Array([tl]) }),
    });
    const BAD_EXPIRY = 25;
    assert.deepEqual(await ws_results(server.url, one(Op.PUT, 1.5, null)), [BAD_EXPIRY]);
    assert.deepEqual(await ws_results(server.url, one(Op.PUT, -7, null)), [BAD_EXPIRY]);
    assert.deepEqual(await ws_results(server.url, one(Op.PUT, Date.now() + 1000, 1000)), [BAD_EXPIRY]);
    assert.deepEqual(await ws_results(server.url, one(Op.GET, Date.now() + 1000, null)), [BAD_EXPIRY]);
    assert.deepEqual(await ws_results(server.url, one(Op.EXPIRE, null, null)), [BAD_EXPIRY]);
    assert.deepEqual(await ws_results(server.url, one(Op.DELETE, -1, null)), [BAD_EXPIRY]);
    // Absolute xp works, and a put with an xp already past answers OK and leaves no key.
    assert.deepEqual(await ws_results(server.url, one(Op.PUT, Date.now() + 60_000, null)), [0]);
    assert.ok(((await kv.ttl('k')) ?? 0) > 50_000);
    assert.deepEqual(await ws_results(server.url, one(Op.PUT, 1000, null)), [0]);
    assert.equal(await kv.get('k'), undefined);

    const { server: unsynced, kv: kv2 } = await start(['--clock-sync', 'no']);
    const CLOCK_UNSYNCED = 26;
    await kv2.put('plain', 'v');
    await assert.rejects(kv2.put('t', 'v', { ttl_ms: 1000 }), { code: 'CLOCK_UNSYNCED' });
    await assert.rejects(kv2.ttl('plain'), { code: 'CLOCK_UNSYNCED' });
    assert.deepEqual(await ws_results(unsynced.url, one(Op.EXPIRE, Date.now() + 1000, null)), [CLOCK_UNSYNCED]);
    assert.equal(Buffer.from((await kv2.get('plain'))!).toString(), 'v');
    const clock = (await kv2.stats())['clock'] as { synced: boolean; reason: string };
    assert.equal(clock.synced, false);
    assert.match(clock.reason, /--clock-sync no/);
  });
});

describe('expiry with --data-dir', { timeout: 60_000 }, () => {
  it('absolute expiry times survive a restart; keys that expired while down are dropped', async () => {
    const dir = temporaryDataDir('expiry');
    const args = ['--data-dir', dir];
    let { server, kv } = await start(args);
    await kv.put('long', 'L', { ttl_ms: 120_000 });
    await kv.put('short', 'S', { ttl_ms: 3000 });
    await kv.put('plain', 'P');
    await kv.put('extended', 'E', { ttl_ms: 3000 });
    assert.equal(await kv.expire('extended', 120_000), true, 'extended before it expired');
    await kv.put('persisted', 'Q', { ttl_ms: 3000 });
    assert.equal(await kv.persist('persisted'), true);
    const long_before = (await kv.ttl('long'))!;
    await kv.close();
    await server.stop();
    await sleep(3000);
    ({ server, kv } = await start(args));
    assert.match(server.output(), /dropped 1 keys whose expiry passed while the node was down/);
    assert.equal(await kv.get('short'), undefined);
    assert.equal(Buffer.from((await kv.get('plain'))!).toString(), 'P');
    assert.equal(Buffer.from((await kv.get('extended'))!).toString(), 'E');
    assert.equal(Buffer.from((await kv.get('persisted'))!).toString(), 'Q');
    assert.equal(await kv.ttl('persisted'), null);
    const long_after = (await kv.ttl('long'))!;
    // Absolute: the time spent down counts (over 3 s here), it is not restarted.
    assert.ok(long_after < long_before - 2900 && long_after > 100_000, `before ${long_before}, after ${long_after}`);
    // A key expired on access is logged as deleted: an EXPIRE after it must not bring it back on replay.
    await kv.put('gone', 'G', { ttl_ms: 200 });
    await sleep(300);
    assert.equal(await kv.get('gone'), undefined);
    assert.equal(await kv.expire('gone', 120_000), false);
    await kv.close();
    await server.stop('SIGKILL');
    ({ server, kv } = await start(args));
    assert.equal(await kv.get('gone'), undefined);
    assert.equal(await kv.ttl('gone'), undefined);
  });
});

describe('a data directory written before expiry (format version 1)', { timeout: 60_000 }, () => {
  it('loads, takes TTLs, and loads again after the upgrade', async () => {
    const dir = temporaryDataDir('data-v1');
    const fixture = fileURLToPath(new URL('../../test/fixtures/data-v1/', import.meta.url));
    for (const name of readdirSync(fixture)) if (name !== 'README.md') copyFileSync(join(fixture, name), join(dir, name));
    assert.match(readFileSync(join(dir, 'MANIFEST'), 'utf8'), /"version":1/);
    const args = ['--data-dir', dir, '--key-bytes-max', '4kb'];
    let { server, kv } = await start(args);
    assert.match(server.output(), /recovered 100 keys/);
    assert.equal(Buffer.from((await kv.get('old-0'))!).toString(), 'value-0');
    assert.equal(await kv.get('old-7'), undefined);
    assert.equal(Buffer.from((await kv.get('old-8'))!).toString(), 'overwritten');
    assert.equal(Buffer.from((await kv.get('k'.repeat(3000)))!).toString(), 'long-key value');
    assert.equal(await kv.ttl('old-1'), null);
    assert.equal(await kv.expire('old-1', 120_000), true);
    await kv.put('new', 'n', { ttl_ms: 120_000 });
    assert.match(readFileSync(join(dir, 'MANIFEST'), 'utf8'), new RegExp(`"version":${FORMAT_VERSION}\\b`));
    await kv.close();
    await server.stop();
    ({ server, kv } = await start(args));
    assert.match(server.output(), /recovered 101 keys/);
    assert.ok(((await kv.ttl('old-1')) ?? 0) > 100_000);
    assert.ok(((await kv.ttl('new')) ?? 0) > 100_000);
    assert.equal(Buffer.from((await kv.get('old-1'))!).toString(), 'value-1');
  });
});

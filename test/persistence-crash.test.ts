import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect, type PikvClient } from '../src/index.js';
import { Prng } from '../src/hashmap/fixtures/prng.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

const SEEDS = [1, 2, 3];
const KILLS_PER_SEED = 3;
const KEY_SPACE = 3000;
const BATCH_OPS = 200;
const BATCHES_INFLIGHT = 4;

/** Per key: the state of its latest acknowledged op, and the states of ops that got no reply. */
interface KeyModel {
  acked_seq: number;
  acked: string | null;
  unresolved: Map<number, string | null>;
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Mixed puts and deletes until the server dies; records what was acknowledged. */
async function loadUntilKilled(kv: PikvClient, model: Map<string, KeyModel>, prng: Prng, next_seq: { value: number }, unexpected: string[]): Promise<void> {
  const inflight = new Set<Promise<void>>();
  for (;;) {
    const ops = Array.from({ length: BATCH_OPS }, () => {
      const key = `key:${prng.below(KEY_SPACE)}`;
      const seq = next_seq.value++;
      const value = prng.chance(0.3) ? null : `${key}#${seq}`;
      let entry = model.get(key);
      if (entry === undefined) model.set(key, (entry = { acked_seq: -1, acked: null, unresolved: new Map() }));
      entry.unresolved.set(seq, value);
      return { key, seq, value };
    });
    const sent = kv.batch(ops.map(({ key, value }) => (value === null ? { op: 'delete' as const, key } : { op: 'put' as const, key, value })))
      .then((results) => {
        results.forEach((result, i) => {
          const { key, seq, value } = ops[i]!;
          if (!(result.code === 'OK' || (value === null && result.code === 'NOT_FOUND'))) {
            unexpected.push(`${key}: ${result.code}`);
            return;
          }
          const entry = model.get(key)!;
          entry.unresolved.delete(seq);
          if (seq > entry.acked_seq) {
            entry.acked_seq = seq;
            entry.acked = value;
          }
        });
      });
    const tracked: Promise<void> = sent.then(() => void inflight.delete(tracked), () => void inflight.delete(tracked));
    inflight.add(tracked);
    let failed = false;
    sent.catch(() => (failed = true));
    if (inflight.size >= BATCHES_INFLIGHT) await Promise.race(inflight);
    if (failed) break;
    await new Promise((resolve) => setImmediate(resolve));
    if (failed) break;
  }
  await Promise.allSettled(inflight);
}

async function verify(kv: PikvClient, model: Map<string, KeyModel>): Promise<number> {
  const keys = [...model.keys()];
  const results = await kv.batch(keys.map((key) => ({ op: 'get' as const, key })));
  let checked = 0;
  results.forEach((result, i) => {
    const key = keys[i]!;
    const entry = model.get(key)!;
    const read = result.value === undefined ? null : Buffer.from(result.value).toString();
    // Newer ops without a reply may or may not have happened; older ones are superseded.
    const allowed = [entry.acked, ...[...entry.unresolved].filter(([seq]) => seq > entry.acked_seq).map(([, value]) => value)];
    assert.ok(allowed.includes(read), `${key}: read ${read}, acknowledged ${entry.acked} (seq ${entry.acked_seq})`);
    // What was read is now the only truth: later checks start from it.
    entry.acked = read;
    entry.unresolved.clear();
    checked++;
  });
  return checked;
}

describe('crash recovery with --fsync always', { timeout: 90_000 }, () => {
  for (const seed of SEEDS) {
    it(`keeps every acknowledged write and delete across ${KILLS_PER_SEED} kill -9s (seed ${seed})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pikv-crash-'));
      dirs.push(dir);
      const prng = new Prng(seed);
      const model = new Map<string, KeyModel>();
      const next_seq = { value: 0 };
      for (let kill = 0; kill <= KILLS_PER_SEED; kill++) {
        const server: ServerProcess = await startServer(['--workers', '2', '--data-dir', dir, '--fsync', 'always']);
        try {
          const kv = await connect(server.url, { request_timeout_ms: 10_000 });
          if (kill > 0) assert.match(server.output(), /recovered \d+ keys in \d+ ms/);
          const checked = await verify(kv, model);
          assert.equal(checked, model.size);
          if (kill === KILLS_PER_SEED) {
            await kv.close();
            break;
          }
          const killer = new Promise<void>((resolve) => setTimeout(() => {
            process.kill(server.pid, 'SIGKILL');
            resolve();
          }, 150 + prng.below(500)));
          const unexpected: string[] = [];
          await loadUntilKilled(kv, model, prng, next_seq, unexpected);
          await killer;
          assert.deepEqual(unexpected, []);
          await kv.close();
        } finally {
          await server.stop('SIGKILL');
        }
      }
      const acked = [...model.values()].filter((entry) => entry.acked !== null).length;
      assert.ok(acked > 100, `${acked} keys hold acknowledged values`);
    });
  }
});

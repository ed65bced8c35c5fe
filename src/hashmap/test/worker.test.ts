// Cross-thread use: a writer worker fills a table that the main thread then
// reads, and a writer killed by worker.terminate() at random points leaves a
// table in which every op that returned is intact after recover().

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { KeyUniverse, readValue, verifyTable } from '../fixtures/model.js';
import { OP_PUT, opAt, OPS_KEY_COUNT } from '../fixtures/ops.js';
import { Prng } from '../fixtures/prng.js';
import { fillValue } from '../fixtures/writer-worker.js';
import { createTableMemory, HashTable } from '../index.js';

const WORKER_URL = new URL('../fixtures/writer-worker.js', import.meta.url);

function startWriter(data: object): Worker {
  return new Worker(WORKER_URL, { workerData: data });
}

describe('HashTable across threads', () => {
  it('reads on the main thread every key a worker wrote', async () => {
    const seed = 11;
    const memory = createTableMemory(16 * 1024 * 1024);
    const worker = startWriter({ mode: 'fill', memory, progress: new SharedArrayBuffer(4), seed, start: 0, end: 0 });
    const [message] = await once(worker, 'message');
    assert.equal(message, 'done');
    await worker.terminate();
    const keys = new KeyUniverse(OPS_KEY_COUNT, seed);
    const model = new Map<number, Buffer>();
    for (let id = 0; id < keys.count; id++) model.set(id, fillValue(id));
    verifyTable(new HashTable(memory), keys, model, 'main thread');
  });

  it('keeps every returned op when the writer is killed at random points', async () => {
    const seed = Number(process.env['HASHMAP_SEED'] ?? 23);
    const prng = new Prng(seed);
    const ops_total = 600_000;
    const kills_max = 16;
    const memory = createTableMemory(32 * 1024 * 1024);
    const progress_memory = new SharedArrayBuffer(4);
    const progress = new Int32Array(progress_memory);
    const keys = new KeyUniverse(OPS_KEY_COUNT, seed);
    const model = new Map<number, Buffer>();
    const observer = new HashTable(memory); // racy reads of the header only pick kill moments
    let done = 0;
    let kills = 0;
    let kills_mid_migration = 0;
    while (done < ops_total) {
      const worker = startWriter({ mode: 'ops', memory, progress: progress_memory, seed, start: done, end: ops_total });
      const exited = once(worker, 'exit');
      const [message] = await once(worker, 'message');
      assert.equal(message, 'ready');
      if (kills < kills_max) {
        // Odd kills wait for a migration to be running, even kills land anywhere.
        await sleep(prng.below(4));
        for (let polls = 0; kills % 2 === 1 && polls < 100_000 && !observer.stats().migrating; polls++) {
          await new Promise(setImmediate);
        }
        await worker.terminate();
        kills += 1;
      }
      await exited;
      const completed = Atomics.load(progress, 0);
      for (; done < completed; done++) applyOp(model, opAt(seed, done));
      const table = new HashTable(memory);
      if (table.stats().migrating) kills_mid_migration += 1;
      table.recover();
      if (completed < ops_total) resolveInFlight(table, keys, model, opAt(seed, completed));
      verifyTable(table, keys, model, `seed ${seed} after kill ${kills} at op ${completed}`);
      assert.ok(table.stats().bytes_leaked >= 0);
      if (process.env['HASHMAP_DEBUG']) console.log(kills, completed, JSON.stringify(table.stats()));
    }
    assert.ok(kills >= kills_max / 2, `kills ${kills}`);
    // Coverage, not correctness: at least one kill must have hit a migration.
    assert.ok(kills_mid_migration >= 1, `kills during a migration: ${kills_mid_migration}`);
    const stats = new HashTable(memory).stats();
    assert.ok(stats.index_rebuilds >= 2, `rebuilds ${stats.index_rebuilds}`);
  });
});

function applyOp(model: Map<number, Buffer>, op: ReturnType<typeof opAt>): void {
  if (op.kind === OP_PUT) model.set(op.id, op.value);
  else model.delete(op.id);
}

/** The op running at the kill may or may not have happened, but nothing else. */
function resolveInFlight(table: HashTable, keys: KeyUniverse, model: Map<number, Buffer>, op: ReturnType<typeof opAt>): void {
  const actual = readValue(table, keys, op.id);
  const before = model.get(op.id) ?? null;
  const after = op.kind === OP_PUT ? op.value : null;
  const same = (a: Buffer | null, b: Buffer | null) => (a === null ? b === null : b !== null && a.equals(b));
  assert.ok(same(actual, before) || same(actual, after), `in-flight op on id ${op.id} left a third state`);
  if (same(actual, after) && !same(actual, before)) applyOp(model, op);
}

/**
 * Shared by the persistence tests: temporary data directories (removed when the test process
 * ends) and a bulk writer/checker of numbered keys.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PikvClient } from '../../src/index.js';

const dirs: string[] = [];
process.on('exit', () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

export function temporaryDataDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `pikv-${label}-`));
  dirs.push(dir);
  return dir;
}

export function valueOf(key: number, round: number, length = 100): string {
  return `${key}@${round}:`.padEnd(length, 'v');
}

/**
 * Puts keys [from, to) with valueOf(key, round), `batch_ops` per request, one request at a
 * time. Ops that fail with WORKER_RESTARTED (a test killed a worker) are sent again.
 */
export async function putRange(kv: PikvClient, from: number, to: number, round: number, batch_ops = 1000): Promise<void> {
  for (let start = from; start < to; start += batch_ops) {
    let ops = [];
    for (let key = start; key < Math.min(to, start + batch_ops); key++) ops.push({ op: 'put' as const, key: `k${key}`, value: valueOf(key, round) });
    for (let attempt = 0; ops.length > 0; attempt++) {
      assert.ok(attempt < 20, 'ops keep failing with WORKER_RESTARTED');
      const results = await kv.batch(ops);
      for (const result of results) assert.ok(result.code === 'OK' || result.code === 'WORKER_RESTARTED', result.code);
      ops = ops.filter((_, i) => results[i]!.code !== 'OK');
    }
  }
}

/** Asserts that keys [from, to) hold `expected(key)` (null: absent). */
export async function checkRange(kv: PikvClient, from: number, to: number, expected: (key: number) => string | null): Promise<void> {
  for (let start = from; start < to; start += 10_000) {
    const keys = Array.from({ length: Math.min(to, start + 10_000) - start }, (_, i) => start + i);
    const results = await kv.batch(keys.map((key) => ({ op: 'get' as const, key: `k${key}` })));
    results.forEach((result, i) => {
      const read = result.value === undefined ? null : Buffer.from(result.value).toString();
      assert.equal(read, expected(keys[i]!), `k${keys[i]}`);
    });
  }
}

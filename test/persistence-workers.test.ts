import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connect } from '../src/index.js';
import { checkRange, putRange, temporaryDataDir, valueOf } from './helpers/persistence.js';
import { startServer } from './helpers/server-process.js';
import { FORMAT_VERSION } from '../src/persistence/format.js';

const KEYS = 6000;

describe('a data directory and the worker count', { timeout: 60_000 }, () => {
  it('is re-partitioned when the node restarts with another --workers', async () => {
    const dir = temporaryDataDir('workers');
    const first = await startServer(['--workers', '2', '--data-dir', dir]);
    const kv = await connect(first.url);
    await putRange(kv, 0, KEYS, 1);
    await kv.batch(Array.from({ length: 50 }, (_, i) => ({ op: 'delete' as const, key: `k${i}` })));
    await kv.close();
    await first.stop('SIGKILL');

    for (const [round, workers] of [3, 1].entries()) {
      const server = await startServer(['--workers', String(workers), '--data-dir', dir]);
      assert.match(server.output(), /re-partitioned the data directory from \d to the current worker count/);
      assert.match(server.output(), new RegExp(`recovered ${KEYS - 50 + round} keys`));
      const client = await connect(server.url);
      await checkRange(client, 0, KEYS, (key) => (key === 0 && round > 0 ? 'back' : key < 50 ? null : valueOf(key, 1)));
      await client.put('k0', 'back');
      await client.close();
      await server.stop();
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'MANIFEST'), 'utf8')), { format: 'pikv-data', version: FORMAT_VERSION, workers });
      assert.ok(readdirSync(dir).every((name) => name === 'MANIFEST' || name.startsWith(`w${workers}-`)), readdirSync(dir).join(' '));
    }
  });

  it('writes nothing without --data-dir', async () => {
    const server = await startServer(['--workers', '2']);
    const kv = await connect(server.url);
    await kv.put('a', 'b');
    const stats = (await kv.stats()) as unknown as { per_worker: { disk_bytes_written: number }[] };
    assert.ok(stats.per_worker.every((worker) => worker.disk_bytes_written === 0));
    await kv.close();
    await server.stop();
  });
});

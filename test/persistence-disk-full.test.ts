import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../src/index.js';
import { checkRange, valueOf } from './helpers/persistence.js';
import { startServer } from './helpers/server-process.js';

const MOUNT = mkdtempSync(join(tmpdir(), 'pikv-full-'));
let mounted = false;
let skip_reason = '';

before(() => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', MOUNT], { stdio: 'pipe' });
    mounted = true;
  } catch (error) {
    skip_reason = `cannot mount a 2 MiB tmpfs here (needs root): ${(error as Error).message.split('\n')[0]}`;
  }
});
after(() => {
  // -l: never leave a mount behind, even if a server of a failed test still holds a file.
  if (mounted) execFileSync('umount', ['-l', MOUNT]);
  rmSync(MOUNT, { recursive: true, force: true });
});

describe('a full disk', { timeout: 60_000 }, () => {
  it('fails writes with DISK_ERROR, keeps reads and acknowledged data, and resumes once space is freed', async (t) => {
    if (!mounted) {
      t.skip(skip_reason);
      return;
    }
    const dir = join(MOUNT, 'data');
    const filler = join(MOUNT, 'filler');
    writeFileSync(filler, Buffer.alloc(1024 * 1024));
    const server = await startServer(['--workers', '2', '--data-dir', dir, '--fsync', 'always']);
    t.after(() => server.stop('SIGKILL'));
    const kv = await connect(server.url);
    let acknowledged = 0;
    let disk_errors = 0;
    for (let batch = 0; batch < 100 && disk_errors === 0; batch++) {
      const ops = Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: `k${batch * 100 + i}`, value: valueOf(batch * 100 + i, 1) }));
      const results = await kv.batch(ops);
      for (const result of results) {
        if (result.code === 'OK') acknowledged++;
        else {
          assert.equal(result.code, 'DISK_ERROR');
          disk_errors++;
        }
      }
    }
    assert.ok(disk_errors > 0, 'the disk filled up');
    // Acknowledged writes are readable; failed ones were not applied.
    const results = await kv.batch(Array.from({ length: 10_000 }, (_, i) => ({ op: 'get' as const, key: `k${i}` })));
    const present = results.filter((result) => result.code === 'OK').length;
    assert.equal(present, acknowledged);
    const stats = (await kv.stats()) as unknown as { per_worker: { disk_errors: number }[] };
    assert.ok(stats.per_worker.some((worker) => worker.disk_errors > 0));

    unlinkSync(filler);
    const more = await kv.batch(Array.from({ length: 200 }, (_, i) => ({ op: 'put' as const, key: `late${i}`, value: 'x'.repeat(100) })));
    assert.deepEqual(new Set(more.map((result) => result.code)), new Set(['OK']), 'writes resume after space is freed');
    await kv.close();
    await server.stop('SIGKILL');

    const again = await startServer(['--workers', '2', '--data-dir', dir]);
    try {
      const kv2 = await connect(again.url);
      // Exactly the acknowledged keys come back (a failed batch hit one partition, not the other).
      await checkRange(kv2, 0, 10_000, (key) => (results[key]!.code === 'OK' ? valueOf(key, 1) : null));
      assert.equal(Buffer.from((await kv2.get('late199'))!).toString(), 'x'.repeat(100));
      await kv2.close();
    } finally {
      await again.stop();
    }
  });
});

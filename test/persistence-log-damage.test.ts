import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connect } from '../src/index.js';
import { checkRange, putRange, temporaryDataDir, valueOf } from './helpers/persistence.js';
import { runCli, startServer } from './helpers/server-process.js';

const KEYS = 4000;

/** A node with KEYS keys written in 40 requests (so each log holds many records), then stopped. */
async function writeAndStop(dir: string): Promise<void> {
  const server = await startServer(['--workers', '2', '--data-dir', dir]);
  const kv = await connect(server.url);
  await putRange(kv, 0, KEYS, 1, 100);
  await kv.close();
  assert.equal(await server.stop(), 0);
}

function logsOf(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.log')).sort().map((name) => join(dir, name));
}

describe('a damaged log', { timeout: 60_000 }, () => {
  it('loses only the torn last record after a crash mid-write, and says so', async () => {
    const dir = temporaryDataDir('torn');
    await writeAndStop(dir);
    const log = logsOf(dir)[0]!;
    const size = statSync(log).size;
    // Half of a record: a plausible header claiming 5000 bytes, then only some of them.
    const torn = Buffer.alloc(700, 0x61);
    torn.writeUInt32LE(5000, 0);
    torn[4] = 1;
    appendFileSync(log, torn);
    const server = await startServer(['--workers', '2', '--data-dir', dir]);
    const kv = await connect(server.url);
    await checkRange(kv, 0, KEYS, (key) => valueOf(key, 1));
    await kv.put('after', 'torn');
    await kv.close();
    await server.stop();
    assert.match(server.output(), new RegExp(`cut a torn tail of 700 bytes at offset ${size}`));
    assert.equal(statSync(log).size > size, true, 'appending resumed where the good records end');
  });

  it('stops start-up naming the file and offset of a damaged middle record; --repair recovers the rest', async () => {
    const dir = temporaryDataDir('middle');
    await writeAndStop(dir);
    const log = logsOf(dir)[1]!;
    const bytes = readFileSync(log);
    const offset = Math.floor(bytes.length / 2);
    bytes[offset] ^= 0x5a;
    writeFileSync(log, bytes);

    const refused = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--workers', '2', '--max-memory', '256mb', '--data-dir', dir]);
    assert.equal(refused.code, 2);
    const match = /(\S+\.log): damaged record at byte offset (\d+)/.exec(refused.stderr);
    assert.ok(match, refused.stderr);
    assert.equal(match[1], log);
    assert.ok(Number(match[2]) <= offset && Number(match[2]) > offset - 200 * 1000, refused.stderr);

    const server = await startServer(['--workers', '2', '--data-dir', dir, '--repair']);
    assert.match(server.output(), /--repair dropped \d+ bytes at offset \d+/);
    const kv = await connect(server.url);
    let present = 0;
    for (let key = 0; key < KEYS; key++) {
      const value = await kv.get(`k${key}`);
      if (value !== undefined) {
        assert.equal(Buffer.from(value).toString(), valueOf(key, 1));
        present++;
      }
    }
    // One record of ~100 ops in one partition is lost; everything else is there.
    assert.ok(present >= KEYS - 100 && present < KEYS, `${present} of ${KEYS} keys after repair`);
    await kv.close();
    await server.stop();
    // The damaged files were replaced: a plain start works again.
    const again = await startServer(['--workers', '2', '--data-dir', dir]);
    assert.match(again.output(), new RegExp(`recovered ${present} keys`));
    await again.stop();
  });
});

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_HEADER_BYTES, R_PAYLOAD_BYTES, R_TYPE, RECORD_BATCH, RECORD_BATCH_DEFLATE, RECORD_HEADER_BYTES } from '../src/persistence/format.js';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, Op, WireCodec } from '../src/index.js';
import { checkRange, putRange, temporaryDataDir, valueOf } from './helpers/persistence.js';
import { startServer } from './helpers/server-process.js';

const KEYS = 5000;

interface DiskStats {
  per_worker: { disk_bytes: number; compactions: number; disk_bytes_per_op: number; payload_bytes: number; restarts: number }[];
}

/** Sends DEBUG_KILL_WORKER for `partition` over a raw socket. */
async function killWorker(url: string, partition: number): Promise<void> {
  const codec = new WireCodec();
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const key = Buffer.from(String(partition));
  socket.send(codec.encodeRequest({ id: 1, op: Uint8Array.of(Op.DEBUG_KILL_WORKER), key_lengths: Uint32Array.of(key.length), value_lengths: Uint32Array.of(0), keys: key, values: Buffer.alloc(0) }));
  await new Promise((resolve) => socket.once('message', resolve));
  socket.close();
}

/** Record types of every snapshot in `dir`: how many BATCH and BATCH_DEFLATE records, and their bytes. */
function snapshotRecords(dir: string): { raw: number; deflated: number; snapshot_bytes: number } {
  const counts = { raw: 0, deflated: 0, snapshot_bytes: 0 };
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.snap'))) {
    const file = readFileSync(join(dir, name));
    counts.snapshot_bytes += file.length;
    for (let at = FILE_HEADER_BYTES; at + RECORD_HEADER_BYTES <= file.length; at += RECORD_HEADER_BYTES + file.readUInt32LE(at + R_PAYLOAD_BYTES)) {
      if (file[at + R_TYPE] === RECORD_BATCH) counts.raw++;
      if (file[at + R_TYPE] === RECORD_BATCH_DEFLATE) counts.deflated++;
    }
  }
  return counts;
}

describe('compaction', { timeout: 60_000 }, () => {
  it('deflates the snapshot records of compressible values (off with --snapshot-compress off), and a restart reads them back', async () => {
    for (const mode of ['on', 'off'] as const) {
      const dir = temporaryDataDir(`snap-${mode}`);
      const server = await startServer(['--workers', '1', '--data-dir', dir, '--compact-min-bytes', '256kb', '--snapshot-compress', mode]);
      const kv = await connect(server.url);
      for (let round = 1; round <= 4; round++) await putRange(kv, 0, KEYS, round);
      // A finished compaction leaves a .snap (a later one in progress leaves it in place).
      for (let waited = 0; ((await kv.stats()) as unknown as DiskStats).per_worker[0]!.compactions < 1; waited += 100) {
        assert.ok(waited < 20_000, 'no compaction finished within 20 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await kv.close();
      await server.stop();
      const records = snapshotRecords(dir);
      const payload_bytes = KEYS * (100 + 5);
      if (mode === 'on') {
        assert.ok(records.deflated > 0 && records.raw === 0, `records: ${JSON.stringify(records)}`);
        assert.ok(records.snapshot_bytes < payload_bytes / 3, `a deflated snapshot of ${payload_bytes} B of keys and values: ${records.snapshot_bytes} B`);
      } else {
        assert.ok(records.raw > 0 && records.deflated === 0, `records: ${JSON.stringify(records)}`);
      }
      const again = await startServer(['--workers', '1', '--data-dir', dir]);
      const kv2 = await connect(again.url);
      await checkRange(kv2, 0, KEYS, (key) => valueOf(key, 4));
      await kv2.close();
      await again.stop();
    }
  });


  it('keeps files near the live data under overwrite load, and a restart reads the latest values', async () => {
    const dir = temporaryDataDir('compact');
    const server = await startServer(['--workers', '2', '--data-dir', dir, '--compact-min-bytes', '128kb']);
    const kv = await connect(server.url);
    // Writes keep arriving while compactions run: 30 rounds overwrite every key, with deletes.
    for (let round = 1; round <= 30; round++) {
      await putRange(kv, 0, KEYS, round);
      if (round % 10 === 0) await kv.batch(Array.from({ length: 100 }, (_, i) => ({ op: 'delete' as const, key: `k${i * 7 + round}` })));
    }
    const stats = (await kv.stats()) as unknown as DiskStats;
    await kv.close();
    for (const worker of stats.per_worker) {
      assert.ok(worker.compactions >= 5, `compactions: ${worker.compactions}`);
      assert.ok(worker.disk_bytes < 6 * worker.payload_bytes, `disk ${worker.disk_bytes} B for ${worker.payload_bytes} B of payload`);
    }
    await server.stop('SIGKILL');
    // Rounds 11..30 re-put what rounds 10 and 20 deleted; round 30's deletes stay.
    const deleted = (key: number): boolean => (key - 30) % 7 === 0 && key >= 30 && key - 30 < 700;
    const again = await startServer(['--workers', '2', '--data-dir', dir]);
    const kv2 = await connect(again.url);
    await checkRange(kv2, 0, KEYS, (key) => (deleted(key) ? null : valueOf(key, 30)));
    await kv2.close();
    await again.stop();
    assert.equal(readdirSync(dir).filter((name) => name.endsWith('.tmp')).length, 0);
  });

  it('survives a worker killed mid-compaction: the new worker reopens its log, never replays, and nothing is lost', async () => {
    const dir = temporaryDataDir('restart');
    const server = await startServer(['--workers', '2', '--data-dir', dir, '--compact-min-bytes', '64kb', '--fsync', 'always'], { PIKV_TEST_HOOKS: '1' });
    const kv = await connect(server.url);
    for (let round = 1; round <= 12; round++) {
      // The kill lands while this round's writes (and the compactions they start) are running.
      const kill = round % 4 === 0 ? killWorker(server.url, round % 2) : Promise.resolve();
      await putRange(kv, 0, KEYS, round);
      await kill;
    }
    await checkRange(kv, 0, KEYS, (key) => valueOf(key, 12));
    const stats = (await kv.stats()) as unknown as DiskStats;
    assert.equal(stats.per_worker.reduce((sum, worker) => sum + worker.restarts, 0), 3);
    assert.equal(stats.per_worker.reduce((sum, worker) => sum + (worker as unknown as { keys: number }).keys, 0), KEYS, 'no replay doubled anything');
    await kv.close();
    await server.stop('SIGKILL');
    const again = await startServer(['--workers', '2', '--data-dir', dir]);
    const kv2 = await connect(again.url);
    await checkRange(kv2, 0, KEYS, (key) => valueOf(key, 12));
    await kv2.close();
    await again.stop();
  });
});

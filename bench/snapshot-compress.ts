/**
 * `npm run bench:snapshot-compress`: would compressing snapshots during compaction help?
 * (issue #13 item 3: "if measurement shows it does"; docs/PERFORMANCE.md, "Compressing
 * snapshots".)
 *
 * For each data set it makes two real snapshots, with `--snapshot-compress off` and `on`: one
 * node (`pikv serve --workers 1 --data-dir D --compact-min-bytes 1mb`), `--mib` MiB of values
 * PUT through the client library (with its
 * default compression: values from 4 KiB are compressed by the client and stored so), then
 * every key PUT again so that the log passes twice the data and the worker compacts; it waits
 * for the `.snap` file and stops the node by PID. Data sets: JSON-like, log-like and random
 * values (bench/lib/corpus.ts) of 100 B and 1 KiB (below the client's threshold: stored raw),
 * and JSON of 64 KiB (stored compressed by the client). Every value is distinct.
 *
 * It reports the size of both (what the node wrote), then reads the raw one back record by
 * record (one record = one compaction step of ~256 KiB) and measures deflate level 1 (the value
 * codec) on each record's payload: compress and inflate MB/s on one thread (best of 3 passes),
 * which is the CPU a compaction with compression on spends (or saves, for records it skips). With
 * `--board pi4|pi5` (or `--cpus C`) that measuring runs under a CPU quota of one Pi core
 * (bench/lib/pi-core-quota.ts), so the MB/s read as the board's.
 *
 *   npm run bench:snapshot-compress -- [--mib 64] [--board pi4] [--keep]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { deflateSync, inflateSync } from 'node:zlib';
import { connect } from '../src/index.js';
import { FILE_HEADER_BYTES, R_PAYLOAD_BYTES, R_TYPE, RECORD_BATCH, RECORD_HEADER_BYTES } from '../src/persistence/format.js';
import { corpusValue, type CorpusKind } from './lib/corpus.js';
import { piCoreQuota, runUnderQuota, UNDER_QUOTA_ENV } from './lib/pi-core-quota.js';
import { startPikv } from './lib/servers.js';

interface DataSet { kind: CorpusKind; value_bytes: number }
const DATA_SETS: DataSet[] = [
  { kind: 'json', value_bytes: 100 }, { kind: 'log', value_bytes: 100 }, { kind: 'random', value_bytes: 100 },
  { kind: 'json', value_bytes: 1024 }, { kind: 'log', value_bytes: 1024 }, { kind: 'random', value_bytes: 1024 },
  { kind: 'json', value_bytes: 64 * 1024 },
];
const BATCH_OPS = 256;
const PASSES = 3;

interface Measured { file_bytes: number; records: number; deflated_bytes: number; compress_mb_s: number; inflate_mb_s: number }

/** The BATCH payloads of a snapshot file (checksums were checked when the node wrote and could read it; not again here). */
function batchPayloads(file: Buffer): Buffer[] {
  const payloads: Buffer[] = [];
  for (let at = FILE_HEADER_BYTES; at + RECORD_HEADER_BYTES <= file.length;) {
    const bytes = file.readUInt32LE(at + R_PAYLOAD_BYTES);
    if (file[at + R_TYPE] === RECORD_BATCH) payloads.push(file.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + bytes));
    at += RECORD_HEADER_BYTES + bytes;
  }
  return payloads;
}

/** Best MB/s (of raw bytes) over PASSES passes of `work` over every payload. */
function bestRate(raw_bytes: number, work: () => void): number {
  let best = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    const started = process.hrtime.bigint();
    work();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    best = Math.max(best, raw_bytes / seconds / 1e6);
  }
  return best;
}

function measure(path: string): Measured {
  const file = readFileSync(path);
  const payloads = batchPayloads(file);
  const raw_bytes = payloads.reduce((sum, p) => sum + p.length, 0);
  const deflated = payloads.map((p) => deflateSync(p, { level: 1 }));
  for (let i = 0; i < payloads.length; i++) if (!inflateSync(deflated[i]!).equals(payloads[i]!)) throw new Error(`record ${i} of ${path} does not round-trip`);
  return {
    file_bytes: file.length, records: payloads.length,
    deflated_bytes: file.length - raw_bytes + deflated.reduce((sum, d) => sum + d.length, 0),
    compress_mb_s: bestRate(raw_bytes, () => { for (const p of payloads) deflateSync(p, { level: 1 }); }),
    inflate_mb_s: bestRate(raw_bytes, () => { for (const d of deflated) inflateSync(d); }),
  };
}

/** A node, `mib` MiB of distinct values written twice (so it compacts), its snapshot's path once written. */
async function makeSnapshot(set: DataSet, mib: number, dir: string, compress: 'on' | 'off'): Promise<string> {
  const server = await startPikv({
    workers: 1, max_memory: `${Math.max(256, mib * 4)}mb`,
    serve_args: ['--data-dir', dir, '--compact-min-bytes', '1mb', '--fsync', 'no', '--snapshot-compress', compress],
  });
  try {
    const kv = await connect(server.url, { request_timeout_ms: 120_000 });
    const keys = Math.max(BATCH_OPS, Math.floor((mib * 1024 * 1024) / set.value_bytes));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < keys; i += BATCH_OPS) {
        const ops = Array.from({ length: Math.min(BATCH_OPS, keys - i) }, (_, j) => ({
          op: 'put' as const, key: `snap:${set.kind}:${i + j}`, value: corpusValue(set.kind, set.value_bytes, (i + j) * 2 + round + 1),
        }));
        await kv.batch(ops);
      }
    }
    await kv.close();
    const deadline = Date.now() + 120_000;
    for (;;) {
      const snap = readdirSync(dir).find((name) => name.endsWith('.snap'));
      if (snap !== undefined) return join(dir, snap);
      if (Date.now() > deadline) throw new Error(`no snapshot in ${dir} after 120 s:\n${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await server.stop();
  }
}

const mib_text = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mib: { type: 'string', default: '64' }, board: { type: 'string' }, cpus: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log('usage: npm run bench:snapshot-compress -- [--mib 64] [--board pi4|pi5 | --cpus C] [--keep]');
    return;
  }
  const mib = Number(values.mib);
  const quota = piCoreQuota(values.board, values.cpus);
  const root = mkdtempSync(join(tmpdir(), 'pikv-snapshot-bench-'));
  try {
    const snapshots: { set: DataSet; path: string }[] = [];
    console.log('What the node wrote (--snapshot-compress off / on):');
    console.log('| values | snapshot MiB off | on | off / on |');
    console.log('|---|---:|---:|---:|');
    for (const set of DATA_SETS) {
      const off = await makeSnapshot(set, mib, join(root, `${set.kind}-${set.value_bytes}`), 'off');
      const on = await makeSnapshot(set, mib, join(root, `${set.kind}-${set.value_bytes}-on`), 'on');
      const [off_bytes, on_bytes] = [readFileSync(off).length, readFileSync(on).length];
      console.log(`| ${set.kind} ${set.value_bytes} B | ${mib_text(off_bytes)} | ${mib_text(on_bytes)} | ${(off_bytes / on_bytes).toFixed(2)} |`);
      snapshots.push({ set, path: off });
    }
    const argv = [fileURLToPath(import.meta.url), ...snapshots.flatMap((s) => ['--measure', s.path])];
    console.log(`\ndeflate-1 of the raw snapshot's records on one thread, ${quota === null ? 'no quota (this machine\'s core)' : `under a quota of ${quota.description}`}:`);
    console.log('| values | snapshot MiB | records | deflate-1 MiB | ratio | compress MB/s | inflate MB/s |');
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    if (quota !== null) {
      // The child prints the rows itself (its stdout is inherited).
      process.exitCode = runUnderQuota(quota, argv);
    } else {
      for (const { set, path } of snapshots) {
        const m = measure(path);
        console.log(`| ${set.kind} ${set.value_bytes} B | ${mib_text(m.file_bytes)} | ${m.records} | ${mib_text(m.deflated_bytes)} | ${(m.file_bytes / m.deflated_bytes).toFixed(2)} | ` +
          `${m.compress_mb_s.toFixed(0)} | ${m.inflate_mb_s.toFixed(0)} |`);
      }
    }
  } finally {
    if (values.keep === true) console.log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
}

if (process.env[UNDER_QUOTA_ENV] !== undefined && process.argv.includes('--measure')) {
  // Under the quota: rows as they are measured.
  const paths = process.argv.flatMap((arg, i) => (process.argv[i - 1] === '--measure' ? [arg] : []));
  for (const path of paths) {
    const m = measure(path);
    const name = path.split('/').at(-2)!;
    console.log(`| ${name.replace('-', ' ')} B | ${mib_text(m.file_bytes)} | ${m.records} | ${mib_text(m.deflated_bytes)} | ${(m.file_bytes / m.deflated_bytes).toFixed(2)} | ` +
      `${m.compress_mb_s.toFixed(0)} | ${m.inflate_mb_s.toFixed(0)} |`);
  }
} else {
  await main();
}

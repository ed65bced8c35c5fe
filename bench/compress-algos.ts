/**
 * Which codec should pikv compress values with? (issue #13)
 *
 * For each codec available on this Node, each corpus kind (bench/lib/corpus.ts: JSON-like, log-like,
 * random bytes) and each size (4 KiB, 64 KiB, 1 MiB): the ratio (raw / compressed bytes) and
 * the throughput of compression and decompression on one core, in MB of raw value per second.
 * One thread does the work, so the numbers are per core; the client's pool and the node's
 * decompress pool scale them by their threads.
 *
 * Candidates: deflate (zlib wrapper, levels 1 and 6) and brotli (quality 1 and 4), built into
 * Node; zstd where this Node's zlib has it (22.15+; not Node 20); LZ4 through lz4-napi, a
 * napi-rs binding with prebuilt binaries for linux-x64 and linux-arm64 (a devDependency:
 * measured here, not used by pikv). Each is skipped with a line saying why if it is missing.
 *
 *   node dist/bench/compress-algos.js [--seconds S] [--json FILE] [--board pi4|pi5 | --cpus C]
 * --seconds: time per measurement (default 0.5; the full table is 3 kinds x 3 sizes x codecs).
 * --board: run the measurements under a CPU quota of one Pi core (bench/lib/pi-core-quota.ts:
 * this machine's sysbench score over the board's), so MB/s read as a Pi core's; --cpus C sets
 * the quota directly. Needs root and a cgroup cpu controller (as bench:cluster).
 * Run it on an idle machine; a smoke run (--seconds 0.05) only shows that it works.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { corpusValue, CORPUS_KINDS, type CorpusKind } from './lib/corpus.js';
import { piCoreQuota, runUnderQuota, UNDER_QUOTA_ENV } from './lib/pi-core-quota.js';

interface Codec {
  name: string;
  /** Where it comes from, and whether the Pi image (arm64) has it. */
  source: string;
  encode(value: Buffer): Buffer;
  decode(encoded: Buffer, raw_bytes: number): Buffer;
}

interface Row {
  codec: string;
  kind: CorpusKind;
  value_bytes: number;
  ratio: number;
  compress_mb_per_s: number;
  decompress_mb_per_s: number;
}

const SIZES = [4 * 1024, 64 * 1024, 1024 * 1024];

function builtInCodecs(): Codec[] {
  const codecs: Codec[] = [
    { name: 'deflate-1', source: 'node:zlib (built in, every arch)', encode: (v) => zlib.deflateSync(v, { level: 1 }), decode: (e) => zlib.inflateSync(e) },
    { name: 'deflate-6', source: 'node:zlib (built in, every arch)', encode: (v) => zlib.deflateSync(v, { level: 6 }), decode: (e) => zlib.inflateSync(e) },
    {
      name: 'brotli-1', source: 'node:zlib (built in, every arch)',
      encode: (v) => zlib.brotliCompressSync(v, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: v.length } }),
      decode: (e) => zlib.brotliDecompressSync(e),
    },
    {
      name: 'brotli-4', source: 'node:zlib (built in, every arch)',
      encode: (v) => zlib.brotliCompressSync(v, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: v.length } }),
      decode: (e) => zlib.brotliDecompressSync(e),
    },
  ];
  // zstd arrived in node:zlib with Node 22.15 / 23.8.
  const z = zlib as unknown as { zstdCompressSync?: (v: Buffer) => Buffer; zstdDecompressSync?: (v: Buffer) => Buffer };
  if (typeof z.zstdCompressSync === 'function' && typeof z.zstdDecompressSync === 'function') {
    codecs.push({ name: 'zstd', source: 'node:zlib (Node >= 22.15)', encode: (v) => z.zstdCompressSync!(v), decode: (e) => z.zstdDecompressSync!(e) });
  } else {
    console.log(`skipped zstd: node:zlib of Node ${process.version} has no zstd (22.15+); @mongodb-js/zstd 7 downloads its binary at install, which this workplace cannot`);
  }
  return codecs;
}

function lz4Codec(): Codec | null {
  try {
    const lz4 = createRequire(import.meta.url)('lz4-napi') as { compressSync(v: Buffer): Buffer; uncompressSync(v: Buffer): Buffer };
    return { name: 'lz4', source: 'lz4-napi (napi-rs; prebuilt linux-x64 and linux-arm64-gnu)', encode: (v) => lz4.compressSync(v), decode: (e) => lz4.uncompressSync(e) };
  } catch (error) {
    console.log(`skipped lz4: lz4-napi does not load here (${(error as Error).message.split('\n')[0]})`);
    return null;
  }
}

/** MB of raw value per second: runs `work` for at least `seconds`. */
function throughput(raw_bytes: number, seconds: number, work: () => void): number {
  work(); // warm-up
  let runs = 0;
  const started = process.hrtime.bigint();
  let elapsed_s = 0;
  do {
    work();
    runs++;
    elapsed_s = Number(process.hrtime.bigint() - started) / 1e9;
  } while (elapsed_s < seconds);
  return (raw_bytes * runs) / elapsed_s / 1e6;
}

function main(): void {
  const args = process.argv.slice(2);
  const flag = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const quota = process.env[UNDER_QUOTA_ENV] === undefined ? piCoreQuota(flag('--board'), flag('--cpus')) : null;
  if (quota !== null) {
    console.log(`compress-algos: under a quota of ${quota.description}`);
    process.exit(runUnderQuota(quota, [fileURLToPath(import.meta.url), ...args]));
  }
  const quota_note = process.env[UNDER_QUOTA_ENV] ?? 'no quota';
  const seconds = Number(args[args.indexOf('--seconds') + 1] ?? '0.5');
  const json_path = args.includes('--json') ? args[args.indexOf('--json') + 1]! : null;
  const per = args.includes('--seconds') ? seconds : 0.5;
  const codecs = builtInCodecs();
  const lz4 = lz4Codec();
  if (lz4 !== null) codecs.push(lz4);
  const rows: Row[] = [];
  console.log(`compress-algos: ${per} s per measurement, one thread, Node ${process.version} on ${process.arch}, ${quota_note}`);
  console.log('codec      kind    size      ratio  compress MB/s  decompress MB/s');
  for (const codec of codecs) {
    for (const kind of CORPUS_KINDS) {
      for (const size of SIZES) {
        const value = corpusValue(kind, size, 1);
        const encoded = codec.encode(value);
        if (!codec.decode(encoded, size).equals(value)) throw new Error(`${codec.name} does not round-trip ${kind} ${size}`);
        const row: Row = {
          codec: codec.name, kind, value_bytes: size, ratio: size / encoded.length,
          compress_mb_per_s: throughput(size, per, () => codec.encode(value)),
          decompress_mb_per_s: throughput(size, per, () => codec.decode(encoded, size)),
        };
        rows.push(row);
        console.log(`${codec.name.padEnd(10)} ${kind.padEnd(7)} ${String(size).padStart(8)} ${row.ratio.toFixed(2).padStart(8)} ${row.compress_mb_per_s.toFixed(0).padStart(14)} ${row.decompress_mb_per_s.toFixed(0).padStart(16)}`);
      }
    }
  }
  for (const codec of codecs) console.log(`${codec.name}: ${codec.source}`);
  if (json_path !== null) writeFileSync(json_path, JSON.stringify({ node: process.version, arch: process.arch, quota: quota_note, seconds_per_measurement: per, rows }, null, 2));
}

main();

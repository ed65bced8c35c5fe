/**
 * Value compression (issue #13, docs/PROTOCOL.md "Value compression"), against real `pikv
 * serve` processes: the client library compresses large values in its piscina pool and stores
 * them with a codec id; every other reader (a client that does not compress, an old client
 * without `ac`, redis-cli over RESP, curl over HTTP) reads the same plain bytes, because the
 * node decodes for them. A raw peek (a request that announces the codec) shows what is stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, connectCluster, ErrorCode, type PikvClient } from '../src/index.js';
import { Op, Status } from '../src/protocol/constants.js';
import { encodeValue, ValueCodec, VALUE_CODECS_KNOWN_MASK } from '../src/protocol/value-codec.js';
import { corpusValue, CORPUS_KINDS } from '../bench/lib/corpus.js';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { curl, httpBase, NO_CURL } from './helpers/http.js';
import { findRedisCli, runTool } from './helpers/resp-socket.js';
import { temporaryDataDir } from './helpers/persistence.js';
import { etcdMissing } from './helpers/etcd.js';
import { clusters, startThree, waitFor, withCluster } from './helpers/etcd-cluster.js';
import { FORMAT_VERSION } from '../src/persistence/format.js';

const NO_REDIS_CLI = findRedisCli() === null ? 'redis-cli is not installed (Debian: apt-get install redis-tools)' : false;
const SIZES = [4096, 64 * 1024, 1024 * 1024];

/** What the node stores for `key`: its bytes and codec id, read by a request with `ac`. */
async function peek(kv: PikvClient, key: string): Promise<{ codec: number; bytes: Buffer } | null> {
  const results = await kv.batchColumns({
    op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(Buffer.byteLength(key)), value_lengths: new Uint32Array(1),
    keys: Buffer.from(key), values: Buffer.alloc(0), accept_codecs: VALUE_CODECS_KNOWN_MASK,
  });
  if (results.status[0] === Status.NOT_FOUND) return null;
  assert.equal(results.status[0], Status.OK);
  return { codec: results.value_codec?.[0] ?? 0, bytes: Buffer.from(results.values) };
}

/** A GET the way a client from before compression sends it: no `ac`. */
async function oldClientGet(kv: PikvClient, key: string): Promise<{ status: number; codec: number | undefined; bytes: Buffer }> {
  const results = await kv.batchColumns({
    op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(Buffer.byteLength(key)), value_lengths: new Uint32Array(1),
    keys: Buffer.from(key), values: Buffer.alloc(0),
  });
  return { status: results.status[0]!, codec: results.value_codec?.[0], bytes: Buffer.from(results.values) };
}

/** Stores `bytes` under `key` with codec id `codec`, as given (a PUT with `vc`). */
async function putEncoded(kv: PikvClient, key: string, bytes: Uint8Array, codec: number): Promise<number> {
  const results = await kv.batchColumns({
    op: Uint8Array.of(Op.PUT), key_lengths: Uint32Array.of(Buffer.byteLength(key)), value_lengths: Uint32Array.of(bytes.length),
    keys: Buffer.from(key), values: bytes, value_codec: Uint8Array.of(codec),
  });
  return results.status[0]!;
}

describe('value compression', { timeout: 180_000 }, () => {
  let server: ServerProcess;
  let compressing: PikvClient;
  let plain: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '2', '--resp-port', '0']);
    compressing = await connect(server.url, { compress_threads: 2 });
    plain = await connect(server.url, { compress_min_bytes: 0 });
  });

  after(async () => {
    await compressing?.close();
    await plain?.close();
    await server?.stop();
  });

  it('round-trips JSON, log and random values of 4 KiB, 64 KiB and 1 MiB; compressible ones are stored compressed, random ones raw', async () => {
    for (const kind of CORPUS_KINDS) {
      for (const size of SIZES) {
        const key = `rt:${kind}:${size}`;
        const value = corpusValue(kind, size, size);
        await compressing.put(key, value);
        assert.deepEqual(Buffer.from((await compressing.get(key))!), value, `${key} through the compressing client`);
        assert.deepEqual(Buffer.from((await plain.get(key))!), value, `${key} through a client that does not compress`);
        const stored = (await peek(plain, key))!;
        if (kind === 'random') {
          assert.equal(stored.codec, ValueCodec.RAW, `${key} is stored raw`);
          assert.equal(stored.bytes.length, size);
        } else {
          assert.equal(stored.codec, ValueCodec.DEFLATE, `${key} is stored compressed`);
          assert.ok(stored.bytes.length <= size - size / 8, `${key}: ${stored.bytes.length} stored bytes for ${size}`);
        }
      }
    }
  });

  it("never hands an incompressible value to the pool: the sample is taken on the caller's thread", async () => {
    // Measured before: random 4 KiB PUTs ran at 0.19x of compression off, each value copied to a
    // pool thread only to be sampled there and sent back raw (bench:compress-values).
    const kv = await connect(server.url, { compress_threads: 1 });
    try {
      const values = Array.from({ length: 8 }, (_, i) => corpusValue('random', 65536, i + 1));
      await Promise.all(values.map((value, i) => kv.put(`incompressible:${i}`, value)));
      await kv.compressColumns({ op: Uint8Array.of(Op.PUT), key_lengths: Uint32Array.of(1), value_lengths: Uint32Array.of(65536), keys: Buffer.from('z'), values: values[0]! });
      assert.equal(kv.compress_threads_running, 0, 'no pool thread was started for random values');
      assert.equal((await peek(kv, 'incompressible:3'))!.codec, ValueCodec.RAW);
      assert.deepEqual(Buffer.from((await kv.get('incompressible:3'))!), values[3]);
    } finally {
      await kv.close();
    }
  });

  it('compresses a value at the threshold and not one just below it', async () => {
    const kv = await connect(server.url, { compress_min_bytes: 5000, compress_threads: 1 });
    try {
      await kv.put('th:below', corpusValue('json', 4999));
      await kv.put('th:at', corpusValue('json', 5000));
      assert.equal((await peek(kv, 'th:below'))!.codec, ValueCodec.RAW);
      assert.equal((await peek(kv, 'th:at'))!.codec, ValueCodec.DEFLATE);
      assert.deepEqual(Buffer.from((await kv.get('th:at'))!), corpusValue('json', 5000));
    } finally {
      await kv.close();
    }
  });

  it('keeps the order of ops on one key while a value is in the pool', async () => {
    const big = corpusValue('log', 256 * 1024, 7);
    const writes = [compressing.put('order:k', big), compressing.put('order:k', 'small'), compressing.get('order:k')];
    const [, , read] = await Promise.all(writes);
    assert.equal(Buffer.from(read as Uint8Array).toString(), 'small');
    const [, got] = await Promise.all([compressing.put('order:j', 'first'), compressing.get('order:j'), compressing.put('order:j', big)]);
    assert.equal(Buffer.from(got as Uint8Array).toString(), 'first');
    assert.deepEqual(Buffer.from((await plain.get('order:j'))!), big);
  });

  it('compresses the values of one batch in parallel and answers them in order', async () => {
    const ops = Array.from({ length: 24 }, (_, i) => ({ op: 'put' as const, key: `batch:${i}`, value: corpusValue(i % 2 === 0 ? 'json' : 'random', 64 * 1024, i) }));
    const results = await compressing.batch(ops);
    assert.ok(results.every((result) => result.code === 'OK'));
    const reads = await plain.batch(ops.map((op) => ({ op: 'get' as const, key: op.key })));
    reads.forEach((read, i) => assert.deepEqual(Buffer.from(read.value!), ops[i]!.value, `batch:${i}`));
  });

  it('gives a client without `ac` (an old client) the plain bytes, never a codec id', async () => {
    const value = corpusValue('json', 64 * 1024, 3);
    await compressing.put('old:k', value);
    assert.equal((await peek(plain, 'old:k'))!.codec, ValueCodec.DEFLATE);
    const read = await oldClientGet(plain, 'old:k');
    assert.equal(read.status, Status.OK);
    assert.equal(read.codec, undefined);
    assert.deepEqual(read.bytes, value);
  });

  it('serves values the client library compressed to curl over HTTP, and curl writes to the client library', { skip: NO_CURL }, async () => {
    const value = corpusValue('json', 1024 * 1024, 11);
    await compressing.put('http:k', value);
    const got = await curl([`${httpBase(server.url)}/v1/kv/http:k`]);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, value);
    const written = corpusValue('log', 64 * 1024, 12);
    const put = await curl(['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '@-', `${httpBase(server.url)}/v1/kv/http:w`], written);
    assert.ok(put.status === 200 || put.status === 204, `PUT answered ${put.status}: ${put.body.toString()}`);
    assert.deepEqual(Buffer.from((await compressing.get('http:w'))!), written);
  });

  it('serves values the client library compressed to redis-cli GET over RESP', { skip: NO_REDIS_CLI }, async () => {
    const value = corpusValue('json', 64 * 1024, 13);
    await compressing.put('resp:k', value);
    assert.equal((await peek(plain, 'resp:k'))!.codec, ValueCodec.DEFLATE);
    const result = await runTool('redis-cli', ['-p', String(server.resp_port), 'GET', 'resp:k']);
    assert.equal(result.stdout, `${value.toString()}\n`);
    const mget = await runTool('redis-cli', ['-p', String(server.resp_port), 'MGET', 'resp:k', 'missing:k']);
    assert.equal(mget.stdout, `${value.toString()}\n\n`);
    // The old value a conditional op answers (GETSET, GETDEL) is decoded the same way.
    const getset = await runTool('redis-cli', ['-p', String(server.resp_port), 'GETSET', 'resp:k', 'small']);
    assert.equal(getset.stdout, `${value.toString()}\n`);
    await compressing.put('resp:k2', value);
    const getdel = await runTool('redis-cli', ['-p', String(server.resp_port), 'GETDEL', 'resp:k2']);
    assert.equal(getdel.stdout, `${value.toString()}\n`);
  });

  it('answers VALUE_CORRUPT for a compressed value that does not decode, to every kind of reader, and keeps serving', async () => {
    const good = Buffer.from(encodeValue(ValueCodec.DEFLATE, corpusValue('json', 64 * 1024, 21)));
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0xff; // the Adler-32 trailer no longer matches (or the stream breaks)
    assert.equal(await putEncoded(plain, 'bad:k', bad, ValueCodec.DEFLATE), Status.OK);
    await assert.rejects(compressing.get('bad:k'), (error: { code: string }) => error.code === ErrorCode.VALUE_CORRUPT);
    assert.equal((await oldClientGet(plain, 'bad:k')).status, Status.VALUE_CORRUPT);
    const results = await plain.batch([{ op: 'get', key: 'bad:k' }, { op: 'get', key: 'rt:json:4096' }]);
    assert.equal(results[0]!.code, ErrorCode.VALUE_CORRUPT);
    assert.equal(results[1]!.code, 'OK');
    if (NO_CURL === false) {
      const got = await curl([`${httpBase(server.url)}/v1/kv/bad:k`]);
      assert.equal(JSON.parse(got.body.toString()).error, 'VALUE_CORRUPT');
    }
    if (NO_REDIS_CLI === false) {
      const result = await runTool('redis-cli', ['-p', String(server.resp_port), 'GET', 'bad:k']);
      assert.match(result.stdout, /VALUE_CORRUPT/);
    }
    // A codec id the node does not know, or one on an op other than PUT, is refused.
    assert.equal(await putEncoded(plain, 'bad:codec', good, 6), Status.BAD_OP);
    await plain.ping();
  });

  it('pikv load compresses large values the same way, and keeps the last of two writes of a key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pikv-load-compress-'));
    try {
      const lines: string[] = [];
      for (let i = 0; i < 40; i++) lines.push(`load:${i}\t${corpusValue('json', 8192 + i, 40 + i).toString()}`);
      lines.push('load:small\tsmall value');
      lines.push(`load:0\tthe last write of load:0`);
      const path = join(dir, 'values.tsv');
      writeFileSync(path, `${lines.join('\n')}\n`);
      const loaded = await runCli(['load', path, '--url', server.url, '--no-progress', '--batch', '8']);
      assert.equal(loaded.code, 0, loaded.stderr);
      for (let i = 1; i < 40; i++) {
        const stored = (await peek(plain, `load:${i}`))!;
        assert.equal(stored.codec, ValueCodec.DEFLATE, `load:${i}`);
        assert.deepEqual(Buffer.from((await plain.get(`load:${i}`))!), corpusValue('json', 8192 + i, 40 + i));
      }
      assert.equal(Buffer.from((await plain.get('load:0'))!).toString(), 'the last write of load:0');
      assert.equal((await peek(plain, 'load:small'))!.codec, ValueCodec.RAW);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shuts the pool down with close()', async () => {
    const kv = await connect(server.url, { compress_threads: 2 });
    assert.equal(kv.compress_threads_running, 0, 'no thread before the first large value');
    await kv.put('pool:k', corpusValue('json', 128 * 1024));
    assert.ok(kv.compress_threads_running >= 1);
    await kv.close();
    assert.equal(kv.compress_threads_running, 0);
    await assert.rejects(kv.put('pool:k', corpusValue('json', 128 * 1024)), (error: { code: string }) => error.code === ErrorCode.CLIENT_CLOSED);
  });
});

describe('compressed values in a data dir', { timeout: 120_000 }, () => {
  it('stay compressed across a restart, through the log and through a snapshot (compaction), and read back plain', async () => {
    const dir = temporaryDataDir('compression');
    const value = corpusValue('log', 256 * 1024, 31);
    // A small compaction threshold: rewriting one key passes it, so a snapshot is written.
    const args = ['--workers', '1', '--data-dir', dir, '--compact-min-bytes', '64kb'];
    let server = await startServer(args);
    try {
      const kv = await connect(server.url);
      for (let round = 0; round < 12; round++) await kv.put('disk:k', corpusValue('log', 256 * 1024, 1000 + round));
      await kv.put('disk:k', value);
      await kv.put('disk:r', corpusValue('random', 8192, 32));
      const compactionsNow = async (): Promise<number> => ((await kv.stats())['per_worker'] as { compactions: number }[])[0]!.compactions;
      // Random (raw) rewrites of another key pass the threshold again: the next snapshot holds
      // disk:k's last value, which no later log record repeats.
      const before = await compactionsNow();
      for (let round = 0; round < 24; round++) await kv.put('disk:f', corpusValue('random', 16 * 1024, 2000 + round));
      await waitFor(async () => ((await compactionsNow()) > before ? true : null), 20_000, 100);
      await kv.close();
      await server.stop();
      server = await startServer(args);
      const reader = await connect(server.url, { compress_min_bytes: 0 });
      assert.equal((await peek(reader, 'disk:k'))!.codec, ValueCodec.DEFLATE);
      assert.equal((await peek(reader, 'disk:r'))!.codec, ValueCodec.RAW);
      assert.deepEqual((await oldClientGet(reader, 'disk:k')).bytes, value);
      assert.deepEqual(Buffer.from((await reader.get('disk:r'))!), corpusValue('random', 8192, 32));
      await reader.close();
    } finally {
      await server.stop();
    }
  });
});

describe('a data directory written before compression (format version 2)', { timeout: 60_000 }, () => {
  it('loads with its expiries, takes compressed values, and loads again as version 3', async () => {
    const dir = temporaryDataDir('data-v2');
    const fixture = fileURLToPath(new URL('../../test/fixtures/data-v2/', import.meta.url));
    for (const name of readdirSync(fixture)) if (name !== 'README.md') copyFileSync(join(fixture, name), join(dir, name));
    assert.match(readFileSync(join(dir, 'MANIFEST'), 'utf8'), /"version":2/);
    const check = async (kv: PikvClient): Promise<void> => {
      assert.equal(Buffer.from((await kv.get('v2-0'))!).toString(), 'value-0');
      assert.equal(Buffer.from((await kv.get('v2-49'))!).toString(), 'value-49');
      assert.equal(await kv.get('v2-7'), undefined);
      assert.equal(Buffer.from((await kv.get('v2-8'))!).toString(), 'overwritten');
      assert.equal(await kv.get('short'), undefined);
      const ttl_ms = (await kv.ttl('ttl-3'))!;
      assert.ok(ttl_ms > 5 * 365 * 86400 * 1000, `ttl-3 keeps its absolute expiry: ${ttl_ms} ms left`);
      assert.equal(Buffer.from((await kv.get('ttl-3'))!).toString(), 'lives-3');
      const big = (await peek(kv, 'big'))!;
      assert.equal(big.codec, ValueCodec.RAW);
      assert.equal(JSON.parse(big.bytes.toString()).length, 400);
    };
    let server = await startServer(['--workers', '2', '--data-dir', dir]);
    try {
      let kv = await connect(server.url);
      await check(kv);
      const value = corpusValue('json', 32 * 1024, 77);
      await kv.put('new-compressed', value);
      assert.equal((await peek(kv, 'new-compressed'))!.codec, ValueCodec.DEFLATE);
      assert.match(readFileSync(join(dir, 'MANIFEST'), 'utf8'), new RegExp(`"version":${FORMAT_VERSION}\\b`));
      await kv.close();
      await server.stop();
      server = await startServer(['--workers', '2', '--data-dir', dir]);
      kv = await connect(server.url);
      await check(kv);
      assert.equal((await peek(kv, 'new-compressed'))!.codec, ValueCodec.DEFLATE);
      assert.deepEqual(Buffer.from((await kv.get('new-compressed'))!), value);
      await kv.close();
    } finally {
      await server.stop();
    }
  });
});

const NO_ETCD = etcdMissing() ?? false;

/** Sum over nodes of a per-worker STATS field. */
async function perWorkerSum(urls: string[], field: 'keys' | 'payload_bytes'): Promise<number> {
  let total = 0;
  for (const url of urls) {
    const kv = await connect(url, { compress_min_bytes: 0 });
    try {
      const workers = (await kv.stats())['per_worker'] as Record<string, number>[];
      for (const worker of workers) total += worker[field]!;
    } finally {
      await kv.close();
    }
  }
  return total;
}

describe('compressed values in a replicated cluster (etcd, 2 copies)', { timeout: 150_000, skip: NO_ETCD }, () => {
  after(async () => {
    for (const cluster of clusters) await cluster.stop();
  });

  it('copies travel and are stored compressed, and a backup serves them plain after the primary is killed', async () => {
    const KEYS = 30;
    const VALUE_BYTES = 64 * 1024;
    await withCluster('compression-replication', async (cluster) => {
      await startThree(cluster, false);
      const urls = cluster.urls();
      // Even keys through a node client, odd ones through the ring-aware cluster client: both compress.
      const writer = await connect(urls[0]!, { compress_threads: 1 });
      const cluster_writer = await connectCluster([urls[0]!], { compress_threads: 1 });
      const values = Array.from({ length: KEYS }, (_, i) => corpusValue(i % 2 === 0 ? 'json' : 'log', VALUE_BYTES, 100 + i));
      try {
        for (let i = 0; i < KEYS; i++) {
          const put = i % 2 === 0 ? () => writer.put(`rep:${i}`, values[i]!) : () => cluster_writer.put(`rep:${i}`, values[i]!);
          await waitFor(() => put().then(() => true, () => null), 20_000, 100);
        }
      } finally {
        await writer.close();
        await cluster_writer.close();
      }
      assert.equal(await perWorkerSum(urls, 'keys'), 2 * KEYS, 'two copies of every key');
      const payload = await perWorkerSum(urls, 'payload_bytes');
      assert.ok(payload < (2 * KEYS * VALUE_BYTES) / 2, `every copy is stored compressed: ${payload} payload bytes for ${2 * KEYS} copies of ${VALUE_BYTES} B`);
      await cluster.kill('a');
      const reader = await connect(urls[1]!, { compress_min_bytes: 0 });
      try {
        for (let i = 0; i < KEYS; i++) {
          const value = await waitFor(() => reader.get(`rep:${i}`).then((v) => v ?? null, () => null), 30_000, 100);
          assert.deepEqual(Buffer.from(value), values[i], `rep:${i} after the kill`);
          const old = await oldClientGet(reader, `rep:${i}`);
          assert.deepEqual(old.bytes, values[i], `rep:${i} for a client without ac`);
        }
      } finally {
        await reader.close();
      }
      const cluster_reader = await connectCluster([urls[1]!]);
      try {
        const reads = await cluster_reader.batch(values.map((_, i) => ({ op: 'get' as const, key: `rep:${i}` })));
        reads.forEach((read, i) => assert.deepEqual(Buffer.from(read.value!), values[i], `rep:${i} through the cluster client`));
      } finally {
        await cluster_reader.close();
      }
    }, ['--replicas', '2']);
  });
});

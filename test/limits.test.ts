/**
 * Every limit a node enforces, each answered with its stable error code (or close code), exactly
 * at the limit accepted, and the connection still open afterwards where the protocol says so.
 *
 * Each describe starts its own `pikv serve` with the flags it tests; tests that need frames the
 * client library would never send (more ops than allowed, oversized frames, pipelining without
 * reading) speak the wire protocol over a raw `ws` socket.
 */
import assert from 'node:assert/strict';
import { connect as connectTcp, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Encoder } from 'cbor-x';
import { connect, ErrorCode, Op, Status, WireCodec, type PikvClient } from '../src/index.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { RawSocket, delay, waitFor } from './helpers/raw-socket.js';

const codec = new WireCodec();
const cbor = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true, pack: false });
const KIB = 1024;
const MIB = 1024 * 1024;

describe('key_bytes_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '2', '--key-bytes-max', '100']);
    kv = await connect(server.url);
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0);
  });

  it('refuses a key one byte over the default 1 KiB with KEY_TOO_LARGE for PUT, GET and DELETE, and stores one of exactly 1 KiB', async () => {
    const defaults = await startServer(['--workers', '1']);
    const client = await connect(defaults.url);
    try {
      const at_limit = 'k'.repeat(KIB);
      const over_limit = 'k'.repeat(KIB + 1);
      const results = await client.batch([
        { op: 'put', key: at_limit, value: 'at the limit' },
        { op: 'put', key: over_limit, value: 'over the limit' },
        { op: 'get', key: over_limit },
        { op: 'delete', key: over_limit },
        { op: 'get', key: at_limit },
      ]);
      assert.deepEqual(results.map((result) => result.code), ['OK', 'KEY_TOO_LARGE', 'KEY_TOO_LARGE', 'KEY_TOO_LARGE', 'OK']);
      assert.equal(Buffer.from(results[4]!.value!).toString(), 'at the limit');
      // A lone GET may take the main thread's fast read path; the limit holds there too.
      await assert.rejects(client.get(over_limit), { code: ErrorCode.KEY_TOO_LARGE });
      await client.ping();
    } finally {
      await client.close();
      assert.equal(await defaults.stop(), 0);
    }
  });

  it('applies --key-bytes-max 100: 101 bytes is KEY_TOO_LARGE, 100 bytes is stored, and the connection stays open', async () => {
    const results = await kv.batch([
      { op: 'put', key: 'x'.repeat(101), value: 'no' },
      { op: 'put', key: 'x'.repeat(100), value: 'yes' },
      { op: 'get', key: 'x'.repeat(101) },
      { op: 'delete', key: 'x'.repeat(101) },
    ]);
    assert.deepEqual(results.map((result) => result.code), ['KEY_TOO_LARGE', 'OK', 'KEY_TOO_LARGE', 'KEY_TOO_LARGE']);
    assert.equal(Buffer.from((await kv.get('x'.repeat(100)))!).toString(), 'yes');
    assert.equal(await kv.delete('x'.repeat(100)), true);
  });
});

describe('value_bytes_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '2', '--value-bytes-max', '64kb', '--response-bytes-max', '160kb']);
    // Limits count the bytes sent and stored: compression would shrink these repetitive values.
    kv = await connect(server.url, { compress_min_bytes: 0 });
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0);
  });

  it('refuses a value one byte over --value-bytes-max 64kb with VALUE_TOO_LARGE and stores one of exactly 64 KiB', async () => {
    const at_limit = Buffer.alloc(64 * KIB, 0x61);
    const results = await kv.batch([
      { op: 'put', key: 'big', value: Buffer.alloc(64 * KIB + 1, 0x62) },
      { op: 'put', key: 'exact', value: at_limit },
      { op: 'get', key: 'big' },
    ]);
    assert.deepEqual(results.map((result) => result.code), ['VALUE_TOO_LARGE', 'OK', 'NOT_FOUND']);
    assert.ok(Buffer.from((await kv.get('exact'))!).equals(at_limit));
    await assert.rejects(kv.put('big', Buffer.alloc(MIB)), { code: ErrorCode.VALUE_TOO_LARGE });
    await kv.ping();
  });

  it('fails GETs past --response-bytes-max 160kb with RESPONSE_TOO_LARGE, on the worker path and the fast path', async () => {
    const value = Buffer.alloc(64 * KIB, 0x63);
    await kv.batch([{ op: 'put', key: 'r1', value }, { op: 'put', key: 'r2', value }, { op: 'put', key: 'r3', value }]);
    // Twenty ops go through the workers; three GETs alone may be answered on the main thread.
    const through_workers = await kv.batch([
      ...Array.from({ length: 17 }, () => ({ op: 'ping' as const })),
      { op: 'get', key: 'r1' }, { op: 'get', key: 'r2' }, { op: 'get', key: 'r3' },
    ]);
    assert.deepEqual(through_workers.slice(17).map((result) => result.code), ['OK', 'OK', 'RESPONSE_TOO_LARGE']);
    const small = await kv.batch([{ op: 'get', key: 'r1' }, { op: 'get', key: 'r2' }, { op: 'get', key: 'r3' }]);
    assert.deepEqual(small.map((result) => result.code), ['OK', 'OK', 'RESPONSE_TOO_LARGE']);
    assert.ok(Buffer.from(small[1]!.value!).equals(value));
  });
});

describe('batch_ops_max and frame_bytes_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '2', '--batch-ops-max', '100', '--frame-bytes-max', '1mb', '--value-bytes-max', '64kb']);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0);
  });

  it('rejects a request of 101 ops under --batch-ops-max 100 with TOO_MANY_OPS, executes one of exactly 100, and keeps the connection open', async () => {
    const socket = await RawSocket.open(server.url);
    socket.send(putRequest(21, 'ops', 101));
    const error = await socket.error();
    assert.deepEqual({ id: error.id, code: error.code }, { id: 21, code: 'TOO_MANY_OPS' });
    socket.send(putRequest(22, 'ops', 100));
    const response = await socket.response();
    assert.equal(response.id, 22);
    assert.deepEqual([...response.status], new Array(100).fill(Status.OK));
    // Nothing of the refused request was applied: its 101st key does not exist.
    socket.send(getRequest(23, ['ops:99', 'ops:100']));
    const read = await socket.response();
    assert.deepEqual([...read.status], [Status.OK, Status.NOT_FOUND]);
    await socket.close();
  });

  it('accepts a frame of exactly --frame-bytes-max 1mb, fields it does not know included', async () => {
    const socket = await RawSocket.open(server.url);
    const frame = paddedRequest(31, MIB);
    assert.equal(frame.length, MIB);
    socket.send(frame);
    const response = await socket.response();
    assert.equal(response.id, 31);
    assert.deepEqual([...response.status], [Status.OK]);
    await socket.close();
  });

  it('closes a connection that sends a frame one byte over --frame-bytes-max with 1009, and serves others meanwhile', async () => {
    const bystander = await RawSocket.open(server.url);
    const socket = await RawSocket.open(server.url);
    socket.send(paddedRequest(32, MIB + 1));
    assert.equal((await socket.closed).code, 1009);
    bystander.send(getRequest(33, ['padded']));
    const response = await bystander.response();
    assert.deepEqual([...response.status], [Status.OK]);
    await bystander.close();
  });
});

describe('connection_requests_inflight_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '2', '--connection-requests-inflight-max', '2']);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0);
  });

  it('answers all of 1000 pipelined requests correctly when the client reads none for a while, then reads', async () => {
    const socket = await RawSocket.open(server.url);
    socket.pauseReading();
    // Requests 2i put key i and 2i+1 reads it back: per-key order holds across requests.
    const value = (i: number): Buffer => Buffer.alloc(4 * KIB, `value ${i};`);
    for (let i = 0; i < 500; i++) {
      socket.send(codec.encodeRequest({
        id: 2 * i, op: Uint8Array.of(Op.PUT), key_lengths: Uint32Array.of(Buffer.byteLength(`inflight:${i}`)),
        value_lengths: Uint32Array.of(4 * KIB), keys: Buffer.from(`inflight:${i}`), values: value(i),
      }));
      socket.send(getRequest(2 * i + 1, [`inflight:${i}`]));
    }
    await delay(500);
    socket.resumeReading();
    const answered = new Set<number>();
    for (let n = 0; n < 1000; n++) {
      const response = await socket.response();
      assert.ok(!answered.has(response.id), `request ${response.id} answered twice`);
      answered.add(response.id);
      assert.deepEqual([...response.status], [Status.OK], `request ${response.id}`);
      if (response.id % 2 === 1) assert.ok(Buffer.from(response.values).equals(value((response.id - 1) / 2)), `request ${response.id}`);
    }
    assert.equal(answered.size, 1000);
    socket.send(getRequest(5000, []));
    assert.equal((await socket.response()).id, 5000, 'the connection stays open');
    await socket.close();
  });
});

describe('connections_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '1', '--connections-max', '2']);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0);
  });

  it('closes the third connection under --connections-max 2 with 1013 TOO_MANY_CONNECTIONS and keeps serving the first two', async () => {
    const first = await RawSocket.open(server.url);
    const second = await RawSocket.open(server.url);
    const third = await RawSocket.open(server.url);
    assert.deepEqual(await third.closed, { code: 1013, reason: 'TOO_MANY_CONNECTIONS' });
    for (const [id, socket] of [[1, first], [2, second]] as const) {
      socket.send(getRequest(id, []));
      assert.equal((await socket.response()).id, id);
    }
    await second.close();
    const replacement = await openAdmitted(server.url);
    replacement.send(getRequest(3, []));
    assert.equal((await replacement.response()).id, 3);
    await replacement.close();
    await first.close();
  });

  it('survives a refused connection that sends a malformed frame before the close handshake ends', async () => {
    const first = await openAdmitted(server.url);
    const second = await openAdmitted(server.url);
    // Handshake and a frame with a reserved opcode in one write: ws reads the frame after the
    // server has refused the connection, while it waits for the client's close frame.
    const refused = await rawUpgradeAndSend(server.url, Buffer.from([0x83, 0x80, 1, 2, 3, 4]));
    await delay(200);
    refused.destroy();
    first.send(getRequest(4, []));
    assert.equal((await first.response()).id, 4);
    assert.equal(server.child.exitCode, null, `the server is still running:\n${server.output()}`);
    await first.close();
    await second.close();
  });
});

describe('--max-memory', { timeout: 60_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '1', '--max-memory', '8mb']);
    // Memory counts the bytes stored: compression would shrink these repetitive values.
    kv = await connect(server.url, { compress_min_bytes: 0 });
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0);
  });

  it('fails puts with OUT_OF_MEMORY once full; gets and deletes still work, and puts succeed again after deletes', async () => {
    const value = (key: string): Buffer => Buffer.alloc(KIB, key);
    const stored: string[] = [];
    let out_of_memory = 0;
    for (let round = 0; round < 100 && out_of_memory === 0; round++) {
      const keys = Array.from({ length: 256 }, (_, i) => `mem:${round * 256 + i}`);
      const results = await kv.batch(keys.map((key) => ({ op: 'put' as const, key, value: value(key) })));
      results.forEach((result, i) => {
        if (result.code === 'OK') stored.push(keys[i]!);
        else if (result.code === 'OUT_OF_MEMORY') out_of_memory++;
        else assert.fail(`put ${keys[i]}: ${result.code}`);
      });
    }
    assert.ok(out_of_memory > 0, `${stored.length} KiB values fit in 8 MiB without OUT_OF_MEMORY`);
    assert.ok(stored.length > 1000, `only ${stored.length} 1 KiB values fit in 8 MiB`);
    await assert.rejects(kv.put('mem:one-more', Buffer.alloc(64 * KIB)), { code: ErrorCode.OUT_OF_MEMORY });

    const full = await nodeStats(kv);
    assert.ok(full.bytes_used <= full.bytes_capacity, `bytes_used ${full.bytes_used} > bytes_capacity ${full.bytes_capacity}`);
    assert.equal(full.bytes_capacity, 8 * MIB);
    assert.equal(full.keys, stored.length);
    assert.ok(full.per_worker[0]!.out_of_memory >= out_of_memory);

    const reads = await kv.batch(stored.map((key) => ({ op: 'get' as const, key })));
    reads.forEach((result, i) => assert.ok(result.code === 'OK' && Buffer.from(result.value!).equals(value(stored[i]!)), stored[i]));

    const deleted = stored.splice(0, Math.ceil(stored.length / 2));
    const deletes = await kv.batch(deleted.map((key) => ({ op: 'delete' as const, key })));
    assert.ok(deletes.every((result) => result.code === 'OK'), 'every delete of a stored key succeeds');

    const fresh = Array.from({ length: 200 }, (_, i) => `mem:fresh:${i}`);
    const puts = await kv.batch(fresh.map((key) => ({ op: 'put' as const, key, value: value(key) })));
    assert.deepEqual(puts.map((result) => result.code), fresh.map(() => 'OK'));
    const fresh_reads = await kv.batch(fresh.map((key) => ({ op: 'get' as const, key })));
    fresh_reads.forEach((result, i) => assert.ok(Buffer.from(result.value!).equals(value(fresh[i]!)), fresh[i]));

    const after_deletes = await nodeStats(kv);
    assert.equal(after_deletes.keys, stored.length + fresh.length);
    assert.ok(after_deletes.bytes_used <= after_deletes.bytes_capacity);
    assert.ok(after_deletes.bytes_used < full.bytes_used, 'deletes freed table memory');
  });
});

describe('invalid configuration', { timeout: 60_000 }, () => {
  const cases: { flags: string[]; message: RegExp }[] = [
    { flags: ['--workers', '0'], message: /workers must be 1\.\.64, got 0/ },
    { flags: ['--workers', 'two'], message: /workers: expected a whole number, got "two"/ },
    { flags: ['--max-memory', 'lots'], message: /max_memory: expected a size such as .*, got "lots"/ },
    { flags: ['--max-memory', '2mb', '--workers', '4'], message: /max memory must give each worker at least 1 MiB/ },
    { flags: ['--key-bytes-max', '64kb'], message: /key_bytes_max must be at most 65535/ },
    { flags: ['--batch-ops-max', '0'], message: /batch_ops_max must be at least 1/ },
    { flags: ['--frame-bytes-max', '100'], message: /frame_bytes_max must be at least 1024/ },
    { flags: ['--connection-requests-inflight-max', '0'], message: /connection_requests_inflight_max must be at least 1/ },
    { flags: ['--connections-max', '-1'], message: /connections_max: expected a whole number, got "-1"/ },
    { flags: ['--port', '70000'], message: /port must be 0\.\.65535, got 70000/ },
    { flags: ['--config', '/nonexistent/pikv.json'], message: /cannot read config file \/nonexistent\/pikv\.json/ },
  ];
  for (const { flags, message } of cases) {
    it(`exits 2 without listening on \`pikv serve ${flags.join(' ')}\`, naming the problem`, async () => {
      const result = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--max-memory', '64mb', ...flags]);
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stdout, /listening/);
    });
  }
});

interface NodeStats {
  keys: number;
  bytes_used: number;
  bytes_capacity: number;
  per_worker: { out_of_memory: number }[];
}

async function nodeStats(kv: PikvClient): Promise<NodeStats> {
  return (await kv.stats()) as unknown as NodeStats;
}

/** One request putting `count` keys `${prefix}:${i}` to the value "v". */
function putRequest(id: number, prefix: string, count: number): Buffer {
  const keys = Array.from({ length: count }, (_, i) => Buffer.from(`${prefix}:${i}`));
  return codec.encodeRequest({
    id, op: new Uint8Array(count).fill(Op.PUT), key_lengths: Uint32Array.from(keys, (key) => key.length),
    value_lengths: new Uint32Array(count).fill(1), keys: Buffer.concat(keys), values: Buffer.alloc(count, 'v'),
  });
}

function getRequest(id: number, keys: string[]): Buffer {
  const bytes = keys.map((key) => Buffer.from(key));
  return codec.encodeRequest({
    id, op: new Uint8Array(keys.length).fill(Op.GET), key_lengths: Uint32Array.from(bytes, (key) => key.length),
    value_lengths: new Uint32Array(keys.length), keys: Buffer.concat(bytes), values: Buffer.alloc(0),
  });
}

/** A PUT of key "padded" whose frame is exactly `frame_bytes` long, filled out by a field the server ignores. */
function paddedRequest(id: number, frame_bytes: number): Buffer {
  const encode = (pad: number): Buffer => cbor.encode({
    v: 1, id, op: Uint8Array.of(Op.PUT), kl: Uint32Array.of(6), vl: Uint32Array.of(2), keys: Buffer.from('padded'), vals: Buffer.from('ok'),
    pad: Buffer.alloc(pad),
  });
  let pad = frame_bytes;
  for (let attempt = 0; attempt < 4; attempt++) {
    const frame = encode(pad);
    if (frame.length === frame_bytes) return frame;
    pad -= frame.length - frame_bytes;
  }
  throw new Error(`cannot pad a request to ${frame_bytes} bytes`);
}


/** Opens a connection once the server has a free slot: retries while it is refused with 1013 at once. */
function openAdmitted(url: string): Promise<RawSocket> {
  return waitFor(async () => {
    const socket = await RawSocket.open(url);
    const refused = await Promise.race([socket.closed, delay(200).then(() => null)]);
    return refused === null ? socket : null;
  }, 5000);
}

/** Sends a WebSocket handshake with `frame` right behind it in the same TCP write. */
async function rawUpgradeAndSend(url: string, frame: Buffer): Promise<Socket> {
  const socket = connectTcp(Number(new URL(url).port), '127.0.0.1');
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const handshake = [
    'GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', '',
  ].join('\r\n');
  socket.write(Buffer.concat([Buffer.from(handshake), frame]));
  return socket;
}



/**
 * Hostile input never crashes or wedges a node.
 *
 * One `pikv serve` process takes garbage, truncated and malformed CBOR, absurd declared lengths,
 * deep nesting, text frames, oversized frames, floods, a client that never reads, raw TCP junk and
 * a client that vanishes mid-frame, each from its own raw socket. Throughout, a well-behaved
 * client keeps writing and reading; the last test checks that every value it wrote is intact,
 * that the process is alive, and that no hostile connection was left behind.
 *
 * The server closes a connection after connection_errors_per_second_max (100) rejected frames in
 * one second, so tests that expect an error reply per frame spread them over fresh connections.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Encoder } from 'cbor-x';
import { connect, Op, Status, WireCodec, type ErrorResponse, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { RawSocket, delay, waitFor } from './helpers/raw-socket.js';

const codec = new WireCodec();
const cbor = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true, pack: false });

/** Below the server's connection_errors_per_second_max (100), so no rejected batch closes its connection. */
const ERRORS_PER_CONNECTION = 90;
const FRAME_BYTES_MAX = 1024 * 1024;
const RSS_BYTES_MAX = 1024 ** 3;
const REPLY_TIMEOUT_MS = 10_000;

describe('Hostile input never crashes or wedges a node', { timeout: 120_000 }, () => {
  let server: ServerProcess;
  let kv: PikvClient;
  let traffic: NormalTraffic;

  before(async () => {
    server = await startServer(['--workers', '4', '--frame-bytes-max', '1mb', '--value-bytes-max', '512kb'], { PIKV_TEST_HOOKS: '0' });
    kv = await connect(server.url);
    traffic = new NormalTraffic(kv);
  });
  after(async () => {
    await traffic?.stop();
    await kv?.close();
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('answers random garbage frames with BAD_FRAME or BAD_REQUEST and keeps the connection open', async () => {
    const random = mulberry32(0x5eed);
    const frames: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const frame = Buffer.alloc(random.below(300));
      for (let j = 0; j < frame.length; j++) frame[j] = random.below(256);
      // Half start with a map header, so the decoder gets past the cheap top-level check.
      if (i % 2 === 0 && frame.length > 0) frame[0] = 0xa0 | random.below(32);
      frames.push(frame);
    }
    const replies = await sendRejected(server.url, frames);
    for (const reply of replies) {
      assert.ok(reply.code === 'BAD_FRAME' || reply.code === 'BAD_REQUEST', `unexpected reply ${JSON.stringify(reply)}`);
    }
  });

  it('rejects every truncated prefix of a valid request, then executes the whole request', async () => {
    const whole = codec.encodeRequest({
      id: 77, op: Uint8Array.of(Op.PUT, Op.GET, Op.DELETE), key_lengths: Uint32Array.of(9, 9, 5),
      value_lengths: Uint32Array.of(14, 0, 0), keys: Buffer.from('prefix:k1prefix:k1nope!'), values: Buffer.from('complete value'),
    });
    const prefixes = Array.from({ length: whole.length }, (_, length) => whole.subarray(0, length));
    const replies = await sendRejected(server.url, prefixes);
    replies.forEach((reply, length) => {
      assert.deepEqual(reply, { id: null, code: length === 0 ? 'BAD_REQUEST' : 'BAD_FRAME', message: reply.message }, `prefix of ${length} bytes`);
    });
    const socket = await RawSocket.open(server.url);
    socket.send(whole);
    const response = await socket.response();
    assert.equal(response.id, 77);
    assert.deepEqual([...response.status], [Status.OK, Status.OK, Status.NOT_FOUND]);
    assert.equal(Buffer.from(response.values).toString(), 'complete value');
    await socket.close();
  });

  it('rejects a wrong type in every field with BAD_REQUEST, or UNSUPPORTED_VERSION for v, echoing a readable id', async () => {
    const base = { v: 1, id: 31, op: Uint8Array.of(Op.PUT), kl: Uint32Array.of(1), vl: Uint32Array.of(2), keys: Buffer.from('k'), vals: Buffer.from('hi') };
    const not_bytes = ['text', -1, 1.5, [1], { a: 1 }, null, true, Uint32Array.of(1)];
    const not_typed = ['text', -1, 1.5, [1], { a: 1 }, null, true, Buffer.from([1, 0, 0, 0]), Float32Array.of(1), new BigUint64Array([1n])];
    const wrong: Record<keyof typeof base, unknown[]> = {
      v: [2, 0, '1', 1.5, null, [1], Buffer.from([1]), 'missing'],
      id: ['31', -1, 1.5, [31], { id: 31 }, null, true, Buffer.from([31]), 'missing'],
      op: [...not_bytes, 'missing'],
      kl: [...not_typed, 'missing'],
      vl: [...not_typed, Uint16Array.of(2), 'missing'],
      keys: [...not_bytes, 'missing'],
      vals: [...not_bytes, 'missing'],
    };
    const cases: { field: string; value: unknown; frame: Buffer }[] = [];
    for (const [field, values] of Object.entries(wrong)) {
      for (const value of values) {
        const request: Record<string, unknown> = { ...base, [field]: value };
        if (value === 'missing') delete request[field];
        cases.push({ field, value, frame: cbor.encode(request) });
      }
    }
    // Consistent types, inconsistent lengths.
    cases.push({ field: 'kl', value: 'two entries for one op', frame: cbor.encode({ ...base, kl: Uint32Array.of(1, 0) }) });
    cases.push({ field: 'kl', value: 'sum above keys length', frame: cbor.encode({ ...base, kl: Uint32Array.of(2) }) });
    cases.push({ field: 'vl', value: 'sum below vals length', frame: cbor.encode({ ...base, vl: Uint32Array.of(1) }) });
    cases.push({ field: 'vl', value: 'no entries', frame: cbor.encode({ ...base, vl: new Uint32Array(0) }) });
    const replies = await sendRejected(server.url, cases.map((item) => item.frame));
    replies.forEach((reply, i) => {
      const { field, value } = cases[i]!;
      const expected = field === 'id' ? { id: null, code: 'BAD_REQUEST' } : { id: 31, code: field === 'v' ? 'UNSUPPORTED_VERSION' : 'BAD_REQUEST' };
      assert.deepEqual({ id: reply.id, code: reply.code }, expected, `${field} = ${describeValue(value)}: ${reply.message}`);
    });
  });

  it('answers unknown op codes with a per-op UNKNOWN_OP and still executes the rest of the request', async () => {
    const unknown = [0, 15, 99, 128, 239, 240, 241, 255]; // 6-11 are the cluster ops, 12-14 EXPIRE, PERSIST, TTL (docs/PROTOCOL.md)
    const ops = [Op.PUT, ...unknown, Op.GET];
    const key_lengths = ops.map((op) => (op === Op.PUT || op === Op.GET ? 7 : op === 99 ? 3 : 0));
    const socket = await RawSocket.open(server.url);
    socket.send(codec.encodeRequest({
      id: 4, op: Uint8Array.from(ops), key_lengths: Uint32Array.from(key_lengths),
      value_lengths: Uint32Array.from(ops.map((op) => (op === Op.PUT ? 3 : 0))),
      keys: Buffer.from('op:testxyzop:test'), values: Buffer.from('yes'),
    }));
    const response = await socket.response();
    assert.deepEqual([...response.status], [Status.OK, ...unknown.map(() => Status.UNKNOWN_OP), Status.OK]);
    assert.equal(Buffer.from(response.values).toString(), 'yes');
    await socket.close();
  });

  it('answers a value on a GET, DELETE, PING or STATS with a per-op BAD_OP', async () => {
    const ops = [Op.GET, Op.DELETE, Op.PING, Op.STATS, Op.PING];
    const socket = await RawSocket.open(server.url);
    socket.send(codec.encodeRequest({
      id: 5, op: Uint8Array.from(ops), key_lengths: Uint32Array.of(1, 1, 0, 0, 0),
      value_lengths: Uint32Array.of(1, 1, 1, 1, 0), keys: Buffer.from('ab'), values: Buffer.from('wxyz'),
    }));
    const response = await socket.response();
    assert.deepEqual([...response.status], [Status.BAD_OP, Status.BAD_OP, Status.BAD_OP, Status.BAD_OP, Status.OK]);
    await socket.close();
  });

  it('rejects absurd declared lengths with BAD_FRAME without allocating them', async () => {
    const map_head = Buffer.from([0xa3, 0x61, 0x76, 0x01, 0x62, 0x69, 0x64, 0x05, 0x61, 0x78]); // {"v": 1, "id": 5, "x": ...
    const absurd = [
      [0x5b, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3], // byte string of 2^32 bytes
      [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], // byte string of 2^64-1 bytes
      [0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], // byte string of 2^32-1 bytes
      [0x7a, 0xff, 0xff, 0xff, 0xff, 0x61], // text string of 2^32-1 bytes
      [0x9a, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3], // array of 100M elements
      [0x9b, 0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00, 1], // array of 100M elements, 64-bit length
      [0xba, 0x05, 0xf5, 0xe1, 0x00, 1, 2], // map of 100M entries
      [0xd8, 70, 0x5a, 0x10, 0, 0, 0, 0], // uint32 typed array over 256 MiB of bytes
      [0x9f, 0x9f, 0x9f, 0x5f, 0x41, 0x00], // indefinite lengths, never terminated
    ].map((tail) => Buffer.concat([map_head, Buffer.from(tail)]));
    absurd.push(Buffer.from([0xba, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])); // top-level map of 2^32-1 entries
    absurd.push(Buffer.from([0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x61])); // top-level map of 2^32 entries
    const rss_before = rssBytes(server.pid);
    const replies = await sendRejected(server.url, absurd);
    replies.forEach((reply, i) => assert.equal(reply.code, 'BAD_FRAME', `frame ${i}: ${absurd[i]!.toString('hex')}`));
    const rss_after = rssBytes(server.pid);
    assert.ok(rss_after < RSS_BYTES_MAX, `server RSS grew from ${rss_before} to ${rss_after} bytes`);
  });

  it('rejects 100k levels of nesting inside a map with BAD_FRAME, and decodes the next request normally', async () => {
    const map_head = Buffer.from([0xa3, 0x61, 0x76, 0x01, 0x62, 0x69, 0x64, 0x05, 0x61, 0x78]);
    const depth = 100_000;
    const nested = [
      Buffer.concat([map_head, Buffer.alloc(depth, 0x81), Buffer.from([0x80])]), // [[[...[]...]]]
      Buffer.concat([map_head, Buffer.from(new Array<number[]>(depth).fill([0xa1, 0x61, 0x61]).flat()), Buffer.from([0xa0])]), // {"a": {"a": ...}}
      Buffer.concat([map_head, Buffer.from(new Array<number[]>(depth).fill([0xd8, 0x64]).flat()), Buffer.from([0x80])]), // 100(100(...))
      Buffer.concat([map_head, Buffer.alloc(depth, 0x9f), Buffer.alloc(depth, 0xff)]), // indefinite-length arrays
    ];
    const socket = await RawSocket.open(server.url);
    for (const frame of nested) {
      socket.send(frame);
      const reply = await socket.error();
      assert.equal(reply.code, 'BAD_FRAME', reply.message);
      socket.send(pingRequest(6));
      const response = await socket.response();
      assert.equal(response.id, 6);
      assert.deepEqual([...response.status], [Status.OK]);
    }
    await socket.close();
  });

  it('echoes the largest id, 2^53-1, and rejects 2^53, 2^64-1, negative, float and non-finite ids with BAD_REQUEST', async () => {
    const socket = await RawSocket.open(server.url);
    for (const id of [0, Number.MAX_SAFE_INTEGER]) {
      socket.send(pingRequest(id));
      assert.equal((await socket.response()).id, id);
    }
    const bad_ids = [2 ** 53, 2n ** 64n - 1n, 2n ** 63n, -1, -(2 ** 53), -1n - 2n ** 64n, 0.5, 1e300, NaN, Infinity, -Infinity];
    for (const id of bad_ids) {
      socket.send(cbor.encode({ v: 1, id, op: Uint8Array.of(Op.PING), kl: Uint32Array.of(0), keys: Buffer.alloc(0) }));
      assert.deepEqual({ id: (await socket.error()).id }, { id: null }, `id ${String(id)}`);
    }
    socket.send(pingRequest(8));
    assert.equal((await socket.response()).id, 8);
    await socket.close();
  });

  it('answers text frames with TEXT_FRAME and keeps the connection open', async () => {
    const socket = await RawSocket.open(server.url);
    for (const text of ['hello', '', '{"v":1,"id":1}', '\u{1f600}'.repeat(1000)]) {
      socket.send(text);
      const reply = await socket.error();
      assert.deepEqual({ id: reply.id, code: reply.code }, { id: null, code: 'TEXT_FRAME' });
    }
    socket.send(pingRequest(9));
    assert.equal((await socket.response()).id, 9);
    await socket.close();
  });

  it('closes a connection that sends a frame over frame_bytes_max with 1009 and serves the next one', async () => {
    const socket = await RawSocket.open(server.url);
    socket.send(Buffer.alloc(FRAME_BYTES_MAX + 1, 0xa0));
    const closed = await socket.closed;
    assert.equal(closed.code, 1009);
    const next = await RawSocket.open(server.url);
    next.send(pingRequest(10));
    assert.equal((await next.response()).id, 10);
    await next.close();
  });

  it('closes a connection flooding 50k one-byte frames with 1008 TOO_MANY_ERRORS, while others are served', async () => {
    const flood = await RawSocket.open(server.url);
    const bystander = await RawSocket.open(server.url);
    for (let i = 0; i < 50_000; i++) flood.send(Buffer.of(i & 0xff));
    bystander.send(pingRequest(11));
    assert.equal((await bystander.response()).id, 11);
    const closed = await flood.closed;
    assert.deepEqual(closed, { code: 1008, reason: 'TOO_MANY_ERRORS' });
    const replies = flood.drainErrors();
    assert.ok(replies.length >= 1 && replies.length <= 100, `${replies.length} error replies before the close`);
    for (const reply of replies) assert.ok(reply.code === 'BAD_REQUEST' || reply.code === 'BAD_FRAME', reply.code);
    bystander.send(pingRequest(12));
    assert.equal((await bystander.response()).id, 12);
    await bystander.close();
    // Frames still on the wire after the close are dropped, not decoded and logged one by one.
    const close_logs = server.output().match(/closing a connection that sent over \d+ bad frames/g) ?? [];
    assert.equal(close_logs.length, 1, 'one log line for the closed connection');
  });

  it('survives a client that pipelines 1000 reads of 32 KiB values and does not read, and answers them all once it does', async () => {
    const value = Buffer.alloc(32 * 1024, 0x5a);
    await kv.put('slow-reader:value', value);
    const reader = await RawSocket.open(server.url);
    reader.pauseReading();
    const count = 1000;
    const key = Buffer.from('slow-reader:value');
    for (let id = 1; id <= count; id++) {
      reader.send(codec.encodeRequest({ id, op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(key.length), value_lengths: Uint32Array.of(0), keys: key, values: Buffer.alloc(0) }));
    }
    // 32 MiB of responses exceed connection_send_bytes_max (16 MiB): the server must stop reading, not buffer them.
    await delay(1000);
    const bystander = await connect(server.url);
    await bystander.put('slow-reader:other', 'served');
    assert.equal(Buffer.from((await bystander.get('slow-reader:other'))!).toString(), 'served');
    await bystander.close();
    assert.ok(rssBytes(server.pid) < RSS_BYTES_MAX);
    reader.resumeReading();
    const seen = new Set<number>();
    for (let i = 0; i < count; i++) {
      const response = await reader.response();
      assert.deepEqual([...response.status], [Status.OK]);
      assert.ok(Buffer.from(response.values).equals(value));
      seen.add(response.id);
    }
    assert.equal(seen.size, count, 'every request answered exactly once');
    await reader.close();
  });

  it('stops executing the requests of a client that never reads, even those that arrived in the same TCP segment', async () => {
    const value = Buffer.alloc(64 * 1024, 0x77);
    await kv.put('amplify:value', value);
    const key = Buffer.from('amplify:value');
    const gets = 8;
    const count = 256;
    const opsByOthers = async (): Promise<number> => ((await kv.stats()) as { ops: number }).ops - traffic.ops_sent;
    const ops_before = await opsByOthers();
    const reader = await RawSocket.open(server.url);
    reader.pauseReading();
    // 256 requests of about 100 bytes each, 512 KiB of values apiece: 128 MiB asked for in one 25 KB write.
    const socket = (reader.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    for (let id = 1; id <= count; id++) {
      reader.send(codec.encodeRequest({
        id, op: new Uint8Array(gets).fill(Op.GET), key_lengths: new Uint32Array(gets).fill(key.length),
        value_lengths: new Uint32Array(gets), keys: Buffer.concat(new Array<Buffer>(gets).fill(key)), values: Buffer.alloc(0),
      }));
    }
    socket.uncork();
    await delay(1000);
    const executed = Math.round(((await opsByOthers()) - ops_before) / gets);
    // connection_send_bytes_max (16 MiB) plus what the kernel's socket buffers take: about 40 responses, not 256.
    try {
      assert.ok(executed <= count / 2, `${executed} of ${count} requests executed for a client that reads nothing`);
      reader.resumeReading();
      for (let i = 0; i < count; i++) {
        const response = await reader.response();
        assert.equal(response.values.length, gets * value.length);
      }
    } finally {
      await reader.close();
    }
  });

  it('drops a client that never reads without crashing, when it disconnects with responses queued', async () => {
    const value = Buffer.alloc(64 * 1024, 0x33);
    await kv.put('never-reads:value', value);
    const key = Buffer.from('never-reads:value');
    const reader = await RawSocket.open(server.url);
    reader.pauseReading();
    for (let id = 1; id <= 500; id++) {
      reader.send(codec.encodeRequest({ id, op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(key.length), value_lengths: Uint32Array.of(0), keys: key, values: Buffer.alloc(0) }));
    }
    await delay(500);
    reader.ws.terminate();
    await reader.closed;
    await kv.ping();
  });

  it('answers raw TCP garbage and malformed WebSocket handshakes with an HTTP error and closes them', async () => {
    const random = mulberry32(0x7cb);
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = random.below(256);
    const handshake = (headers: string[]): string => ['GET / HTTP/1.1', 'Host: 127.0.0.1', ...headers, '', ''].join('\r\n');
    const upgrade = ['Upgrade: websocket', 'Connection: Upgrade'];
    const cases: { name: string; bytes: Buffer | string; status: RegExp | null }[] = [
      { name: 'random bytes', bytes: garbage, status: /^HTTP\/1\.1 400 / },
      { name: 'an HTTP request line only', bytes: 'GET / HTTP/1.1\r\n\r\n', status: /^HTTP\/1\.1 400 / },
      // GET / is the dashboard (src/node/observe/): a plain request gets the page.
      { name: 'a plain HTTP request', bytes: handshake([]), status: /^HTTP\/1\.1 200 / },
      { name: 'no Sec-WebSocket-Key', bytes: handshake([...upgrade, 'Sec-WebSocket-Version: 13']), status: /^HTTP\/1\.1 400 / },
      { name: 'a malformed Sec-WebSocket-Key', bytes: handshake([...upgrade, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: nope']), status: /^HTTP\/1\.1 400 / },
      { name: 'version 99', bytes: handshake([...upgrade, 'Sec-WebSocket-Version: 99', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']), status: /^HTTP\/1\.1 400 / },
      { name: 'a POST upgrade', bytes: handshake([...upgrade, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']).replace('GET', 'POST'), status: /^HTTP\/1\.1 4\d\d / },
      { name: 'a 1 MiB header', bytes: handshake([`X-Junk: ${'j'.repeat(1024 * 1024)}`]), status: /^HTTP\/1\.1 431 / },
    ];
    await Promise.all(cases.map(async ({ name, bytes, status }) => {
      const reply = await tcpExchange(server.url, bytes);
      if (status !== null) assert.match(reply, status, name);
    }));
  });

  it('closes a WebSocket that sends an unmasked frame with 1002', async () => {
    const socket = await rawUpgrade(server.url);
    const reply = collect(socket);
    socket.write(Buffer.from([0x82, 0x01, 0xa0])); // binary, FIN, unmasked, 1 byte
    const bytes = await waitFor(async () => (reply().length >= 4 ? reply() : null), REPLY_TIMEOUT_MS);
    socket.destroy();
    assert.equal(bytes[0], 0x88, 'a close frame');
    assert.equal(bytes.readUInt16BE(2), 1002);
  });

  it('forgets connections that disconnect mid-frame, mid-handshake or mid-header', async () => {
    // A masked binary frame announcing 100 KiB (64-bit length), half of it sent, then the socket is destroyed.
    const mid_frame = await rawUpgrade(server.url);
    mid_frame.write(Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x90, 0x00, 1, 2, 3, 4]));
    mid_frame.write(Buffer.alloc(50 * 1024, 0x41));
    await delay(50);
    mid_frame.destroy();
    // Only the first two bytes of a frame header.
    const mid_header = await rawUpgrade(server.url);
    mid_header.write(Buffer.from([0x82, 0xff]));
    await delay(50);
    mid_header.destroy();
    // Half a handshake.
    const mid_handshake = connectTcp(Number(new URL(server.url).port), '127.0.0.1');
    await new Promise((resolve) => mid_handshake.once('connect', resolve));
    mid_handshake.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    await delay(50);
    mid_handshake.destroy();
    // A ws client that sends a large frame and terminates at once.
    const quitter = await RawSocket.open(server.url);
    quitter.send(Buffer.alloc(900 * 1024, 0xa0));
    quitter.ws.terminate();
    await quitter.closed;
    await kv.ping();
  });

  it('kept answering the normal client throughout, with every value intact and no hostile connection left open', async () => {
    await traffic.stop();
    assert.deepEqual(traffic.failures, [], 'the normal client saw no failure');
    assert.ok(traffic.rounds >= 5, `the normal client ran ${traffic.rounds} rounds`);
    const keys = [...traffic.latest.keys()];
    const results = await kv.batch(keys.map((key) => ({ op: 'get' as const, key })));
    results.forEach((result, i) => {
      assert.equal(result.code, 'OK', keys[i]);
      assert.equal(Buffer.from(result.value!).toString(), traffic.latest.get(keys[i]!), keys[i]);
    });
    assert.equal(server.child.exitCode, null, 'the server process is still running');
    assert.equal(server.child.signalCode, null);
    const stats = await waitFor(async () => {
      const current = (await kv.stats()) as { connections: number; requests_inflight: number };
      return current.connections === 1 ? current : null;
    }, 5000);
    assert.equal(stats.connections, 1, 'only the normal client is still connected');
    assert.ok(rssBytes(server.pid) < RSS_BYTES_MAX);
    assert.doesNotMatch(server.output(), /uncaught|unhandled|TypeError|ReferenceError/i);
  });
});

/** A well-behaved client writing and reading in a loop; remembers the latest value of every key it wrote. */
class NormalTraffic {
  readonly latest = new Map<string, string>();
  readonly failures: string[] = [];
  rounds = 0;
  /** Ops sent so far, so a test can tell the node's op counter apart from this traffic. */
  ops_sent = 0;
  private readonly running: Promise<void>;
  private stopping = false;

  constructor(kv: PikvClient) {
    this.running = this.loop(kv);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async loop(kv: PikvClient): Promise<void> {
    while (!this.stopping) {
      this.rounds++;
      try {
        await this.round(kv, this.rounds);
      } catch (error) {
        this.failures.push(`round ${this.rounds}: ${(error as Error).message}`);
      }
      await delay(10);
    }
  }

  private async round(kv: PikvClient, round: number): Promise<void> {
    const writes = Array.from({ length: 40 }, (_, i) => {
      const key = `normal:${(round * 40 + i) % 1000}`;
      return { op: 'put' as const, key, value: `${key}@${round}` };
    });
    this.ops_sent += writes.length + 1;
    const results = await kv.batch(writes);
    results.forEach((result, i) => {
      if (result.code !== 'OK') throw new Error(`put ${writes[i]!.key}: ${result.code}`);
      this.latest.set(writes[i]!.key, writes[i]!.value);
    });
    const key = writes[round % writes.length]!.key;
    const value = await kv.get(key);
    if (value === undefined || Buffer.from(value).toString() !== this.latest.get(key)) throw new Error(`get ${key} returned a stale value`);
  }
}


/**
 * Sends frames the server must reject, at most ERRORS_PER_CONNECTION per connection, and returns
 * the error replies in frame order (rejections are answered synchronously, so in order). Each
 * connection then proves it is still open by answering a ping.
 */
async function sendRejected(url: string, frames: Buffer[]): Promise<ErrorResponse[]> {
  const replies: ErrorResponse[] = [];
  for (let start = 0; start < frames.length; start += ERRORS_PER_CONNECTION) {
    const socket = await RawSocket.open(url);
    const chunk = frames.slice(start, start + ERRORS_PER_CONNECTION);
    for (const frame of chunk) socket.send(frame);
    for (let i = 0; i < chunk.length; i++) replies.push(await socket.error());
    socket.send(pingRequest(1));
    assert.equal((await socket.response()).id, 1, 'the connection stays open after error replies');
    await socket.close();
  }
  return replies;
}

function pingRequest(id: number): Buffer {
  return codec.encodeRequest({ id, op: Uint8Array.of(Op.PING), key_lengths: Uint32Array.of(0), value_lengths: Uint32Array.of(0), keys: Buffer.alloc(0), values: Buffer.alloc(0) });
}

/** Opens a TCP connection, writes `bytes`, and resolves with everything received until the server closes it. */
function tcpExchange(url: string, bytes: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(Number(new URL(url).port), '127.0.0.1');
    const received = collect(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection; it sent ${JSON.stringify(received().toString('latin1').slice(0, 200))}`));
    }, REPLY_TIMEOUT_MS);
    socket.on('error', () => {}); // a reset after the server's reply is fine
    socket.once('connect', () => socket.end(bytes));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received().toString('latin1'));
    });
  });
}

/** A completed WebSocket handshake on a plain TCP socket, for sending frames ws would refuse to send. */
async function rawUpgrade(url: string): Promise<Socket> {
  const socket = connectTcp(Number(new URL(url).port), '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write([
    'GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', '',
  ].join('\r\n'));
  let head = Buffer.alloc(0);
  while (!head.includes('\r\n\r\n')) {
    const chunk = await new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('close', () => reject(new Error('closed during the handshake')));
    });
    head = Buffer.concat([head, chunk]);
  }
  assert.match(head.toString('latin1'), /^HTTP\/1\.1 101 /);
  const end = head.indexOf('\r\n\r\n') + 4;
  if (end < head.length) socket.unshift(head.subarray(end));
  return socket;
}

function collect(socket: Socket): () => Buffer {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks);
}

function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match, 'VmRSS in /proc/PID/status');
  return Number(match[1]) * 1024;
}



function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.byteLength} bytes)`;
  return JSON.stringify(value) ?? String(value);
}

/** mulberry32: a small seeded PRNG, so a failing garbage frame can be reproduced. */
function mulberry32(seed: number): { below(bound: number): number } {
  let state = seed | 0;
  return {
    below(bound: number): number {
      state = (state + 0x6d2b79f5) | 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000) * bound);
    },
  };
}

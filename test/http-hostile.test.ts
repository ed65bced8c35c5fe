/**
 * Hostile and careless HTTP clients never crash or wedge a node, nor hurt other clients.
 *
 * One `pikv serve` process with small limits and a client token takes oversized bodies
 * (declared and streamed), bad JSON and CBOR, batches past batch_ops_max, missing and wrong
 * tokens, foreign Host and Origin headers, slow headers and bodies (slowloris), more sockets
 * than connections_max, thousands of pipelined requests, a pipelining client that never reads,
 * and malformed HTTP. Throughout, a normal HTTP client (fetch) and a WebSocket client keep
 * writing and reading; after each case a fresh request must still work, and the last test
 * checks that every value they wrote is intact, that no hostile connection was left behind
 * and that the process stayed small. Every process is stopped by its PID.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, Op, WireCodec, type PikvClient } from '../src/index.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { curl, errorOf, httpBase, NO_CURL, parseResponses, RawHttp } from './helpers/http.js';
import { delay } from './helpers/raw-socket.js';

const TOKEN = 'hostile-http-token';
const VALUE_BYTES_MAX = 256 * 1024;
const FRAME_BYTES_MAX = 1024 * 1024;
const BATCH_OPS_MAX = 1000;
const KEY_BYTES_MAX = 64;
const HANDSHAKE_TIMEOUT_MS = 1000;
const FRAME_TIMEOUT_MS = 1000;
const SLOW_CLIENT_TIMEOUT_MS = 1000;
const KEEP_ALIVE_TIMEOUT_MS = 1000;
const CONNECTIONS_MAX = 40;
const RSS_BYTES_MAX = 1024 ** 3;
const AUTH = { authorization: `Bearer ${TOKEN}` };
const codec = new WireCodec();

/** Writes and reads over HTTP (fetch, keep-alive) and WebSocket while the hostile cases run; remembers what it wrote. */
class NormalTraffic {
  readonly written = new Map<string, string>();
  errors: string[] = [];
  /** 503 TOO_MANY_CONNECTIONS while a test holds every connection: expected, retried. */
  refused = 0;
  private running = true;
  private readonly done: Promise<void>[];

  constructor(private readonly base: string, private readonly kv: PikvClient) {
    this.done = [this.httpLoop(), this.wsLoop()];
  }

  /** One request, retried while the node refuses it as over connections_max or the keep-alive socket raced its close. */
  private async request(path: string, init: RequestInit): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(`${this.base}${path}`, init);
        if (response.status !== 503 || attempt > 200) return response;
        this.refused++;
        await response.arrayBuffer();
      } catch (error) {
        // A PUT of the same value is safe to repeat; a GET always is.
        if (attempt >= 3) throw error;
      }
      await delay(20);
    }
  }

  private async httpLoop(): Promise<void> {
    for (let i = 0; this.running; i++) {
      const key = `normal:http:${i % 300}`;
      const value = `value-${i}`;
      try {
        const put = await this.request(`/v1/kv/${key}`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, body: value });
        assert.equal(put.status, 204, await put.text());
        this.written.set(key, value);
        const get = await this.request(`/v1/kv/${key}`, { headers: AUTH });
        assert.equal(await get.text(), value);
      } catch (error) {
        this.errors.push(`${key}: ${(error as Error).message}`);
      }
      if (i % 20 === 0) await delay(5);
    }
  }

  private async wsLoop(): Promise<void> {
    for (let i = 0; this.running; i++) {
      const key = `normal:ws:${i % 300}`;
      const value = `ws-${i}`;
      try {
        await this.kv.put(key, value);
        this.written.set(key, value);
      } catch (error) {
        this.errors.push(`${key}: ${(error as Error).message}`);
      }
      if (i % 20 === 0) await delay(5);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.done);
  }
}

function rssBytes(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

/** A request as raw bytes, with the node's Host and token unless given. */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string | number> = {}, body = ''): string {
  const all: Record<string, string | number> = { host: `127.0.0.1:${port}`, ...AUTH, ...headers };
  const lines = Object.entries(all).filter(([, value]) => value !== '').map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
}

describe('Hostile HTTP clients never crash or wedge a node', { timeout: 240_000 }, () => {
  let server: ServerProcess;
  let base: string;
  let port: number;
  let kv: PikvClient;
  let traffic: NormalTraffic;

  /** A fresh request on a fresh connection still works, and the node keeps its data. */
  async function stillServes(): Promise<void> {
    const put = await fetch(`${base}/v1/kv/probe`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'application/json', connection: 'close' }, body: 'alive' });
    assert.equal(put.status, 204);
    const get = await fetch(`${base}/v1/kv/probe`, { headers: { ...AUTH, connection: 'close' } });
    assert.equal(await get.text(), 'alive');
    assert.equal(Buffer.from((await kv.get('probe'))!).toString(), 'alive');
  }

  async function status(response: Response): Promise<{ status: number; error: string; message: string }> {
    return { status: response.status, ...errorOf(Buffer.from(await response.arrayBuffer())) };
  }

  before(async () => {
    server = await startServer([
      '--workers', '2', '--value-bytes-max', String(VALUE_BYTES_MAX), '--frame-bytes-max', String(FRAME_BYTES_MAX),
      '--response-bytes-max', String(FRAME_BYTES_MAX), '--batch-ops-max', String(BATCH_OPS_MAX), '--key-bytes-max', String(KEY_BYTES_MAX),
      '--handshake-timeout-ms', String(HANDSHAKE_TIMEOUT_MS), '--frame-timeout-ms', String(FRAME_TIMEOUT_MS),
      '--slow-client-timeout-ms', String(SLOW_CLIENT_TIMEOUT_MS), '--http-keep-alive-timeout-ms', String(KEEP_ALIVE_TIMEOUT_MS),
      '--connections-max', String(CONNECTIONS_MAX), '--connection-requests-inflight-max', '4', '--connection-send-bytes-max', '64kb',
    ], { PIKV_CLIENT_TOKEN: TOKEN });
    base = httpBase(server.url);
    port = Number(new URL(server.url).port);
    kv = await connect(server.url, { token: TOKEN });
    traffic = new NormalTraffic(base, kv);
  });

  after(async () => {
    await traffic?.stop();
    await kv?.close();
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('refuses bodies over value_bytes_max and frame_bytes_max, declared or streamed, and the client still reads the 413', async () => {
    const json = { ...AUTH, 'content-type': 'application/json' };
    const declared = await fetch(`${base}/v1/kv/big`, { method: 'PUT', headers: json, body: Buffer.alloc(VALUE_BYTES_MAX + 1, 1) });
    assert.deepEqual(await status(declared), { status: 413, error: 'VALUE_TOO_LARGE', message: `Content-Length is ${VALUE_BYTES_MAX + 1}; value_bytes_max is ${VALUE_BYTES_MAX}` });
    const huge = await fetch(`${base}/v1/kv/big`, { method: 'PUT', headers: json, body: Buffer.alloc(40 * 1024 * 1024, 1) });
    assert.equal(huge.status, 413, 'a 40 MiB body is answered, not read into memory');
    await huge.arrayBuffer();

    const chunks = (count: number, bytes: number): ReadableStream<Uint8Array> => new ReadableStream({
      start(controller) {
        for (let i = 0; i < count; i++) controller.enqueue(new Uint8Array(bytes).fill(2));
        controller.close();
      },
    });
    const streamed = await fetch(`${base}/v1/kv/big`, { method: 'PUT', headers: json, body: chunks(100, 16 * 1024), duplex: 'half' } as RequestInit);
    assert.equal((await status(streamed)).error, 'VALUE_TOO_LARGE');
    const streamed_batch = await fetch(`${base}/v1/batch`, { method: 'POST', headers: json, body: chunks(100, 16 * 1024), duplex: 'half' } as RequestInit);
    assert.equal((await status(streamed_batch)).error, 'BODY_TOO_LARGE');
    const big_batch = await fetch(`${base}/v1/batch`, { method: 'POST', headers: json, body: Buffer.alloc(FRAME_BYTES_MAX + 1, 0x20) });
    assert.deepEqual(await status(big_batch), { status: 413, error: 'BODY_TOO_LARGE', message: `Content-Length is ${FRAME_BYTES_MAX + 1}; a batch body may have at most frame_bytes_max = ${FRAME_BYTES_MAX} bytes` });

    const exact = Buffer.alloc(VALUE_BYTES_MAX, 7);
    assert.equal((await fetch(`${base}/v1/kv/exact`, { method: 'PUT', headers: json, body: exact })).status, 204);
    assert.deepEqual(Buffer.from(await (await fetch(`${base}/v1/kv/exact`, { headers: AUTH })).arrayBuffer()), exact);

    if (NO_CURL === false) {
      // curl asks first (Expect: 100-continue) and is told 413 without sending the body.
      const refused = await curl(['-v', '-X', 'PUT', '-H', `Authorization: Bearer ${TOKEN}`, '-H', 'content-type: application/octet-stream', '--data-binary', `@-`, `${base}/v1/kv/big`], Buffer.alloc(4 * VALUE_BYTES_MAX, 3));
      assert.equal(refused.status, 413);
      assert.equal(errorOf(refused.body).error, 'VALUE_TOO_LARGE');
    }

    // A raw client that declares 100 MB and sends 1 KiB is answered at once and closed soon after.
    const raw = await RawHttp.open(server.url);
    raw.write(rawRequest(port, 'PUT', '/v1/kv/big', { 'content-type': 'application/json', 'content-length': 100_000_000 }, 'x'.repeat(1024)));
    const [answer] = await raw.responses(1);
    assert.equal(answer!.status, 413);
    assert.equal(answer!.headers.get('connection'), 'close');
    assert.ok(await raw.waitClosed(10_000), 'closed after lingering');
    assert.equal(await kv.get('big'), undefined, 'nothing was written');
    await stillServes();
  });

  it('answers bad JSON and bad CBOR with 400 and applies nothing of them', async () => {
    const bodies: (string | Buffer)[] = [
      '', 'null', '[]', '"ops"', '{"ops": {}}', '{"ops": [1]}', '{"ops": [null]}', '{"ops": [{"op": "put", "key": "bad:1"}]}',
      '{"ops": [{"op": "get"}]}', '{"ops": [{"op": "GET", "key": "bad:2"}]}', '{"ops": [{"op": "put", "key": 7, "value": "x"}]}',
      '{"ops": [{"op": "put", "key": "bad:3", "value": "x", "ttl": 5}]}', '{"ops": [{"op": "get", "key": "bad:4", "value": "x"}]}',
      '{"ops": [{"op": "put", "key": "bad:5", "key_base64": "YQ==", "value": "x"}]}', '{"ops": [{"op": "put", "key": "bad:6", "value_base64": "!!!"}]}',
      '{"ops": [{"op": "put", "key": "bad:7", "value_base64": "Y"}]}', '{"ops": [], "extra": 1}', '{"ops": [], "value_encoding": "hex"}',
      '{"ops": [{"op": "put", "key": "bad:8", "value": "x"}]} trailing', `{"ops": ${'['.repeat(200_000)}`,
      Buffer.concat([Buffer.from('{"ops": [{"op": "put", "key": "bad:9", "value": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]),
    ];
    for (const body of bodies) {
      const response = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body });
      const { status: code, error } = await status(response);
      assert.deepEqual([code, error], [400, 'BAD_REQUEST'], String(body).slice(0, 80));
    }
    const cbor_bodies: Buffer[] = [
      Buffer.from('garbage'), Buffer.from([0xa1]), Buffer.from([0xa1, 0x61, 0x76, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      codec.encodeValue({ v: 1, id: 1, op: Buffer.from([Op.PUT]), kl: Uint32Array.of(99), vl: Uint32Array.of(1), keys: Buffer.from('bad:10'), vals: Buffer.from('x') }),
      codec.encodeValue({ v: 2, id: 1, op: Buffer.from([Op.GET]), kl: Uint32Array.of(1), keys: Buffer.from('k') }),
    ];
    for (const body of cbor_bodies) {
      const response = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/cbor' }, body });
      assert.equal(response.status, 400, body.toString('hex').slice(0, 60));
      assert.match(errorOf(Buffer.from(await response.arrayBuffer())).error, /^(BAD_REQUEST|BAD_FRAME|UNSUPPORTED_VERSION)$/);
    }
    const check = await kv.batch(Array.from({ length: 10 }, (_, i) => ({ op: 'get' as const, key: `bad:${i + 1}` })));
    assert.ok(check.every((result) => result.code === 'NOT_FOUND'), 'no op of a refused body ran');
    await stillServes();
  });

  it('takes batch_ops_max ops in a batch, answers TOO_MANY_OPS past it, and bounds what one batch returns', async () => {
    const puts = Array.from({ length: BATCH_OPS_MAX }, (_, i) => ({ op: 'put', key: `many:${i}`, value: `${i}` }));
    const full = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ ops: puts }) });
    assert.equal(full.status, 200);
    const results = (await full.json() as { results: { code: string }[] }).results;
    assert.equal(results.length, BATCH_OPS_MAX);
    assert.ok(results.every((result) => result.code === 'OK'));

    const over = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ ops: [...puts, { op: 'get', key: 'x' }] }) });
    assert.deepEqual(await status(over), { status: 413, error: 'TOO_MANY_OPS', message: `the batch has ${BATCH_OPS_MAX + 1} ops; the limit is ${BATCH_OPS_MAX} (batch_ops_max)` });
    // Many tiny objects or numbers are refused before JSON.parse would build them all.
    for (const body of [`{"ops": [${'{},'.repeat(300_000)}{}]}`, `{"ops": [${'1,'.repeat(400_000)}1]}`]) {
      const amplified = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body });
      assert.equal((await status(amplified)).error, 'TOO_MANY_OPS');
    }
    const count = BATCH_OPS_MAX + 1;
    const cbor_over = codec.encodeRequest({ id: 1, op: new Uint8Array(count).fill(Op.GET), key_lengths: new Uint32Array(count).fill(1), value_lengths: new Uint32Array(count), keys: Buffer.alloc(count, 0x61), values: Buffer.alloc(0) });
    const cbor = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/cbor' }, body: cbor_over });
    assert.equal((await status(cbor)).status, 413);

    // 20 GETs of a 200 KiB value ask for 4 MiB: the answer holds what fits response_bytes_max, the rest fail alone.
    await kv.put('many:large', Buffer.alloc(200 * 1024, 5));
    const gets = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ ops: Array.from({ length: 20 }, () => ({ op: 'get', key: 'many:large' })) }) });
    const codes = (await gets.json() as { results: { code: string }[] }).results.map((result) => result.code);
    assert.deepEqual(codes, [...Array(5).fill('OK'), ...Array(15).fill('RESPONSE_TOO_LARGE')]);
    await stillServes();
  });

  it('refuses missing, wrong and misplaced tokens with 401, and writes nothing', async () => {
    const cases: Record<string, string>[] = [
      {}, { authorization: 'Bearer' }, { authorization: `Bearer ${TOKEN}x` }, { authorization: `Basic ${Buffer.from(`:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN }, { 'x-pikv-client-token': TOKEN }, { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    ];
    for (const headers of cases) {
      const put = await fetch(`${base}/v1/kv/token:write`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/json' }, body: 'x' });
      assert.equal((await status(put)).error, 'AUTH_FAILED', JSON.stringify(headers));
      const batch = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"ops":[{"op":"put","key":"token:write","value":"x"}]}' });
      assert.equal(batch.status, 401);
      await batch.arrayBuffer();
    }
    assert.equal(await kv.get('token:write'), undefined);
    await stillServes();
  });

  it('answers only Host names of this node (DNS rebinding), refuses foreign Origins, HTTP and WebSocket', async () => {
    const hosts: [string, number][] = [
      [`127.0.0.1:${port}`, 200], ['127.0.0.1', 200], [`localhost:${port}`, 200], ['LOCALHOST.', 200], [`[::1]:${port}`, 200], ['pikv.localhost', 200],
      ['127.0.0.2', 200], ['evil.example', 421], [`evil.example:${port}`, 421], ['127.0.0.1.evil.example', 421], [`localhost.evil.example:${port}`, 421],
      [`127.0.0.1:${port}@evil.example`, 421], ['[::1', 421], ['127.0.0.1:port', 421], ['%31%32%37.0.0.1', 421], ['', 421],
    ];
    for (const [host, expected] of hosts) {
      const raw = await RawHttp.open(server.url);
      raw.write(rawRequest(port, 'GET', '/v1/health', { host: host === '' ? ' ' : host, connection: 'close' }));
      const [answer] = await raw.responses(1);
      raw.destroy();
      assert.equal(answer!.status, expected, `Host: ${host}`);
      if (expected === 421) assert.equal(errorOf(answer!.body).error, 'BAD_HOST');
    }
    for (const [origin, expected] of [['http://evil.example', 403], ['null', 403], [`http://localhost.evil.example:${port}`, 403], [base, 200], [`http://localhost:${port}`, 200]] as const) {
      const response = await fetch(`${base}/v1/kv/probe`, { headers: { ...AUTH, origin } });
      assert.equal(response.status, expected, `Origin: ${origin}`);
      await response.arrayBuffer();
    }
    // A browser page elsewhere may open a WebSocket to any address; the node refuses it.
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(server.url, { origin: 'http://evil.example', headers: { 'x-pikv-client-token': TOKEN } });
      ws.once('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0);
        ws.terminate();
      });
      ws.once('open', () => reject(new Error('a WebSocket from a foreign page was accepted')));
      ws.on('error', () => {});
    });
    assert.equal(refused, 403);
    const own = await connect(server.url, { token: TOKEN });
    await own.ping();
    await own.close();
    assert.match(server.output(), /opened by the web page "http:\/\/evil\.example" \(CROSS_SITE\)/);
    await stillServes();
  });

  it('cuts off headers and bodies that trickle in (slowloris) and serves others meanwhile', async () => {
    const sockets: RawHttp[] = [];
    for (let i = 0; i < 10; i++) sockets.push(await RawHttp.open(server.url));
    const header_text = rawRequest(port, 'GET', '/v1/health');
    const body_request = rawRequest(port, 'PUT', '/v1/kv/slow', { 'content-type': 'application/json', 'content-length': 1000 });
    for (const [i, socket] of sockets.entries()) socket.write(i % 2 === 0 ? header_text.slice(0, 10) : body_request);
    const start = performance.now();
    let sent = 10;
    const trickle = setInterval(() => {
      for (const [i, socket] of sockets.entries()) if (socket.is_open) socket.write(i % 2 === 0 ? header_text.slice(sent, sent + 1) : 'x');
      sent++;
    }, 100);
    try {
      let worst_ms = 0;
      while (performance.now() - start < HANDSHAKE_TIMEOUT_MS + FRAME_TIMEOUT_MS) {
        const probe_start = performance.now();
        const response = await fetch(`${base}/v1/health`);
        assert.equal(response.status, 200);
        await response.arrayBuffer();
        worst_ms = Math.max(worst_ms, performance.now() - probe_start);
        await delay(50);
      }
      assert.ok(worst_ms < 500, `a request beside 10 slow sockets took ${worst_ms.toFixed(0)} ms`);
      const closed = await Promise.all(sockets.map((socket) => socket.waitClosed(5_000)));
      assert.ok(closed.every(Boolean), 'every slow socket was closed');
      assert.ok(performance.now() - start < 6_000);
    } finally {
      clearInterval(trickle);
      for (const socket of sockets) socket.destroy();
    }
    for (const [i, socket] of sockets.entries()) {
      if (i % 2 === 0) continue;
      const [answer] = parseResponses(socket.received);
      assert.equal(answer?.status, 408, 'a slow body gets 408');
      assert.equal(errorOf(answer!.body).error, 'REQUEST_TIMEOUT');
    }
    assert.match(server.output(), /REQUEST_TIMEOUT/);
    assert.match(server.output(), /HANDSHAKE_TIMEOUT/);
    assert.equal(await kv.get('slow'), undefined);
    await stillServes();
  });

  it('counts HTTP sockets in connections_max: the next one gets 503 with Retry-After, idle keep-alive sockets are closed', async () => {
    const held: RawHttp[] = [];
    let refused: RawHttp | null = null;
    try {
      for (let i = 0; i < CONNECTIONS_MAX + 5 && refused === null; i++) {
        const socket = await RawHttp.open(server.url);
        socket.write(rawRequest(port, 'GET', '/v1/health'));
        const [answer] = await socket.responses(1);
        if (answer!.status === 200) {
          held.push(socket);
          continue;
        }
        assert.equal(answer!.status, 503);
        assert.equal(answer!.headers.get('retry-after'), '1');
        assert.equal(errorOf(answer!.body).error, 'TOO_MANY_CONNECTIONS');
        refused = socket;
      }
      assert.ok(refused !== null, 'a socket past connections_max was refused');
      assert.ok(held.length < CONNECTIONS_MAX, `${held.length} held; the normal clients hold the rest`);
      assert.ok(await refused.waitClosed(5_000), 'the refused socket is closed');
      // Idle keep-alive sockets are closed after http_keep_alive_timeout_ms (Node adds 1 s), so room comes back.
      const closed = await Promise.all(held.map((socket) => socket.waitClosed(KEEP_ALIVE_TIMEOUT_MS + 4_000)));
      assert.ok(closed.every(Boolean), 'idle keep-alive sockets were closed');
      const fresh = await RawHttp.open(server.url);
      fresh.write(rawRequest(port, 'GET', '/v1/health', { connection: 'close' }));
      assert.equal((await fresh.responses(1))[0]!.status, 200);
      fresh.destroy();
    } finally {
      for (const socket of held) socket.destroy();
      refused?.destroy();
    }
    await stillServes();
  });

  it('answers thousands of pipelined requests from one write, in order, a few at a time', async () => {
    await kv.batch(Array.from({ length: 100 }, (_, i) => ({ op: 'put' as const, key: `pipe:${i}`, value: `p${i}` })));
    const count = 3000;
    let requests = '';
    for (let i = 0; i < count; i++) requests += rawRequest(port, 'GET', `/v1/kv/pipe:${i % 100}`);
    const raw = await RawHttp.open(server.url);
    raw.write(requests);
    const answers = await raw.responses(count, 60_000);
    raw.destroy();
    assert.equal(answers.length, count);
    answers.forEach((answer, i) => assert.equal(answer.body.toString(), `p${i % 100}`, `answer ${i}`));
    await stillServes();
  });

  it('stops reading a pipelining client that never reads, closes it as slow, and serves others meanwhile', async () => {
    await kv.put('slow:big', Buffer.alloc(VALUE_BYTES_MAX - 1024, 3));
    await kv.put('probe', 'alive');
    const raw = await RawHttp.open(server.url);
    raw.socket.pause();
    const request = rawRequest(port, 'GET', '/v1/kv/slow:big');
    // Up to 500 MiB of answers if the node answered all it was sent without bound.
    const sender = setInterval(() => {
      if (raw.is_open) raw.write(request.repeat(20));
    }, 10);
    try {
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${base}/v1/kv/probe`, { headers: AUTH });
        assert.equal(response.status, 200);
        await response.arrayBuffer();
      }
      assert.ok(await raw.waitClosed(SLOW_CLIENT_TIMEOUT_MS * 15), 'the slow reader was closed');
    } finally {
      clearInterval(sender);
      raw.destroy();
    }
    assert.match(server.output(), /\(SLOW_CLIENT\)/);
    assert.ok(rssBytes(server.pid) < RSS_BYTES_MAX, `server RSS ${rssBytes(server.pid)} bytes`);
    await stillServes();
  });

  it('answers malformed HTTP with a JSON 400 or 431 and closes', async () => {
    const junk = Buffer.alloc(2048);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919) % 256;
    const cases: [string, string | Buffer, number, string][] = [
      ['binary garbage', junk, 400, 'BAD_REQUEST'],
      ['a header of 1 MiB', rawRequest(port, 'GET', '/v1/health', { 'x-junk': 'j'.repeat(1024 * 1024) }), 431, 'HEADERS_TOO_LARGE'],
      ['a path of 100 KiB', rawRequest(port, 'GET', `/v1/kv/${'k'.repeat(100 * 1024)}`), 431, 'HEADERS_TOO_LARGE'],
      ['a bad chunk size', `${rawRequest(port, 'PUT', '/v1/kv/chunk', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })}zz\r\nabc\r\n`, 400, 'BAD_REQUEST'],
      ['Content-Length and chunked', rawRequest(port, 'PUT', '/v1/kv/smuggle', { 'content-type': 'application/json', 'content-length': 3, 'transfer-encoding': 'chunked' }, '0\r\n\r\n'), 400, 'BAD_REQUEST'],
      ['a negative Content-Length', rawRequest(port, 'PUT', '/v1/kv/negative', { 'content-type': 'application/json', 'content-length': -1 }), 400, 'BAD_REQUEST'],
      ['a space in the method', 'G ET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 400, 'BAD_REQUEST'],
    ];
    for (const [name, bytes, expected, code] of cases) {
      const raw = await RawHttp.open(server.url);
      raw.write(bytes);
      assert.ok(await raw.waitClosed(5_000), `${name}: closed`);
      const [answer] = parseResponses(raw.received);
      assert.equal(answer?.status, expected, `${name}: ${raw.received.toString('latin1', 0, 200)}`);
      assert.equal(errorOf(answer!.body).error, code, name);
    }
    for (const key of ['chunk', 'smuggle', 'negative']) assert.equal(await kv.get(key), undefined, key);
    await stillServes();
  });

  it('keeps every value the normal clients wrote, and no hostile connection is left', async () => {
    await traffic.stop();
    assert.deepEqual(traffic.errors, []);
    assert.ok(traffic.written.size > 0);
    const keys = [...traffic.written.keys()];
    const body = JSON.stringify({ ops: keys.map((key) => ({ op: 'get', key })) });
    const response = await fetch(`${base}/v1/batch`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body });
    const results = (await response.json() as { results: { code: string; value?: string }[] }).results;
    keys.forEach((key, i) => assert.deepEqual(results[i], { code: 'OK', value: traffic.written.get(key) }, key));
    // Idle keep-alive sockets of fetch close within the keep-alive time; then only the WebSocket client is left.
    let connections = Infinity;
    for (let i = 0; i < 40 && connections > 1; i++) {
      await delay(250);
      connections = ((await kv.stats()) as { connections: number }).connections;
    }
    assert.equal(connections, 1, 'only the normal WebSocket client is connected');
    assert.ok(rssBytes(server.pid) < RSS_BYTES_MAX);
    assert.equal(server.child.exitCode, null, 'the node is alive');
  });
});

describe('HTTP sockets and connections_per_ip_max', { timeout: 30_000 }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '1', '--connections-per-ip-max', '3']);
  });

  after(async () => {
    assert.equal(await server?.stop(), 0);
  });

  it('closes the fourth socket from one address at once; the first three are served', async () => {
    const port = Number(new URL(server.url).port);
    const sockets = await Promise.all([0, 1, 2, 3].map(() => RawHttp.open(server.url)));
    try {
      for (const socket of sockets) socket.write(`GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      assert.ok(await sockets[3]!.waitClosed(5_000), 'the fourth socket was closed');
      for (const socket of sockets.slice(0, 3)) assert.equal((await socket.responses(1))[0]!.status, 200);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

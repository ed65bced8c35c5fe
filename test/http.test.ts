/**
 * The HTTP API (docs/PROTOCOL.md, "HTTP") against real `pikv serve` processes on free loopback
 * ports, driven with curl as a user would (every route), plus the WebSocket client to show the
 * data is the same, a node with a client token, and a two-node cluster that forwards.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, Op, WireCodec, type PikvClient } from '../src/index.js';
import { isErrorResponse } from '../src/protocol/codec.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { clusterOp, startNode, waitForMembers } from './helpers/cluster.js';
import { curl, errorOf, httpBase, NO_CURL } from './helpers/http.js';
import { delay } from './helpers/raw-socket.js';

const codec = new WireCodec();
const JSON_TYPE = ['-H', 'content-type: application/json'];
const KEY_BYTES_MAX = 256;

interface BatchResult {
  code: string;
  value?: string;
  value_base64?: string;
  message?: string;
}

function results(body: Buffer): BatchResult[] {
  const parsed = JSON.parse(body.toString()) as { results: BatchResult[] };
  assert.ok(Array.isArray(parsed.results), body.toString());
  return parsed.results;
}

describe('HTTP API with curl', { timeout: 120_000, skip: NO_CURL }, () => {
  let server: ServerProcess;
  let base: string;
  let kv: PikvClient;
  let dir: string;

  before(async () => {
    server = await startServer(['--workers', '2', '--key-bytes-max', String(KEY_BYTES_MAX)]);
    base = httpBase(server.url);
    kv = await connect(server.url);
    dir = mkdtempSync(join(tmpdir(), 'pikv-http-'));
  });

  after(async () => {
    await kv.close();
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serve prints the HTTP address', () => {
    assert.match(server.output(), /pikv HTTP API on http:\/\/127\.0\.0\.1:\d+\/v1\/: curl http:\/\/127\.0\.0\.1:\d+\/v1\/health/);
  });

  it('PUT, GET, HEAD and DELETE /v1/kv/<key>', async () => {
    const put = await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'hello', `${base}/v1/kv/greeting`]);
    assert.equal(put.status, 204);
    assert.equal(put.body.length, 0);
    assert.equal(put.headers.get('cache-control'), 'no-store');
    assert.equal(put.headers.get('access-control-allow-origin'), undefined, 'no CORS headers');

    const get = await curl([`${base}/v1/kv/greeting`]);
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'hello');
    assert.equal(get.headers.get('content-type'), 'application/octet-stream');
    assert.equal(get.headers.get('x-content-type-options'), 'nosniff');

    const head = await curl(['-I', `${base}/v1/kv/greeting`]);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '5');
    assert.ok(!head.body.includes('hello'), 'no body after HEAD (curl -I prints only the headers)');

    // The same data as through the WebSocket protocol, both ways.
    assert.equal(Buffer.from((await kv.get('greeting'))!).toString(), 'hello');
    await kv.put('from-ws', 'written over WebSocket');
    assert.equal((await curl([`${base}/v1/kv/from-ws`])).body.toString(), 'written over WebSocket');

    const overwrite = await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'hi again', `${base}/v1/kv/greeting`]);
    assert.equal(overwrite.status, 204, 'an overwrite answers as a first write: the engine does not say which it was');
    assert.equal((await curl([`${base}/v1/kv/greeting`])).body.toString(), 'hi again');

    const del = await curl(['-X', 'DELETE', ...JSON_TYPE, `${base}/v1/kv/greeting`]);
    assert.equal(del.status, 204);
    const again = await curl(['-X', 'DELETE', ...JSON_TYPE, `${base}/v1/kv/greeting`]);
    assert.equal(again.status, 404);
    assert.deepEqual(errorOf(again.body), { error: 'NOT_FOUND', message: 'key not found' });
    const gone = await curl([`${base}/v1/kv/greeting`]);
    assert.equal(gone.status, 404);
    assert.equal(gone.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(errorOf(gone.body).error, 'NOT_FOUND');
    assert.equal(await kv.get('greeting'), undefined);
  });

  it('stores binary bodies byte for byte, an empty one too, and a 2 MiB one curl sends after 100 Continue', async () => {
    const binary = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) binary[i] = i;
    const file = join(dir, 'binary');
    writeFileSync(file, binary);
    assert.equal((await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', `@${file}`, `${base}/v1/kv/binary`])).status, 204);
    assert.deepEqual((await curl([`${base}/v1/kv/binary`])).body, binary);

    assert.equal((await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', '', `${base}/v1/kv/empty`])).status, 204);
    const empty = await curl([`${base}/v1/kv/empty`]);
    assert.equal(empty.status, 200);
    assert.equal(empty.body.length, 0);

    const large = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < large.length; i += 4) large.writeUInt32LE(i * 2654435761 >>> 0, i);
    const large_file = join(dir, 'large');
    writeFileSync(large_file, large);
    const put = await curl(['-v', '-X', 'PUT', ...JSON_TYPE, '--data-binary', `@${large_file}`, `${base}/v1/kv/large`]);
    assert.equal(put.status, 204);
    assert.match(put.stderr, /Expect: 100-continue/i, 'curl asked before sending 2 MiB');
    assert.deepEqual((await curl([`${base}/v1/kv/large`])).body, large);
    assert.deepEqual(Buffer.from((await kv.get('large'))!), large);
  });

  it('takes keys percent-decoded to bytes: UTF-8, slashes, any byte, up to key_bytes_max', async () => {
    const cases: { path: string; key: Buffer }[] = [
      { path: 'caf%C3%A9', key: Buffer.from('café') },
      { path: 'users/42/name', key: Buffer.from('users/42/name') },
      { path: 'a%2Fb', key: Buffer.from('a/b') },
      { path: 'plus+space%20', key: Buffer.from('plus+space ') },
      { path: 'bin%00%FF', key: Buffer.from([0x62, 0x69, 0x6e, 0x00, 0xff]) },
    ];
    for (const [i, { path, key }] of cases.entries()) {
      assert.equal((await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', `v${i}`, `${base}/v1/kv/${path}`])).status, 204, path);
      assert.equal(Buffer.from((await kv.get(key))!).toString(), `v${i}`, `${path} is the key ${key.toString('hex')}`);
      assert.equal((await curl([`${base}/v1/kv/${path}`])).body.toString(), `v${i}`);
    }
    // curl sends raw UTF-8 in the path as is: the same key as its percent-encoded form.
    assert.equal((await curl([`${base}/v1/kv/café`])).body.toString(), 'v0');

    const longest = '%41'.repeat(KEY_BYTES_MAX);
    assert.equal((await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'long', `${base}/v1/kv/${longest}`])).status, 204);
    assert.equal((await curl([`${base}/v1/kv/${'A'.repeat(KEY_BYTES_MAX)}`])).body.toString(), 'long');
    const too_long = await curl([`${base}/v1/kv/${'A'.repeat(KEY_BYTES_MAX + 1)}`]);
    assert.equal(too_long.status, 400);
    assert.equal(errorOf(too_long.body).error, 'KEY_TOO_LARGE');
    assert.match(errorOf(too_long.body).message, new RegExp(`key_bytes_max is ${KEY_BYTES_MAX}`));

    const bad_escape = await curl([`${base}/v1/kv/a%zz`]);
    assert.equal(bad_escape.status, 400);
    assert.equal(errorOf(bad_escape.body).error, 'BAD_REQUEST');
    const no_key = await curl([`${base}/v1/kv/`]);
    assert.equal(no_key.status, 400);
    assert.match(errorOf(no_key.body).message, /no key/);
  });

  it('POST /v1/batch with JSON: get, put, del, base64 keys and values, results in order', async () => {
    const body = JSON.stringify({
      ops: [
        { op: 'put', key: 'batch:a', value: 'one' },
        { op: 'put', key_base64: Buffer.from([0, 1, 2]).toString('base64'), value_base64: Buffer.from([0xff, 0, 0x80]).toString('base64') },
        { op: 'get', key: 'batch:a' },
        { op: 'get', key_base64: 'AAEC' },
        { op: 'get', key: 'batch:absent' },
        { op: 'put', key: 'batch:empty', value: '' },
        { op: 'get', key: 'batch:empty' },
        { op: 'put', key: 'batch:text', value: 'line 1\nline "2"\t✓' },
        { op: 'get', key: 'batch:text' },
        { op: 'del', key: 'batch:a' },
        { op: 'delete', key: 'batch:a' },
        { op: 'put', key: 'k'.repeat(KEY_BYTES_MAX + 1), value: 'x' },
      ],
    });
    const response = await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', body, `${base}/v1/batch`]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
    const got = results(response.body);
    assert.deepEqual(got.slice(0, 11), [
      { code: 'OK' }, { code: 'OK' },
      { code: 'OK', value: 'one' },
      { code: 'OK', value_base64: Buffer.from([0xff, 0, 0x80]).toString('base64') },
      { code: 'NOT_FOUND' },
      { code: 'OK' }, { code: 'OK', value: '' },
      { code: 'OK' }, { code: 'OK', value: 'line 1\nline "2"\t✓' },
      { code: 'OK' }, { code: 'NOT_FOUND' },
    ]);
    assert.equal(got[11]!.code, 'KEY_TOO_LARGE', 'a per-op limit fails that op only');
    assert.equal(typeof got[11]!.message, 'string');

    const base64 = await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', JSON.stringify({ ops: [{ op: 'get', key: 'batch:text' }], value_encoding: 'base64' }), `${base}/v1/batch`]);
    assert.deepEqual(results(base64.body), [{ code: 'OK', value_base64: Buffer.from('line 1\nline "2"\t✓').toString('base64') }]);
    // Control characters come back as base64, so the JSON stays small and exact.
    await kv.put('batch:control', Buffer.from([0x61, 0x01, 0x62]));
    const control = await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops":[{"op":"get","key":"batch:control"}]}', `${base}/v1/batch`]);
    assert.deepEqual(results(control.body), [{ code: 'OK', value_base64: 'YQFi' }]);
  });

  it('POST /v1/batch with CBOR in the wire format answers the WebSocket response map', async () => {
    const request = codec.encodeRequest({
      id: 77,
      op: Uint8Array.of(Op.PUT, Op.GET, Op.DELETE, Op.GET, Op.PING),
      key_lengths: Uint32Array.of(6, 6, 6, 6, 0),
      value_lengths: Uint32Array.of(4, 0, 0, 0, 0),
      keys: Buffer.from('cbor:kcbor:kcbor:kcbor:k'),
      values: Buffer.from('val!'),
    });
    const file = join(dir, 'request.cbor');
    writeFileSync(file, request);
    const response = await curl(['-X', 'POST', '-H', 'content-type: application/cbor', '--data-binary', `@${file}`, `${base}/v1/batch`]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/cbor');
    const decoded = codec.decodeResponse(response.body);
    assert.ok(!isErrorResponse(decoded));
    assert.equal(decoded.id, 77);
    assert.deepEqual([...decoded.status], [0, 0, 0, 1, 0]);
    assert.equal(Buffer.from(decoded.values).toString(), 'val!');

    const garbage = await curl(['-X', 'POST', '-H', 'content-type: application/cbor', '--data-binary', 'not cbor', `${base}/v1/batch`]);
    assert.equal(garbage.status, 400);
    assert.equal(errorOf(garbage.body).error, 'BAD_REQUEST');
  });

  it('GET /v1/health: node id, epoch, serving', async () => {
    const health = await curl([`${base}/v1/health`]);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body.toString()), { node_id: 'local', epoch: 0, serving: true });
    assert.equal((await curl(['-I', `${base}/v1/health`])).status, 200);
  });

  it('answers mistakes with the status a curl user expects and a JSON error', async () => {
    const cases: { args: string[]; status: number; code: string; header?: [string, RegExp] }[] = [
      { args: ['-X', 'PATCH', `${base}/v1/kv/k`], status: 405, code: 'METHOD_NOT_ALLOWED', header: ['allow', /^GET, HEAD, PUT, DELETE$/] },
      { args: [`${base}/v1/batch`], status: 405, code: 'METHOD_NOT_ALLOWED', header: ['allow', /^POST$/] },
      { args: ['-X', 'OPTIONS', `${base}/v1/kv/k`], status: 405, code: 'METHOD_NOT_ALLOWED' },
      { args: [`${base}/v1/keys`], status: 404, code: 'UNKNOWN_ROUTE' },
      { args: [`${base}/socket`], status: 426, code: 'UNKNOWN_ROUTE', header: ['upgrade', /^websocket$/] },
      { args: ['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'v', `${base}/v1/kv/k?ttl=0`], status: 400, code: 'BAD_EXPIRY' },
      { args: ['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'v', `${base}/v1/kv/k?ttl=1.5`], status: 400, code: 'BAD_EXPIRY' },
      { args: [`${base}/v1/kv/k?ttl=10`], status: 400, code: 'BAD_REQUEST' },
      { args: [`${base}/v1/kv/k?pretty`], status: 400, code: 'BAD_REQUEST' },
      { args: ['-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops": [', `${base}/v1/batch`], status: 400, code: 'BAD_REQUEST' },
      { args: ['-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops": [{"op": "incr", "key": "k"}]}', `${base}/v1/batch`], status: 400, code: 'BAD_REQUEST' },
      { args: ['-X', 'POST', '-H', 'content-type: text/plain', '--data-binary', '{}', `${base}/v1/batch`], status: 403, code: 'CROSS_SITE' },
      // Writes without a JSON or CBOR type (curl -d sends a form type): what a web page can send unasked.
      { args: ['-X', 'PUT', '--data-binary', 'v', `${base}/v1/kv/k`], status: 403, code: 'CROSS_SITE' },
      { args: ['-X', 'PUT', '-H', 'content-type: application/octet-stream', '--data-binary', 'v', `${base}/v1/kv/k`], status: 403, code: 'CROSS_SITE' },
      { args: ['-X', 'DELETE', `${base}/v1/kv/k`], status: 403, code: 'CROSS_SITE' },
      { args: ['-H', 'Host: evil.example', `${base}/v1/kv/k`], status: 421, code: 'BAD_HOST' },
      { args: ['-H', 'Origin: http://evil.example', `${base}/v1/health`], status: 403, code: 'CROSS_SITE' },
    ];
    for (const { args, status, code, header } of cases) {
      const response = await curl(args);
      assert.equal(response.status, status, `${args.join(' ')}: ${response.body.toString()}`);
      assert.equal(errorOf(response.body).error, code, args.join(' '));
      if (header !== undefined) assert.match(response.headers.get(header[0]) ?? '', header[1], `${args.join(' ')}: ${header[0]}`);
    }
    assert.equal(await kv.get('k'), undefined, 'no refused write was applied');
    // A page on the node's own address is no foreign page.
    const own = await curl(['-H', `Origin: ${base}`, `${base}/v1/health`]);
    assert.equal(own.status, 200);
  });
});

describe('HTTP API on a node with a client token', { timeout: 60_000, skip: NO_CURL }, () => {
  const TOKEN = 'http-test-token';
  let server: ServerProcess;
  let base: string;

  before(async () => {
    server = await startServer(['--workers', '1'], { PIKV_CLIENT_TOKEN: TOKEN });
    base = httpBase(server.url);
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
  });

  it('wants Authorization: Bearer on every route but /v1/health; with it, any body type may write', async () => {
    const bearer = ['-H', `Authorization: Bearer ${TOKEN}`];
    const missing = await curl([`${base}/v1/kv/k`]);
    assert.equal(missing.status, 401);
    assert.equal(errorOf(missing.body).error, 'AUTH_FAILED');
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await curl(['-H', 'Authorization: Bearer nope', '-X', 'PUT', ...JSON_TYPE, '--data-binary', 'v', `${base}/v1/kv/k`]);
    assert.equal(wrong.status, 401);
    assert.equal((await curl(['-H', `Authorization: Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, `${base}/v1/kv/k`])).status, 401);
    assert.equal((await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops":[]}', `${base}/v1/batch`])).status, 401);

    const put = await curl([...bearer, '-X', 'PUT', '-H', 'content-type: application/octet-stream', '--data-binary', 'secret value', `${base}/v1/kv/k`]);
    assert.equal(put.status, 204);
    assert.equal((await curl([...bearer, '-X', 'PUT', '--data-binary', 'form-typed', `${base}/v1/kv/form`])).status, 204);
    assert.equal((await curl([...bearer, `${base}/v1/kv/k`])).body.toString(), 'secret value');
    assert.equal((await curl([...bearer, '-X', 'DELETE', `${base}/v1/kv/form`])).status, 204);
    const batch = await curl([...bearer, '-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops":[{"op":"get","key":"k"}]}', `${base}/v1/batch`]);
    assert.deepEqual(results(batch.body), [{ code: 'OK', value: 'secret value' }]);

    const health = await curl([`${base}/v1/health`]);
    assert.equal(health.status, 200, 'health stays open for load balancers');
    assert.equal(JSON.parse(health.body.toString()).serving, true);
    assert.match(server.output(), /listening on/);
  });
});

describe('HTTP API in a two-node cluster', { timeout: 90_000, skip: NO_CURL }, () => {
  let a: ServerProcess;
  let b: ServerProcess;

  before(async () => {
    a = await startNode('a');
    b = await startNode('b', [a.url]);
    await waitForMembers([a.url, b.url], ['a', 'b']);
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('forwards keys the node does not own, and every node reads every key', async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `cluster:${i}`);
    for (const key of keys) {
      assert.equal((await curl(['-X', 'PUT', ...JSON_TYPE, '--data-binary', `v-${key}`, `${httpBase(a.url)}/v1/kv/${key}`])).status, 204);
    }
    const batch = await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', JSON.stringify({ ops: keys.map((key) => ({ op: 'get', key })) }), `${httpBase(b.url)}/v1/batch`]);
    assert.deepEqual(results(batch.body), keys.map((key) => ({ code: 'OK', value: `v-${key}` })));
    for (const key of keys.slice(0, 5)) assert.equal((await curl([`${httpBase(b.url)}/v1/kv/${key}`])).body.toString(), `v-${key}`);
    const status = (await clusterOp(a.url, Op.CLUSTER_STATUS)) as { ops_forwarded: number };
    assert.ok(status.ops_forwarded > 0, 'node a forwarded the keys b owns');

    const health_a = JSON.parse((await curl([`${httpBase(a.url)}/v1/health`])).body.toString()) as { node_id: string; epoch: number; serving: boolean };
    const health_b = JSON.parse((await curl([`${httpBase(b.url)}/v1/health`])).body.toString()) as { node_id: string; epoch: number; serving: boolean };
    assert.deepEqual([health_a.node_id, health_b.node_id], ['a', 'b']);
    assert.equal(health_a.epoch, health_b.epoch);
    assert.ok(health_a.epoch > 0);
    assert.equal(health_a.serving && health_b.serving, true);
  });
});

describe('HTTP API on a node that is not serving', { timeout: 60_000, skip: NO_CURL }, () => {
  let server: ServerProcess;

  before(async () => {
    // etcd mode with no etcd: the node listens, but serves nothing until it has read the view.
    server = await startServer(['--workers', '1', '--node-id', 'lonely', '--etcd', 'http://127.0.0.1:1'], { PIKV_CLUSTER_SECRET: 'secret' });
  });

  after(async () => {
    await server.stop();
  });

  it('answers 503 with Retry-After: health and data routes say CLUSTER_UNAVAILABLE', async () => {
    const base = httpBase(server.url);
    const health = await curl([`${base}/v1/health`]);
    assert.equal(health.status, 503);
    assert.equal(health.headers.get('retry-after'), '1');
    assert.deepEqual(JSON.parse(health.body.toString()), {
      node_id: 'lonely', epoch: 0, serving: false, error: 'CLUSTER_UNAVAILABLE', message: errorOf(health.body).message,
    });
    for (const args of [[`${base}/v1/kv/k`], ['-X', 'PUT', ...JSON_TYPE, '--data-binary', 'v', `${base}/v1/kv/k`]]) {
      const response = await curl(args);
      assert.equal(response.status, 503, args.join(' '));
      assert.equal(response.headers.get('retry-after'), '1');
      assert.equal(errorOf(response.body).error, 'CLUSTER_UNAVAILABLE');
    }
    const batch = await curl(['-X', 'POST', ...JSON_TYPE, '--data-binary', '{"ops":[{"op":"get","key":"k"}]}', `${base}/v1/batch`]);
    assert.equal(batch.status, 200, 'a batch answers per op');
    assert.equal(results(batch.body)[0]!.code, 'CLUSTER_UNAVAILABLE');
  });
});

describe('HTTP API over TLS (--tls-cert-file)', { timeout: 60_000, skip: NO_CURL || opensslMissing() }, () => {
  let server: ServerProcess;
  let dir: string;
  let ca: string;
  const HANDSHAKE_TIMEOUT_MS = 1000;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pikv-https-'));
    const path = (name: string): string => join(dir, name);
    const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pikv test CA', '-keyout', path('ca.key'), '-out', path('ca.pem'));
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', path('node.key'), '-out', path('node.csr'));
    writeFileSync(path('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    openssl('x509', '-req', '-in', path('node.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', path('ext.cnf'), '-out', path('node.pem'));
    ca = readFileSync(path('ca.pem'), 'utf8');
    server = await startServer(['--workers', '1', '--tls-cert-file', path('node.pem'), '--tls-key-file', path('node.key'), '--handshake-timeout-ms', String(HANDSHAKE_TIMEOUT_MS)]);
  });

  after(async () => {
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https:// on the wss:// port, and keep-alive and wss:// connections outlive handshake_timeout_ms', async () => {
    assert.match(server.url, /^wss:/);
    const base = server.url.replace(/^wss:/, 'https:');
    assert.match(server.output(), new RegExp(`HTTP API on ${base}/v1/`));
    const cacert = join(dir, 'ca.pem');
    assert.equal((await curl(['--cacert', cacert, '-X', 'PUT', ...JSON_TYPE, '--data-binary', 'over tls', `${base}/v1/kv/tls`])).status, 204);
    assert.equal((await curl(['--cacert', cacert, `${base}/v1/kv/tls`])).body.toString(), 'over tls');

    // One keep-alive socket, two requests further apart than the handshake timeout.
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
    const get = (): Promise<{ body: string; port: number }> => new Promise((resolve, reject) => {
      httpsGet(`${base}/v1/kv/tls`, { agent }, (response) => {
        const chunks: Buffer[] = [];
        const port = response.socket.localPort ?? 0;
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ body: Buffer.concat(chunks).toString(), port }));
      }).on('error', reject);
    });
    const first = await get();
    const kv = await connect(server.url, { ca });
    await delay(HANDSHAKE_TIMEOUT_MS * 2.5);
    const second = await get();
    agent.destroy();
    assert.deepEqual([first.body, second.body], ['over tls', 'over tls']);
    assert.equal(second.port, first.port, 'the same socket served both');
    assert.equal(Buffer.from((await kv.get('tls'))!).toString(), 'over tls', 'the wss:// connection is still open');
    await kv.close();
    assert.doesNotMatch(server.output(), /HANDSHAKE_TIMEOUT/);
  });
});

function opensslMissing(): string | false {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return false;
  } catch {
    return 'openssl is not installed';
  }
}

/**
 * GET /metrics on a real node: read back with a real Prometheus text parser, and its counters
 * checked against the ops this test sent; the client token rules; --metrics off; and the
 * dashboard's JSON routes. The dashboard itself in a browser: dashboard.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type PikvClient } from '../src/index.js';
import { curl, httpBase, NO_CURL } from './helpers/http.js';
import { parseMetrics, sumOf, valueOf } from './helpers/prometheus.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { temporaryDataDir } from './helpers/persistence.js';
import { rmSync } from 'node:fs';
import { get as httpGet, type ClientRequest } from 'node:http';
import { SUBSCRIBERS_MAX } from '../src/node/observe/event-stream.js';
import { waitUntil } from './helpers/etcd.js';

const TIMEOUT_MS = 60_000;

async function scrape(base: string, headers: string[] = []): Promise<ReturnType<typeof parseMetrics>> {
  const answer = await curl([...headers, `${base}/metrics`]);
  assert.equal(answer.status, 200, answer.body.toString());
  assert.match(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(answer.body.toString());
}

describe('GET /metrics', { skip: NO_CURL, timeout: TIMEOUT_MS }, () => {
  let server: ServerProcess;
  let client: PikvClient;
  let base: string;

  before(async () => {
    server = await startServer(['--workers', '2']);
    base = httpBase(server.url);
    client = await connect(server.url);
  });

  after(async () => {
    await client?.close();
    await server?.stop();
  });

  it('counts every op sent, by type and result, and one latency observation per request', async () => {
    const before_scrape = await scrape(base);
    const requests_before = valueOf(before_scrape, 'pikv_requests_total');
    const puts = 300;
    const deletes = 40;
    const keys = Array.from({ length: puts }, (_, i) => `metrics-key-${i}`);
    // Batches of 100 PUTs, then GETs of every key plus 50 absent ones, then DELETEs.
    for (let i = 0; i < puts; i += 100) await client.batch(keys.slice(i, i + 100).map((key) => ({ op: 'put' as const, key, value: `v${key}` })));
    const absent = Array.from({ length: 50 }, (_, i) => `metrics-absent-${i}`);
    await client.batch([...keys, ...absent].map((key) => ({ op: 'get' as const, key })));
    await client.batch(keys.slice(0, deletes).map((key) => ({ op: 'delete' as const, key })));
    const requests_sent = puts / 100 + 2;

    const metrics = await scrape(base);
    assert.equal(valueOf(metrics, 'pikv_metrics_enabled'), 1);
    assert.equal(valueOf(metrics, 'pikv_ops_total', { origin: 'client', op: 'put', code: 'OK' }), puts);
    assert.equal(valueOf(metrics, 'pikv_ops_total', { origin: 'client', op: 'get', code: 'OK' }), puts);
    assert.equal(valueOf(metrics, 'pikv_ops_total', { origin: 'client', op: 'get', code: 'NOT_FOUND' }), absent.length);
    assert.equal(valueOf(metrics, 'pikv_ops_total', { origin: 'client', op: 'delete', code: 'OK' }), deletes);
    assert.equal(valueOf(metrics, 'pikv_requests_total') - requests_before, requests_sent);
    assert.equal(sumOf(metrics, 'pikv_keys'), puts - deletes);
    const latency = metrics.get('pikv_request_duration_seconds')!;
    assert.equal(latency.type, 'HISTOGRAM');
    assert.equal(Number(latency.metrics[0]!.count), valueOf(metrics, 'pikv_requests_total'));
    assert.equal(Number(latency.metrics[0]!.buckets!['+Inf'] ?? latency.metrics[0]!.count), valueOf(metrics, 'pikv_requests_total'));
    assert.equal(metrics.get('pikv_keys')!.metrics.length, 2, 'one keys sample per partition');
    assert.ok(sumOf(metrics, 'pikv_bytes_used') > 0);
    assert.ok(sumOf(metrics, 'pikv_bytes_reserved') >= sumOf(metrics, 'pikv_bytes_used') - 2 * 8192);
    assert.equal(valueOf(metrics, 'pikv_connections', { protocol: 'ws' }), 1);
    assert.ok(valueOf(metrics, 'pikv_connections', { protocol: 'http' }) >= 1, 'the scrape itself is an HTTP connection');
    for (const name of ['pikv_event_loop_lag_seconds', 'pikv_cpu_seconds_total', 'pikv_worker_restarts_total', 'pikv_fsync_duration_seconds', 'pikv_forwarded_ops_total', 'pikv_move_active', 'pikv_energy_joules_total']) {
      assert.ok(metrics.has(name), `${name} is served`);
    }
  });

  it('shows the ops in the summary the dashboard and pikv top read', async () => {
    const answer = await curl([`${base}/v1/summary?history=1`]);
    assert.equal(answer.status, 200);
    const summary = JSON.parse(answer.body.toString()) as { state: string; keys: number; history: unknown[]; metrics_enabled: boolean };
    assert.equal(summary.state, 'serving');
    assert.equal(summary.keys, 260);
    assert.equal(summary.metrics_enabled, true);
    assert.ok(Array.isArray(summary.history));
    const cluster = JSON.parse((await curl([`${base}/v1/cluster`])).body.toString()) as { nodes: { node_id: string }[]; ring: { owners: string[][] } };
    assert.equal(cluster.nodes.length, 1);
    assert.equal(cluster.ring.owners.length, 256);
  });

  it('serves the dashboard page and its files, and refuses writes to them', async () => {
    const page = await curl([`${base}/`]);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.equal((await curl([`${base}/dashboard/uPlot.iife.min.js`])).status, 200);
    assert.equal((await curl([`${base}/dashboard/nope.js`])).status, 404);
    assert.equal((await curl(['-X', 'POST', `${base}/metrics`])).status, 405);
    assert.equal((await curl(['-X', 'DELETE', `${base}/`])).status, 405);
  });
});

describe('GET /v1/events', { timeout: TIMEOUT_MS }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '1']);
  });

  after(async () => {
    await server?.stop();
  });

  it('streams the cluster once a second, to at most SUBSCRIBERS_MAX viewers at once', async () => {
    const base = httpBase(server.url);
    const open: ClientRequest[] = [];
    try {
      const first = await openStream(base, open);
      assert.equal(first.status, 200);
      assert.match(first.headers, /text\/event-stream/);
      const event = await first.next();
      assert.match(event, /^event: cluster\ndata: \{/m);
      const summary = JSON.parse(/^data: (.*)$/m.exec(event)![1]!) as { nodes: { node_id: string; state: string }[] };
      assert.deepEqual(summary.nodes.map((n) => [n.node_id, n.state]), [['local', 'serving']]);
      for (let i = 1; i < SUBSCRIBERS_MAX; i++) assert.equal((await openStream(base, open)).status, 200);
      const refused = await openStream(base, open);
      assert.equal(refused.status, 503);
      open.shift()!.destroy();
      await waitUntil('a closed stream frees its place', async () => {
        const again = await openStream(base, open);
        if (again.status !== 200) open.pop()!.destroy();
        return again.status === 200;
      }, 10_000, 100);
    } finally {
      for (const request of open) request.destroy();
    }
  });
});

/** Opens GET /v1/events; resolves with its status, headers and a reader of its next event. */
function openStream(base: string, open: ClientRequest[]): Promise<{ status: number; headers: string; next: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(`${base}/v1/events`, { agent: false }, (res) => {
      let buffered = '';
      let waiting: ((event: string) => void) | null = null;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        const end = buffered.indexOf('\n\n', buffered.indexOf('event:'));
        if (waiting !== null && buffered.includes('event:') && end >= 0) {
          const start = buffered.indexOf('event:');
          const event = buffered.slice(start, end);
          buffered = buffered.slice(end + 2);
          const done = waiting;
          waiting = null;
          done(event);
        }
      });
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        headers: String(res.headers['content-type'] ?? ''),
        next: () => new Promise((done) => {
          waiting = done;
          res.emit('data', '');
        }),
      });
    });
    request.on('error', reject);
    open.push(request);
  });
}

describe('GET /metrics with a client token', { skip: NO_CURL, timeout: TIMEOUT_MS }, () => {
  const TOKEN = 'metrics-test-token';
  let server: ServerProcess;
  let base: string;

  before(async () => {
    server = await startServer(['--workers', '1'], { PIKV_CLIENT_TOKEN: TOKEN });
    base = httpBase(server.url);
  });

  after(async () => {
    await server?.stop();
  });

  it('needs the token for /metrics and the dashboard data, not for the page', async () => {
    for (const path of ['/metrics', '/v1/summary', '/v1/cluster', '/v1/events']) assert.equal((await curl([`${base}${path}`])).status, 401, path);
    assert.equal((await curl([`${base}/`])).status, 200);
    const metrics = await scrape(base, ['-H', `authorization: Bearer ${TOKEN}`]);
    assert.equal(valueOf(metrics, 'pikv_metrics_enabled'), 1);
  });
});

describe('--metrics off', { skip: NO_CURL, timeout: TIMEOUT_MS }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '1', '--metrics', 'off']);
  });

  after(async () => {
    await server?.stop();
  });

  it('serves /metrics without ops and latency counting', async () => {
    const client = await connect(server.url);
    await client.put('k', 'v');
    await client.close();
    const metrics = await scrape(httpBase(server.url));
    assert.equal(valueOf(metrics, 'pikv_metrics_enabled'), 0);
    assert.equal(metrics.has('pikv_ops_total'), false);
    assert.equal(metrics.has('pikv_request_duration_seconds'), false);
    assert.equal(sumOf(metrics, 'pikv_keys'), 1);
  });
});

describe('/metrics with --data-dir', { skip: NO_CURL, timeout: TIMEOUT_MS }, () => {
  let server: ServerProcess;
  let dir: string;

  before(async () => {
    dir = temporaryDataDir('metrics');
    server = await startServer(['--workers', '1', '--data-dir', dir, '--fsync', 'always']);
  });

  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts fsyncs with their latency, and the log bytes written', async () => {
    const client = await connect(server.url);
    for (let i = 0; i < 5; i++) await client.put(`durable-${i}`, 'v');
    await client.close();
    const metrics = await scrape(httpBase(server.url));
    const fsync = metrics.get('pikv_fsync_duration_seconds')!.metrics[0]!;
    assert.ok(Number(fsync.count) >= 5, `one fsync per acknowledged write at least (got ${fsync.count})`);
    assert.equal(Number(fsync.buckets!['+Inf']), Number(fsync.count));
    assert.ok(sumOf(metrics, 'pikv_log_bytes') > 0);
    assert.ok(sumOf(metrics, 'pikv_log_bytes_written_total') >= sumOf(metrics, 'pikv_log_bytes'));
  });
});

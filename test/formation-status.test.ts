/**
 * A node on an etcd member board shows `pikv etcd-form`'s state (--formation-status-file): in
 * /v1/summary and /v1/cluster, and on the dashboard (Debian's chromium, when installed), while
 * etcd has not formed yet (its etcd endpoint does not answer, as before formation). The file
 * changing is seen on the next summary; a file that is not JSON is shown as such.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import puppeteer, { type Browser } from 'puppeteer-core';
import { freeLoopbackPort } from '../src/cluster/etcd/local-server.js';
import { httpBase } from './helpers/http.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

const CHROMIUM = process.env['PIKV_CHROMIUM'] ?? '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'pikv-formation-status-'));
const status_file = join(dir, 'formation.json');
let node: ServerProcess | null = null;
let browser: Browser | null = null;

after(async () => {
  await browser?.close();
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Summary { state: string; formation?: { state: string; reason: string } }

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  return await response.json() as T;
}

describe('etcd formation state in the node summary and dashboard', { timeout: 60_000 }, () => {
  it('shows waiting and why, follows the file, and says when it is unreadable', async () => {
    const waiting = 'waiting for etcd formation: saw 2 of 3 members (a, b)';
    writeFileSync(status_file, JSON.stringify({ state: 'waiting', reason: waiting, updated_ms: Date.now() }));
    const dead_etcd = `http://127.0.0.1:${await freeLoopbackPort()}`;
    node = await startServer(['--node-id', 'a', '--etcd', dead_etcd, '--workers', '1', '--max-memory', '32mb', '--formation-status-file', status_file],
      { PIKV_CLUSTER_SECRET: 'formation-status-secret' });
    const base = httpBase(node.url);
    const summary = await getJson<Summary>(`${base}/v1/summary`);
    assert.equal(summary.state, 'not_serving');
    assert.deepEqual({ state: summary.formation?.state, reason: summary.formation?.reason }, { state: 'waiting', reason: waiting });
    const cluster = await getJson<{ nodes: Summary[] }>(`${base}/v1/cluster`);
    assert.equal(cluster.nodes[0]?.formation?.reason, waiting);

    if (existsSync(CHROMIUM)) {
      browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
      const page = await browser.newPage();
      await page.goto(`${base}/`, { waitUntil: 'load' });
      await page.waitForFunction(`!document.getElementById('formation').hidden`, { timeout: 15_000 });
      const text = await page.evaluate(`document.querySelector('#formation [data-node="a"]').textContent`) as string;
      assert.equal(text, `a: etcd formation waiting: ${waiting}`);
    } else {
      console.log(`# formation-status: dashboard part skipped: no chromium at ${CHROMIUM}`);
    }

    writeFileSync(status_file, 'not json');
    assert.match((await getJson<Summary>(`${base}/v1/summary`)).formation?.reason ?? '', /is not valid JSON/);
    writeFileSync(status_file, JSON.stringify({ state: 'running', reason: '', updated_ms: Date.now() }));
    assert.equal((await getJson<Summary>(`${base}/v1/summary`)).formation?.state, 'running');
  });

  it('a node without the setting has no formation field', async () => {
    const plain = await startServer(['--workers', '1', '--max-memory', '32mb']);
    try {
      const summary = await getJson<Summary>(`${httpBase(plain.url)}/v1/summary`);
      assert.equal(summary.formation, undefined);
    } finally {
      await plain.stop();
    }
  });
});

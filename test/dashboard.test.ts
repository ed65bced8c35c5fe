/**
 * The dashboard in a real browser (Debian's chromium, driven by puppeteer-core) and `pikv top`
 * in a real terminal (tmux), against a real three-node etcd cluster with short leases
 * (helpers/etcd-cluster.ts): the ring shows every node, ops/s rises while a load runs, a killed
 * node turns red within its lease time, and top shows every node and exits cleanly on q.
 * Screenshots go to docs/img/ (README.md shows dashboard.png).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { connectCluster } from '../src/index.js';
import { etcdMissing } from './helpers/etcd.js';
import { LEASE_TTL_MS, clusters, startThree, waitFor, withCluster } from './helpers/etcd-cluster.js';
import { httpBase } from './helpers/http.js';
import { delay } from './helpers/raw-socket.js';
import { CLI_PATH } from './helpers/server-process.js';

const CHROMIUM = process.env['PIKV_CHROMIUM'] ?? '/usr/bin/chromium';
const IMG_DIR = fileURLToPath(new URL('../../docs/img/', import.meta.url));
const missing = etcdMissing() ??
  (existsSync(CHROMIUM) ? null : `no chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set PIKV_CHROMIUM)`);
const NO_TMUX = spawnSync('tmux', ['-V']).status === 0 ? false : 'tmux is not installed (Debian: apt-get install tmux)';

after(async () => {
  for (const cluster of clusters) await cluster.stop();
});

interface Row {
  node: string;
  state: string;
  ops: string;
}

// Browser-side code is passed as strings: this project compiles without the DOM library.
async function rows(page: Page): Promise<Row[]> {
  return page.evaluate(`[...document.querySelectorAll('#nodes tbody tr')].map((tr) => ({
    node: tr.dataset.node, state: tr.dataset.state, ops: tr.querySelector('td.ops')?.textContent ?? '' }))`) as Promise<Row[]>;
}

async function totalOps(page: Page): Promise<number> {
  const text = await page.evaluate(`document.querySelector('#nodes tfoot td.ops')?.textContent ?? ''`) as string;
  const value = parseFloat(text);
  return text.endsWith('k') ? value * 1e3 : text.endsWith('M') ? value * 1e6 : Number.isNaN(value) ? 0 : value;
}

/** Runs `pikv top` in a detached tmux session; returns a reader of its screen and a stopper. */
function topInTmux(session: string, url: string): { screen: () => string; keys: (keys: string) => void; kill: () => void } {
  // After top exits, the shell prints its exit status and keeps the pane for the test to read.
  const command = `${process.execPath} ${CLI_PATH} top --url ${url}; echo "top exited with $?"; sleep 30`;
  const started = spawnSync('tmux', ['new-session', '-d', '-s', session, '-x', '140', '-y', '30', command]);
  assert.equal(started.status, 0, started.stderr.toString());
  return {
    screen: () => spawnSync('tmux', ['capture-pane', '-p', '-t', session]).stdout.toString(),
    keys: (keys) => void spawnSync('tmux', ['send-keys', '-t', session, keys]),
    kill: () => void spawnSync('tmux', ['kill-session', '-t', session]),
  };
}

describe('dashboard and pikv top on a three-node cluster', { skip: missing ?? false, timeout: 180_000 }, () => {
  it('shows every node, ops/s under load, a killed node in red within its lease; top shows the same and quits on q', async (t) => {
    await withCluster('dashboard', async (cluster) => {
      await startThree(cluster, false);
      let browser: Browser | null = null;
      const top = NO_TMUX === false ? topInTmux(`pikv-top-${process.pid}`, cluster.get('a').url) : null;
      let load_running = true;
      const load_errors: string[] = [];
      let batches_done = 0;
      let load: Promise<void> = Promise.resolve();
      try {
        browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
        const page = await browser.newPage();
        const page_errors: string[] = [];
        page.on('pageerror', (error) => page_errors.push(String(error)));
        await page.setViewport({ width: 1280, height: 1000 });
        await page.goto(`${httpBase(cluster.get('a').url)}/`, { waitUntil: 'load' });

        // The ring shows every node: each has arcs in the SVG and a legend entry.
        await page.waitForFunction(`document.querySelectorAll('#legend [data-state="serving"]').length === 3`, { timeout: 20_000 });
        for (const id of ['a', 'b', 'c']) assert.ok(await page.$(`#ring path[data-node="${id}"]`), `the ring has arcs of ${id}`);
        assert.ok(await page.$('#ring path[data-level="1"]'), 'with 2 copies the ring shows the replica band');

        // ops/s rises while a load runs.
        assert.equal(await totalOps(page), 0, 'no load yet');
        // Every row reads 0 once its node's first sample is in ("–" until then: CI saw c still at
        // "–" right after the legend showed three serving nodes on a loaded machine).
        let before_load: Row[] = [];
        await waitFor(async () => {
          before_load = await rows(page);
          return before_load.length === 3 && before_load.every((row) => row.ops !== '–') ? true : null;
        }, 15_000, 250).catch(() => assert.fail(`not every node's ops/s sampled: ${JSON.stringify(before_load)}`));
        assert.ok(before_load.every((row) => row.ops === '0'), JSON.stringify(before_load));
        // Ring-aware: each node serves its own keys' ops, so every row's ops/s moves.
        const client = await connectCluster(cluster.urls());
        load = (async () => {
          let round = 0;
          while (load_running) {
            const ops = Array.from({ length: 200 }, (_, i) => ({ op: 'put' as const, key: `dash-${i}`, value: `v${round}` }));
            const results = await client.batch(ops).catch((error: unknown) => {
              load_errors.push(String(error));
              return [];
            });
            batches_done++;
            for (const result of results) if (result.code !== 'OK' && load_errors.length < 10) load_errors.push(result.code);
            round++;
          }
          await client.close();
        })();
        await waitFor(async () => (await totalOps(page)) > 0 && (await rows(page)).every((row) => parseFloat(row.ops) > 0) ? true : null, 20_000, 250)
          .catch(async (error: unknown) => {
            throw new Error(`${(error as Error).message}; rows: ${JSON.stringify(await rows(page))}; batches answered: ${batches_done}; load errors: ${load_errors.slice(0, 3).join('; ')}`);
          });
        await delay(1_500);
        mkdirSync(IMG_DIR, { recursive: true });
        await page.screenshot({ path: `${IMG_DIR}dashboard.png`, fullPage: true });

        // top, in a terminal, shows the same cluster.
        if (top !== null) {
          const screen = await waitFor(async () => {
            const text = top.screen();
            return /^a\s+serving/m.test(text) && /^b\s+serving/m.test(text) && /^c\s+serving/m.test(text) && /^TOTAL\s+3\/3 up/m.test(text) ? text : null;
          }, 15_000, 250);
          assert.match(screen, /OPS\/S/);
        }
        load_running = false;
        await load;

        // A killed node turns red within its lease time.
        const killed_ms = Date.now();
        await cluster.kill('c');
        await page.waitForFunction(`document.querySelector('#nodes tbody tr[data-node="c"]')?.dataset.state === 'down'`, { timeout: LEASE_TTL_MS * 3, polling: 50 });
        const red_after_ms = Date.now() - killed_ms;
        t.diagnostic(`the killed node turned red ${red_after_ms} ms after SIGKILL (lease ${LEASE_TTL_MS} ms)`);
        const color = await page.evaluate(`getComputedStyle(document.querySelector('#nodes tbody tr[data-node="c"] td.state')).color`) as string;
        assert.equal(color, 'rgb(248, 81, 73)', 'the down node is shown red');
        assert.ok(red_after_ms <= LEASE_TTL_MS, `the killed node turned red after ${red_after_ms} ms (lease ${LEASE_TTL_MS} ms)`);
        await page.screenshot({ path: `${IMG_DIR}dashboard-node-down.png`, fullPage: true });

        // A phone-sized screen: no sideways scrolling of the page (the table scrolls in its card).
        await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
        await delay(500);
        const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth') as number;
        assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone screen`);
        await page.screenshot({ path: `${IMG_DIR}dashboard-phone.png`, fullPage: false });
        assert.deepEqual(page_errors, []);
        assert.ok((await rows(page)).length === 3);

        if (top !== null) {
          await waitFor(async () => (/^c\s+down/m.test(top.screen()) ? true : null), 10_000, 250);
          top.keys('q');
          const after_quit = await waitFor(async () => {
            const text = top.screen();
            return text.includes('top exited with') ? text : null;
          }, 10_000, 100);
          assert.match(after_quit, /top exited with 0/);
          // The alternate screen was left: top's table is gone from the terminal.
          assert.doesNotMatch(after_quit, /^TOTAL/m);
        }
      } finally {
        load_running = false;
        await load;
        top?.kill();
        await browser?.close();
      }
    }, ['--replicas', '2']);
  });
});

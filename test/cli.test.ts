import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../src/index.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';

describe('pikv CLI', { timeout: 180_000 }, () => {
  let server: ServerProcess;
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    server = await startServer();
    dir = mkdtempSync(join(tmpdir(), 'pikv-cli-'));
    env = { PIKV_URL: server.url };
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts, gets and deletes a key, with the URL from PIKV_URL', async () => {
    assert.equal((await runCli(['put', 'greeting', 'hello'], env)).code, 0);
    const got = await runCli(['get', 'greeting'], env);
    assert.equal(got.code, 0);
    assert.equal(got.stdout, 'hello');
    assert.equal((await runCli(['del', 'greeting'], env)).code, 0);
  });

  it('exits 1 with a message on stderr when get finds no key', async () => {
    const got = await runCli(['get', 'no-such-key'], env);
    assert.equal(got.code, 1);
    assert.equal(got.stdout, '');
    assert.match(got.stderr, /not found/);
  });

  it('takes --url over PIKV_URL', async () => {
    const got = await runCli(['put', 'via-flag', 'x', '--url', server.url], { PIKV_URL: 'ws://127.0.0.1:1' });
    assert.equal(got.code, 0, got.stderr);
  });

  it('exits 2 with a coded message when no node answers', async () => {
    const got = await runCli(['get', 'k', '--url', 'ws://127.0.0.1:1']);
    assert.equal(got.code, 2);
    assert.match(got.stderr, /CONNECT_FAILED/);
  });

  it('refuses an unknown cluster setting with BAD_OP before connecting', async () => {
    const got = await runCli(['cluster', 'set', 'replica-count', '2', '--url', 'ws://127.0.0.1:1']);
    assert.equal(got.code, 2);
    assert.match(got.stderr, /unknown cluster setting "replica-count"; settings: replicas, min-replicas \[BAD_OP\]/);
  });

  it('prints stats as a table and as JSON', async () => {
    const table = await runCli(['stats'], env);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /keys\s+\d+/);
    const json = await runCli(['stats', '--json'], env);
    const stats = JSON.parse(json.stdout) as { workers: number; per_worker: unknown[] };
    assert.equal(stats.workers, 4);
    assert.equal(stats.per_worker.length, 4);
  });

  it('loads TSV, CSV and JSON Lines files, chosen by extension, and reads them back', async () => {
    const files: Record<string, string> = {
      'people.tsv': 'tsv:1\tAda Lovelace\ntsv:2\tvalue\twith\ttabs\n\ntsv:3\t\n',
      'people.csv': 'csv:1,Grace Hopper\n"csv:2","quoted, with comma"\ncsv:3,"multi\nline"\n',
      'people.jsonl': '{"key":"json:1","value":"Alan Turing"}\n{"key":"json:2","value":"ünïcode ✓"}\n',
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(dir, name), text);
      const loaded = await runCli(['load', join(dir, name)], env);
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.match(loaded.stderr, /records loaded in .* records\/s/);
    }
    const kv = await connect(server.url);
    const expected: Record<string, string> = {
      'tsv:1': 'Ada Lovelace', 'tsv:2': 'value\twith\ttabs', 'tsv:3': '',
      'csv:1': 'Grace Hopper', 'csv:2': 'quoted, with comma', 'csv:3': 'multi\nline',
      'json:1': 'Alan Turing', 'json:2': 'ünïcode ✓',
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(Buffer.from((await kv.get(key))!).toString(), value, key);
    await kv.close();
  });

  it('stops before a malformed line, naming its number, after loading everything before it', async () => {
    const path = join(dir, 'bad.tsv');
    writeFileSync(path, 'bad:1\tone\nbad:2\ttwo\nthis line has no tab\nbad:4\tfour\n');
    const loaded = await runCli(['load', path], env);
    assert.equal(loaded.code, 1);
    assert.match(loaded.stderr, /line 3/);
    const kv = await connect(server.url);
    assert.equal(Buffer.from((await kv.get('bad:2'))!).toString(), 'two');
    assert.equal(await kv.get('bad:4'), undefined);
    await kv.close();
  });

  it('skips and reports malformed lines with --skip-bad', async () => {
    const path = join(dir, 'skip.jsonl');
    writeFileSync(path, '{"key":"skip:1","value":"a"}\nnot json\n{"key":2,"value":"b"}\n{"key":"skip:4","value":"d"}\n');
    const loaded = await runCli(['load', path, '--skip-bad'], env);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stderr, /line 2/);
    assert.match(loaded.stderr, /line 3/);
    assert.match(loaded.stderr, /2 records loaded.*2 bad lines skipped/);
    const kv = await connect(server.url);
    assert.equal(Buffer.from((await kv.get('skip:4'))!).toString(), 'd');
    await kv.close();
  });

  it('reports ops the server rejects with their line numbers and exits 1', async () => {
    const path = join(dir, 'rejected.tsv');
    writeFileSync(path, `ok:1\tfine\n${'k'.repeat(2000)}\ttoo long a key\nok:3\tfine\n`);
    const loaded = await runCli(['load', path], env);
    assert.equal(loaded.code, 1);
    assert.match(loaded.stderr, /line 2: rejected by the server: KEY_TOO_LARGE/);
    assert.match(loaded.stderr, /2 records loaded.*1 rejected/);
  });

  it('loads 100,000 records from standard input with --format and reads a sample back', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 100_000; i++) lines.push(`bulk:${i}\tvalue-${i}`);
    const loaded = await runCli(['load', '-', '--format', 'tsv'], env, `${lines.join('\n')}\n`);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stderr, /100000 records loaded/);
    const kv = await connect(server.url);
    const sample = await kv.batch(Array.from({ length: 1000 }, (_, i) => ({ op: 'get' as const, key: `bulk:${i * 97}` })));
    sample.forEach((result, i) => assert.equal(Buffer.from(result.value!).toString(), `value-${i * 97}`));
    await kv.close();
  });

  it('serve reads settings from --config, and flags win over the file', async () => {
    const path = join(dir, 'pikv.json');
    writeFileSync(path, JSON.stringify({ workers: 2, key_bytes_max: '100b', max_memory: '64mb', port: 0 }));
    const configured = await startServer(['--config', path, '--workers', '3']);
    try {
      const kv = await connect(configured.url);
      const stats = (await kv.stats()) as { workers: number; limits: { key_bytes_max: number; memory_bytes_max: number } };
      assert.equal(stats.workers, 3);
      assert.equal(stats.limits.key_bytes_max, 100);
      await assert.rejects(kv.put('k'.repeat(101), 'v'), { code: 'KEY_TOO_LARGE' });
      await kv.close();
    } finally {
      assert.equal(await configured.stop(), 0);
    }
  });

  it('serve refuses a config file with an unknown setting, naming it', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ workerz: 2 }));
    const refused = await runCli(['serve', '--config', path]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /unknown setting "workerz"/);
  });

  it('kill-worker is refused unless the node runs with PIKV_TEST_HOOKS=1, and then kills and restarts the worker', async () => {
    const refused = await runCli(['kill-worker', '1'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /UNKNOWN_OP.*PIKV_TEST_HOOKS=1/);
    const hooked = await startServer(['--workers', '2'], { PIKV_TEST_HOOKS: '1' });
    try {
      const killed = await runCli(['kill-worker', '1', '--url', hooked.url]);
      assert.equal(killed.code, 0, killed.stderr);
      const kv = await connect(hooked.url);
      // kill-worker answers once the kill is asked for; the worker exits a moment later, and an
      // op that reaches it meanwhile fails with the retryable WORKER_RESTARTED. Wait for the restart.
      const deadline_ms = Date.now() + 10_000;
      let stats = (await kv.stats()) as { per_worker: { restarts: number }[] };
      while (stats.per_worker[1]!.restarts === 0 && Date.now() < deadline_ms) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        stats = (await kv.stats()) as { per_worker: { restarts: number }[] };
      }
      assert.deepEqual(stats.per_worker.map((worker) => worker.restarts), [0, 1]);
      await kv.put('still', 'here');
      assert.equal(Buffer.from((await kv.get('still'))!).toString(), 'here');
      await kv.close();
    } finally {
      assert.equal(await hooked.stop(), 0);
    }
  });

  it('refuses a file whose format it cannot tell', async () => {
    const path = join(dir, 'data.txt');
    writeFileSync(path, 'a\tb\n');
    const loaded = await runCli(['load', path], env);
    assert.equal(loaded.code, 2);
    assert.match(loaded.stderr, /--format/);
  });

  it('serve refuses more memory per worker than one table holds (4 GiB), with a clear message, and caps its default instead', async () => {
    const refused = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', 'off', '--workers', '1', '--max-memory', '5gb']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /max memory per worker is 4294967296 B/);
  });
});

/**
 * `pikv dev-cluster` end to end: a real etcd and three real nodes started by the command, a
 * put through one node read back through another, and SIGINT stopping every process it
 * started (checked by PID) with exit 0. Whatever the command printed as started is SIGKILLed
 * by PID if the test fails, so nothing outlives it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { connect } from '../src/index.js';
import { etcdMissing } from './helpers/etcd.js';
import { CLI_PATH } from './helpers/server-process.js';

const READY_TIMEOUT_MS = 45_000;
const EXIT_TIMEOUT_MS = 20_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but is not ours; only ESRCH means gone.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

interface Started {
  etcd: { url: string; pid: number };
  nodes: { id: string; url: string; pid: number }[];
}

/** Parses the summary lines `  etcd  http://127.0.0.1:P  pid N` and `  n1    ws://127.0.0.1:P  pid N`. */
function parseSummary(stdout: string): Started | null {
  if (!/pikv dev-cluster: \d+ nodes? ready/.test(stdout)) return null;
  const rows = [...stdout.matchAll(/^ {2}(etcd|n\d+)\s+((?:http|ws):\/\/127\.0\.0\.1:\d+)\s+pid (\d+)$/gm)].map((m) => ({ id: m[1]!, url: m[2]!, pid: Number(m[3]) }));
  const etcd = rows.find((row) => row.id === 'etcd');
  if (etcd === undefined) return null;
  return { etcd: { url: etcd.url, pid: etcd.pid }, nodes: rows.filter((row) => row.id !== 'etcd') };
}

describe('pikv dev-cluster', { timeout: 90_000 }, () => {
  let child: ChildProcess | null = null;
  const pids = new Set<number>();

  after(() => {
    // Only on failure is anything left: kill by PID what the command said it started, then the command.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (child !== null && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('explains how to get etcd and exits 2 when etcd is not on PATH, or not at --etcd-binary', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: '/nonexistent' };
    delete env['PIKV_ETCD_BINARY'];
    for (const args of [['dev-cluster'], ['dev-cluster', '--etcd-binary', '/nonexistent/etcd']]) {
      const result = spawnSync(process.execPath, [CLI_PATH, ...args], { env, encoding: 'utf8', timeout: 20_000 });
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /etcd not found/);
      assert.match(result.stderr, /apt-get install etcd-server/);
      assert.match(result.stderr, /--etcd-binary/);
      assert.match(result.stderr, /\[ETCD_NOT_FOUND\]$/m);
    }
  });

  it('starts etcd and 3 nodes, serves a put on one node and a get on another, and stops everything on SIGINT', { skip: etcdMissing() ?? false }, async () => {
    const started = spawn(process.execPath, [CLI_PATH, 'dev-cluster', '--nodes', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let stdout = '';
    let stderr = '';
    started.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    started.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => started.once('exit', (code, signal) => resolve({ code, signal })));
    const output = (): string => `stdout:\n${stdout}\nstderr:\n${stderr}`;

    const summary = await new Promise<Started>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no summary within ${READY_TIMEOUT_MS} ms:\n${output()}`)), READY_TIMEOUT_MS);
      const check = (): void => {
        // Node logs print each node's pid as it starts: remember them at once, so a failure still cleans up.
        for (const match of stdout.matchAll(/listening on ws:\S+ .*pid (\d+)\)/g)) pids.add(Number(match[1]));
        const parsed = parseSummary(stdout);
        if (parsed === null) return;
        clearTimeout(timer);
        resolve(parsed);
      };
      started.stdout!.on('data', check);
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`dev-cluster exited (${code ?? signal}) before it was ready:\n${output()}`));
      });
    });
    pids.add(summary.etcd.pid);
    for (const node of summary.nodes) pids.add(node.pid);

    assert.deepEqual(summary.nodes.map((n) => n.id), ['n1', 'n2', 'n3']);
    assert.match(summary.etcd.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(stdout, /npx pikv put \S+ \S+ --url ws:\/\//);
    assert.match(stdout, /npx pikv cluster status --url ws:\/\//);
    assert.match(stdout, /connectCluster\(\['ws:\/\/127\.0\.0\.1:\d+', 'ws:\/\/127\.0\.0\.1:\d+', 'ws:\/\/127\.0\.0\.1:\d+'\]\)/);
    const secret = /export PIKV_CLUSTER_SECRET=(\S+)/.exec(stdout)?.[1];
    assert.ok(secret !== undefined && secret.length >= 16, output());
    for (const node of summary.nodes) {
      const cmdline = `/proc/${node.pid}/cmdline`;
      if (existsSync(cmdline)) assert.ok(!readFileSync(cmdline, 'utf8').includes(secret), `the secret is on ${node.id}'s command line`);
    }
    for (const pid of pids) assert.ok(alive(pid), `pid ${pid} should be running`);

    // Plain clients: each node forwards what it does not own, so any node answers for any key.
    const [first, second] = [summary.nodes[0]!.url, summary.nodes[1]!.url];
    const writer = await connect(first, { connect_timeout_ms: 5_000, request_timeout_ms: 10_000 });
    const reader = await connect(second, { connect_timeout_ms: 5_000, request_timeout_ms: 10_000 });
    try {
      for (let i = 0; i < 20; i++) await writer.put(`dev-key-${i}`, `value-${i}`);
      for (let i = 0; i < 20; i++) assert.equal(Buffer.from((await reader.get(`dev-key-${i}`))!).toString(), `value-${i}`);
    } finally {
      await writer.close();
      await reader.close();
    }

    process.kill(started.pid!, 'SIGINT');
    let exit_timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        exit_timer = setTimeout(() => reject(new Error(`dev-cluster did not exit within ${EXIT_TIMEOUT_MS} ms of SIGINT:\n${output()}`)), EXIT_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(exit_timer));
    assert.deepEqual(result, { code: 0, signal: null }, output());
    for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} is still running after dev-cluster exited:\n${output()}`);
    assert.match(stderr, /stopped/);
  });
});

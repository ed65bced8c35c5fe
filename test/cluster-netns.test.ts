/**
 * Each node in its own network namespace with its own address (10.203.0.0/24, only inside
 * the namespaces this test creates: a bridge namespace, one per node, one for the client;
 * veth pairs into a bridge). Under continuous writes, a fourth node joins and then one node
 * leaves; afterwards every acknowledged write must read back with its latest value.
 * Skips with a message where `ip netns` is unavailable (not root, no iproute2).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { CLI_PATH } from './helpers/server-process.js';
import { SECRET } from './helpers/cluster.js';
import { fileURLToPath } from 'node:url';

const DRIVER = fileURLToPath(new URL('./helpers/netns-driver.js', import.meta.url));
const TAG = `pk${process.pid % 100000}`;
const BRIDGE_NS = `${TAG}-br`;
const CLIENT_NS = `${TAG}-cl`;
const SUBNET = '10.203.0';
const PORT = 7070;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function netnsUnavailable(): string | null {
  try {
    ip('netns', 'add', `${TAG}-probe`);
    ip('netns', 'del', `${TAG}-probe`);
    return null;
  } catch (error) {
    return `ip netns is unavailable here (${(error as Error).message.split('\n')[0]}); needs root and iproute2`;
  }
}

const namespaces: string[] = [];
const children = new Set<ChildProcess>();

function addNamespace(name: string, host: number): void {
  ip('netns', 'add', name);
  namespaces.push(name);
  const outside = `${TAG}v${host}`;
  ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
  ip('link', 'set', outside, 'netns', BRIDGE_NS);
  ip('-n', BRIDGE_NS, 'link', 'set', outside, 'master', 'br0', 'up');
  ip('-n', name, 'addr', 'add', `${SUBNET}.${host}/24`, 'dev', 'eth0');
  ip('-n', name, 'link', 'set', 'eth0', 'up');
  ip('-n', name, 'link', 'set', 'lo', 'up');
}

function inNamespace(name: string, args: string[]): ChildProcess {
  // Nodes and the CLI take the cluster secret from the environment (never argv).
  const child = spawn('ip', ['netns', 'exec', name, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PIKV_CLUSTER_SECRET: SECRET } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function output(child: ChildProcess): { text: () => string; waitFor: (pattern: RegExp, timeout_ms: number) => Promise<string> } {
  let text = '';
  const waiters: (() => void)[] = [];
  const onData = (chunk: Buffer): void => {
    text += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return {
    text: () => text,
    waitFor: async (pattern, timeout_ms) => {
      const deadline_ms = Date.now() + timeout_ms;
      while (!pattern.test(text)) {
        if (Date.now() > deadline_ms) throw new Error(`no ${pattern} within ${timeout_ms} ms:\n${text}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
      return pattern.exec(text)![0];
    },
  };
}

function startNode(id: string, host: number, join: number | null): ReturnType<typeof output> & { child: ChildProcess } {
  const url = `ws://${SUBNET}.${host}:${PORT}`;
  const args = [CLI_PATH, 'serve', '--host', `${SUBNET}.${host}`, '--port', String(PORT), '--advertise', url, '--node-id', id,
    '--workers', '2', '--max-memory', '64mb', '--heartbeat-interval-ms', '200'];
  if (join !== null) args.push('--join', `ws://${SUBNET}.${join}:${PORT}`);
  const child = inNamespace(`${TAG}-${id}`, args);
  return { child, ...output(child) };
}

async function cli(args: string[]): Promise<string> {
  const child = inNamespace(CLIENT_NS, [CLI_PATH, ...args]);
  const out = output(child);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `pikv ${args.join(' ')} failed:\n${out.text()}`);
  return out.text();
}

const skip = netnsUnavailable();

describe('a cluster across network namespaces', { skip: skip ?? false }, () => {
  after(() => {
    for (const child of children) if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    for (const name of [...namespaces].reverse()) {
      try {
        ip('netns', 'del', name);
      } catch {
        // already gone
      }
    }
  });

  it('keeps every acknowledged write through a join and a leave under load', { timeout: 120_000 }, async () => {
    ip('netns', 'add', BRIDGE_NS);
    namespaces.push(BRIDGE_NS);
    ip('-n', BRIDGE_NS, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', BRIDGE_NS, 'link', 'set', 'br0', 'up');
    addNamespace(CLIENT_NS, 100);
    for (let host = 1; host <= 4; host++) addNamespace(`${TAG}-n${host}`, host);

    const nodes = [startNode('n1', 1, null)];
    await nodes[0]!.waitFor(/listening on/, 15_000);
    nodes.push(startNode('n2', 2, 1), startNode('n3', 3, 1));
    await Promise.all(nodes.map((node) => node.waitFor(/view epoch 5 \(/, 30_000)));

    const driver = inNamespace(CLIENT_NS, [DRIVER, `ws://${SUBNET}.1:${PORT}`, `ws://${SUBNET}.2:${PORT}`]);
    const driven = output(driver);
    await driven.waitFor(/writing/, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    nodes.push(startNode('n4', 4, 3));
    await nodes[3]!.waitFor(/view epoch 7 \(/, 60_000);
    await cli(['cluster', 'leave', '--url', `ws://${SUBNET}.2:${PORT}`, '--wait-ms', '60000']);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const status = await cli(['cluster', 'status', '--url', `ws://${SUBNET}.1:${PORT}`]);
    assert.match(status, /^n4\s+\S+\s+up/m, status);
    assert.doesNotMatch(status, /^n2\s/m, status);

    driver.stdin!.write('stop\n');
    const line = await driven.waitFor(/\{.*"wrong_count".*\}/, 60_000);
    const result = JSON.parse(line) as { rounds: number; failed: number; checked: number; wrong_count: number; wrong: string[] };
    assert.ok(result.rounds > 20, `writes continued through the changes: ${line}`);
    assert.ok(result.checked > 1000, line);
    assert.equal(result.wrong_count, 0, `acknowledged writes lost or stale: ${line}`);
  });
});

if (skip !== null) console.log(`# cluster-netns: skipped: ${skip}`);

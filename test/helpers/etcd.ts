/**
 * Starts a real single-member etcd (Debian's etcd-server, /usr/bin/etcd) for a test, the way
 * `pikv dev-cluster` does (src/cluster/etcd/local-server.ts): free loopback ports, its own
 * temporary --data-dir, revision auto-compaction as in production (docs/ETCD.md), and here a
 * short heartbeat/election timeout so that leases of about one second are honoured (etcd
 * refuses TTLs below 1.5 election timeouts and silently grants that minimum instead).
 * `restart()` stops the member and starts it again on the same ports and data dir, for "etcd
 * restarted mid-session" tests. Every etcd started here is SIGKILLed when the test process
 * exits, and its directory removed, so a failing test leaves nothing behind.
 *
 * If etcd is not installed, `etcdMissing()` says why, and tests skip with that message
 * (.ci/run installs it).
 */
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ETCD_BINARY_DEFAULT, ETCD_INSTALL_HINT, etcdProblem, freeLoopbackPort, startLocalEtcd, type LocalEtcd } from '../../src/cluster/etcd/local-server.js';
import { after, before } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/cluster/etcd/client.js';

export const ETCD_BINARY = process.env.PIKV_ETCD_BINARY ?? ETCD_BINARY_DEFAULT;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface EtcdOptions {
  heartbeat_interval_ms?: number;
  election_timeout_ms?: number;
  auto_compaction_retention_revisions?: number;
}

export interface EtcdProcess {
  /** http://127.0.0.1:<client port>, for the etcd3 client's `hosts`. */
  readonly client_url: string;
  readonly data_dir: string;
  pid(): number;
  output(): string;
  /** Stops the member (SIGKILL by default: a crash) and starts it again on the same ports and data dir. `down_ms` is how long it stays down. */
  restart(signal?: NodeJS.Signals, down_ms?: number): Promise<void>;
  /** Kills it by PID and removes its data dir. */
  stop(): Promise<void>;
}

let missing_reason: string | null | undefined;

/** Null if etcd can be run; otherwise a message for `it(..., { skip })`. */
export function etcdMissing(): string | null {
  if (missing_reason !== undefined) return missing_reason;
  const problem = etcdProblem(ETCD_BINARY);
  missing_reason = problem === null ? null : `${problem}: ${ETCD_INSTALL_HINT} (.ci/run installs it)`;
  return missing_reason;
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdProcess> {
  const reason = etcdMissing();
  if (reason !== null) throw new Error(reason);
  const data_dir = mkdtempSync(join(tmpdir(), 'pikv-etcd-'));
  dirs.add(data_dir);
  const client_port = await freeLoopbackPort();
  const peer_port = await freeLoopbackPort();
  let current: LocalEtcd | null = null;
  // Output of every run so far: a test that restarts etcd wants all of it in its failure message.
  let log = '';

  const launch = async (): Promise<void> => {
    const started = await startLocalEtcd({
      binary: ETCD_BINARY,
      data_dir,
      client_port,
      peer_port,
      heartbeat_interval_ms: options.heartbeat_interval_ms ?? 50,
      election_timeout_ms: options.election_timeout_ms ?? 250,
      auto_compaction_retention_revisions: options.auto_compaction_retention_revisions ?? 1000,
      log_level: 'warn',
      start_timeout_ms: START_TIMEOUT_MS,
      onOutput: (chunk) => (log += chunk),
      onSpawn: (child) => {
        running.add(child);
        child.once('exit', () => running.delete(child));
      },
    });
    current = started;
  };

  await launch();
  return {
    client_url: `http://127.0.0.1:${client_port}`,
    data_dir,
    pid: () => current?.pid ?? -1,
    output: () => log,
    async restart(signal: NodeJS.Signals = 'SIGKILL', down_ms = 0): Promise<void> {
      await current?.stop(signal, STOP_TIMEOUT_MS);
      if (down_ms > 0) await new Promise((resolve) => setTimeout(resolve, down_ms));
      await launch();
    },
    async stop(): Promise<void> {
      await current?.stop('SIGKILL');
      rmSync(data_dir, { recursive: true, force: true });
      dirs.delete(data_dir);
    },
  };
}

/**
 * A TCP proxy in front of etcd for one client, so a test can cut that client off (a watch
 * that falls behind) while other clients keep writing. `cut()` closes every connection and
 * refuses new ones until `restore()`.
 */
export interface EtcdProxy {
  readonly client_url: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startEtcdProxy(target_url: string): Promise<EtcdProxy> {
  const target = new URL(target_url);
  const sockets = new Set<Socket>();
  let refusing = false;
  const server = createServer((inbound) => {
    if (refusing) {
      inbound.destroy();
      return;
    }
    const outbound = connect(Number(target.port), target.hostname);
    sockets.add(inbound).add(outbound);
    const drop = (): void => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const cut = (): void => {
    refusing = true;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    client_url: `http://127.0.0.1:${port}`,
    cut,
    restore(): void {
      refusing = false;
    },
    async close(): Promise<void> {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `check` every `every_ms` until it returns true or `timeout_ms` passes (then throws with `what`). */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeout_ms = 10_000, every_ms = 20): Promise<void> {
  const give_up_ms = Date.now() + timeout_ms;
  while (!(await check())) {
    if (Date.now() > give_up_ms) throw new Error(`timed out after ${timeout_ms} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, every_ms));
  }
}

/**
 * For a describe(): starts an etcd before its tests and a client on it, and stops both after.
 * Read `etcd` and `client` inside tests (they are set by the before hook).
 */
export function etcdFixture(): { readonly etcd: EtcdProcess; readonly client: Etcd3 } {
  let etcd: EtcdProcess | null = null;
  let client: Etcd3 | null = null;
  before(async () => {
    etcd = await startEtcd();
    client = createEtcdClient({ hosts: [etcd.client_url] });
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });
  return {
    get etcd(): EtcdProcess {
      if (etcd === null) throw new Error('etcdFixture: etcd is not started yet (use it inside a test)');
      return etcd;
    },
    get client(): Etcd3 {
      if (client === null) throw new Error('etcdFixture: the client exists only inside a test');
      return client;
    },
  };
}

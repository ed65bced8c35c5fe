/**
 * Starts a real single-member etcd (Debian's etcd-server, /usr/bin/etcd) for a test: free
 * loopback ports, its own temporary --data-dir, and a short heartbeat/election timeout so that
 * leases of about one second are honoured (etcd refuses TTLs below 1.5 election timeouts and
 * silently grants that minimum instead). Revision auto-compaction is on, as in production
 * (docs/ETCD.md). `restart()` stops the member and starts it again on the same ports and data
 * dir, for "etcd restarted mid-session" tests. Every etcd started here is SIGKILLed when the
 * test process exits, and its directory removed, so a failing test leaves nothing behind.
 *
 * If etcd is not installed, `etcdMissing()` says why, and tests skip with that message
 * (.ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BINARY = process.env.PIKV_ETCD_BINARY ?? 'etcd';
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
  const probe = spawnSync(ETCD_BINARY, ['--version'], { encoding: 'utf8' });
  missing_reason = probe.status === 0 ? null : `etcd not found (${ETCD_BINARY}): apt-get install etcd-server (.ci/run installs it)`;
  return missing_reason;
}

const running = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function healthy(client_url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(`${client_url}/health`, { timeout: 500 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"true"')));
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdProcess> {
  const reason = etcdMissing();
  if (reason !== null) throw new Error(reason);
  const data_dir = mkdtempSync(join(tmpdir(), 'pikv-etcd-'));
  dirs.add(data_dir);
  const client_port = await freePort();
  const peer_port = await freePort();
  const client_url = `http://127.0.0.1:${client_port}`;
  const peer_url = `http://127.0.0.1:${peer_port}`;
  const args = [
    '--name', 'm1',
    '--data-dir', join(data_dir, 'member'),
    '--listen-client-urls', client_url,
    '--advertise-client-urls', client_url,
    '--listen-peer-urls', peer_url,
    '--initial-advertise-peer-urls', peer_url,
    '--initial-cluster', `m1=${peer_url}`,
    '--initial-cluster-token', `pikv-test-${client_port}`,
    '--heartbeat-interval', String(options.heartbeat_interval_ms ?? 50),
    '--election-timeout', String(options.election_timeout_ms ?? 250),
    '--auto-compaction-mode', 'revision',
    '--auto-compaction-retention', String(options.auto_compaction_retention_revisions ?? 1000),
    '--quota-backend-bytes', String(256 * 1024 * 1024),
    '--log-level', 'warn',
  ];
  let child: ChildProcess | null = null;
  let log = '';
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const started = spawn(ETCD_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    running.add(started);
    started.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    started.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    exited = new Promise<void>((resolve) => started.once('exit', () => {
      running.delete(started);
      resolve();
    }));
    const give_up_ms = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`etcd exited before answering:\n${log.slice(-4000)}`);
      if (await healthy(client_url)) return;
      if (Date.now() > give_up_ms) {
        started.kill('SIGKILL');
        throw new Error(`etcd did not answer within ${START_TIMEOUT_MS} ms:\n${log.slice(-4000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child;
    if (current === null || current.exitCode !== null || current.signalCode !== null) return;
    process.kill(current.pid!, signal);
    const timer = setTimeout(() => current.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    client_url,
    data_dir,
    pid: () => child?.pid ?? -1,
    output: () => log,
    async restart(signal: NodeJS.Signals = 'SIGKILL', down_ms = 0): Promise<void> {
      await kill(signal);
      if (down_ms > 0) await new Promise((resolve) => setTimeout(resolve, down_ms));
      await launch();
    },
    async stop(): Promise<void> {
      await kill('SIGKILL');
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

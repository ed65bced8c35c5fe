/**
 * Runs a single-member etcd server on this machine, on 127.0.0.1 ports, with its own data
 * directory. `pikv dev-cluster` (src/cli/dev-cluster.ts) and the tests (test/helpers/etcd.ts)
 * both start etcd this way, so the flags that matter (revision auto-compaction as in
 * production, docs/ETCD.md; a backend quota; loopback-only URLs) are set in one place.
 *
 * This is not how to run etcd in production: one member has no fault tolerance. It is for
 * trying pikv on one machine and for tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** The binary looked up on PATH when none is given (Debian's etcd-server installs /usr/bin/etcd). */
export const ETCD_BINARY_DEFAULT = 'etcd';
export const ETCD_INSTALL_HINT = 'apt-get install etcd-server';
const PROBE_TIMEOUT_MS = 10_000;
const HEALTH_TIMEOUT_MS = 500;
const HEALTH_POLL_MS = 50;
/** Output kept per process for error messages; etcd can log a lot before it fails. */
const OUTPUT_KEPT_CHARS = 16_000;

/**
 * The environment etcd runs with. etcd 3.4 (Debian bookworm's) refuses to start on arm64, the
 * Raspberry Pi's architecture, unless ETCD_UNSUPPORTED_ARCH names it; later versions support
 * arm64 and ignore the variable. A value the user set wins.
 */
export function etcdEnvironment(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (process.arch === 'x64' || base['ETCD_UNSUPPORTED_ARCH'] !== undefined) return base;
  return { ...base, ETCD_UNSUPPORTED_ARCH: process.arch };
}

/** Null if `binary --version` runs; otherwise why not, in one line (without the install hint). */
export function etcdProblem(binary: string): string | null {
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS, env: etcdEnvironment() });
  const error = probe.error as NodeJS.ErrnoException | undefined;
  if (error?.code === 'ENOENT') return `etcd not found (${binary})`;
  if (error !== undefined) return `cannot run ${binary}: ${error.message}`;
  if (probe.status !== 0) return `${binary} --version failed (exit ${probe.status ?? probe.signal}): ${(probe.stderr || probe.stdout).trim().slice(0, 500)}`;
  return null;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (another process may take it before we bind it). */
export function freeLoopbackPort(): Promise<number> {
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

/** True once etcd's /health says it has a leader and serves requests. */
export function etcdHealthy(client_url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(`${client_url}/health`, { timeout: HEALTH_TIMEOUT_MS }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(response.statusCode === 200 && body.includes('"true"')));
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

export interface LocalEtcdOptions {
  binary: string;
  /** etcd's --data-dir; it is created if missing. The caller owns (and removes) it. */
  data_dir: string;
  client_port: number;
  peer_port: number;
  /** etcd's defaults are 100 and 1000; tests use shorter ones so that leases of about a second are honoured. */
  heartbeat_interval_ms?: number;
  election_timeout_ms?: number;
  auto_compaction_retention_revisions?: number;
  quota_backend_bytes?: number;
  log_level?: 'debug' | 'info' | 'warn' | 'error';
  start_timeout_ms: number;
  /** Spawned in its own process group, so a Ctrl-C at the terminal reaches only the parent, which stops etcd when it chooses. */
  detached?: boolean;
  /** Every chunk etcd writes to stdout or stderr. */
  onOutput?: (chunk: string) => void;
  /** Called at once with the process, before it answers: so that whoever started it can kill it if it exits before then. */
  onSpawn?: (child: ChildProcess) => void;
}

export interface LocalEtcd {
  /** http://127.0.0.1:<client port>, for etcd clients and `pikv serve --etcd`. */
  readonly client_url: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves when the process has exited (it is reaped). */
  readonly exited: Promise<void>;
  /** The last OUTPUT_KEPT_CHARS characters etcd wrote. */
  output(): string;
  /** Sends `signal`, then SIGKILL if it has not exited after `timeout_ms`; resolves once it has exited. */
  stop(signal?: NodeJS.Signals, timeout_ms?: number): Promise<void>;
}

export class LocalEtcdError extends Error {
  constructor(readonly code: 'ETCD_START_FAILED', message: string) {
    super(message);
    this.name = 'LocalEtcdError';
  }
}

export function localEtcdArgs(options: LocalEtcdOptions): string[] {
  const client_url = `http://127.0.0.1:${options.client_port}`;
  const peer_url = `http://127.0.0.1:${options.peer_port}`;
  const args = [
    '--name', 'm1',
    '--data-dir', join(options.data_dir, 'member'),
    '--listen-client-urls', client_url,
    '--advertise-client-urls', client_url,
    '--listen-peer-urls', peer_url,
    '--initial-advertise-peer-urls', peer_url,
    '--initial-cluster', `m1=${peer_url}`,
    '--initial-cluster-token', `pikv-local-${options.client_port}`,
    '--auto-compaction-mode', 'revision',
    '--auto-compaction-retention', String(options.auto_compaction_retention_revisions ?? 1000),
    '--quota-backend-bytes', String(options.quota_backend_bytes ?? 256 * 1024 * 1024),
    // zap: with 3.4's default logger (capnslog) --log-level does not quiet raft's INFO lines.
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', options.log_level ?? 'warn',
  ];
  if (options.heartbeat_interval_ms !== undefined) args.push('--heartbeat-interval', String(options.heartbeat_interval_ms));
  if (options.election_timeout_ms !== undefined) args.push('--election-timeout', String(options.election_timeout_ms));
  return args;
}

/**
 * Starts etcd and resolves once it answers /health. If it exits first or does not answer in
 * `start_timeout_ms`, it is killed and this rejects with ETCD_START_FAILED and etcd's output.
 */
export async function startLocalEtcd(options: LocalEtcdOptions): Promise<LocalEtcd> {
  const client_url = `http://127.0.0.1:${options.client_port}`;
  const child = spawn(options.binary, localEtcdArgs(options), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: etcdEnvironment(),
    detached: options.detached === true,
  });
  options.onSpawn?.(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString();
    output = (output + text).slice(-OUTPUT_KEPT_CHARS);
    options.onOutput?.(text);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  // A holder rather than a `let`: TypeScript does not see assignments made in callbacks.
  const failure: { spawn_error: Error | null } = { spawn_error: null };
  child.once('error', (error) => (failure.spawn_error = error));
  const exited = new Promise<void>((resolve) => {
    // 'close' (not 'exit'): the output is complete when it fires, and it fires after a spawn error too.
    child.once('close', () => resolve());
  });
  const gone = (): boolean => failure.spawn_error !== null || child.exitCode !== null || child.signalCode !== null;

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeout_ms = 5_000): Promise<void> => {
    if (!gone()) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeout_ms);
      await exited;
      clearTimeout(timer);
    }
  };

  const give_up_ms = Date.now() + options.start_timeout_ms;
  for (;;) {
    if (gone()) {
      await exited;
      const why = failure.spawn_error?.message ?? `exit ${child.exitCode ?? child.signalCode}`;
      throw new LocalEtcdError('ETCD_START_FAILED', `etcd exited before answering (${why}):\n${output.trim()}`);
    }
    if (await etcdHealthy(client_url)) break;
    if (Date.now() > give_up_ms) {
      await stop('SIGKILL');
      throw new LocalEtcdError('ETCD_START_FAILED', `etcd did not answer ${client_url}/health within ${options.start_timeout_ms} ms:\n${output.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
  }
  return { client_url, child, pid: child.pid!, exited, output: () => output, stop };
}

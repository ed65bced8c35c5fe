/**
 * Starts the servers under test on free loopback ports and stops them by PID: a pikv node
 * (`pikv serve --port 0`, address parsed from its "listening on" line) and, when installed,
 * a Redis server with persistence off. The benchmark never installs Redis itself.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { findWorkerThreads } from './proc.js';
import { spawnTracked, stopProcess } from './processes.js';

export const PIKV_CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;

export interface RunningServer {
  system: 'pikv' | 'redis';
  pid: number;
  host: string;
  port: number;
  /** ws://… for pikv, redis://… for Redis. */
  url: string;
  /** Partition worker thread ids (pikv only), for the per-thread CPU split. */
  worker_tids: number[];
  /** pikv only, when started with `resp`: its RESP (Redis protocol) port. */
  resp_port?: number;
  output(): string;
  stop(): Promise<void>;
}

export const REDIS_INSTALL_HINT =
  'redis-server not found: benchmarking pikv alone. To compare with Redis, install it (Debian/Ubuntu):\n' +
  '  sudo apt-get update && sudo apt-get install -y redis-server   # provides redis-server, redis-cli, redis-benchmark';

/**
 * How to start a Redis server: `redis-server` when installed, else Debian's redis-tools
 * `redis-check-aof`, which is the same Redis binary (Redis picks its mode from argv[0]: run
 * under the name redis-server, it is the server). Null when neither is there.
 */
export interface RedisServerCommand {
  file: string;
  argv0: string;
  /** Shown in the log and report. */
  description: string;
}

export function redisServerCommand(): RedisServerCommand | null {
  const server = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (server.error === undefined && server.status === 0) return { file: 'redis-server', argv0: 'redis-server', description: 'redis-server' };
  const tools_binary = '/usr/bin/redis-check-aof';
  const probe = spawnSync(tools_binary, ['--version'], { encoding: 'utf8', argv0: 'redis-server' });
  if (probe.error === undefined && probe.status === 0 && /Redis server v=/.test(probe.stdout)) {
    return { file: tools_binary, argv0: 'redis-server', description: `${tools_binary} run as redis-server (redis-tools ships the server binary under that name)` };
  }
  return null;
}

export function redisBenchmarkInstalled(): boolean {
  const probe = spawnSync('redis-benchmark', ['--version'], { encoding: 'utf8' });
  return probe.error === undefined && probe.status === 0;
}

/** The installed Redis version, or null when a Redis server (or redis-cli/redis-benchmark) is missing. */
export function redisVersion(): string | null {
  for (const tool of ['redis-cli', 'redis-benchmark']) {
    const probe = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined || probe.status !== 0) return null;
  }
  const command = redisServerCommand();
  if (command === null) return null;
  const server = spawnSync(command.file, ['--version'], { encoding: 'utf8', argv0: command.argv0 });
  if (server.error !== undefined || server.status !== 0) return null;
  return /v=(\S+)/.exec(server.stdout)?.[1] ?? server.stdout.trim();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<{ match: RegExpExecArray; output: () => string }> {
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const check = (): void => {
      const match = pattern.exec(output);
      if (match === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ match, output: () => output });
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before it was ready:\n${output}`));
    });
  });
}

export interface PikvStartOptions {
  workers: number;
  max_memory: string;
  /** Extra node flags, e.g. --cpu-prof for profiling. */
  node_args?: string[];
  /** Extra `pikv serve` flags, e.g. ['--metrics', 'off']. */
  serve_args?: string[];
  /** Command prefix, e.g. ['npx', '--yes', 'clinic@13', 'flame', '--']; node is appended. */
  wrapper?: string[];
  /** Serve RESP on a free port too (for redis-benchmark); off by default. */
  resp?: boolean;
}

export async function startPikv(options: PikvStartOptions): Promise<RunningServer> {
  const node_command = [process.execPath, ...(options.node_args ?? []), PIKV_CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', options.resp === true ? '0' : 'off',
    '--workers', String(options.workers), '--max-memory', options.max_memory, ...(options.serve_args ?? [])];
  const command = [...(options.wrapper ?? []), ...node_command];
  const child = spawnTracked(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const { match, output } = await waitForLine(child, /listening on (ws:\/\/(\S+):(\d+)\S*) .*pid (\d+)/, 'pikv');
  // Under a wrapper (clinic) the node process is not our child: the pid comes from its log line.
  const pid = Number(match[4]);
  // serve.ts logs the RESP address before the "listening on" line.
  const resp_match = /RESP \(Redis protocol\) on redis:\/\/(\S+):(\d+)/.exec(output());
  if (options.resp === true && resp_match === null) throw new Error(`pikv did not report a RESP port:\n${output()}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    system: 'pikv', pid, host: match[2]!, port: Number(match[3]), url: match[1]!,
    ...(resp_match === null ? {} : { resp_port: Number(resp_match[2]) }),
    worker_tids: findWorkerThreads(pid, options.workers),
    output,
    stop: async () => {
      if (pid !== child.pid) {
        // Wrapped: signal the node process itself; the wrapper exits after it.
        try {
          process.kill(pid, 'SIGINT');
        } catch {
          // Already gone.
        }
        await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
        return;
      }
      await stopProcess(child);
    },
  };
}

export async function startRedis(): Promise<RunningServer> {
  const port = await freePort();
  const command = redisServerCommand();
  if (command === null) throw new Error(REDIS_INSTALL_HINT);
  const child = spawnTracked(command.file, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--protected-mode', 'yes', '--logfile', '', '--dir', '/tmp'], { stdio: ['ignore', 'pipe', 'pipe'], argv0: command.argv0 });
  const { output } = await waitForLine(child, /Ready to accept connections/, 'redis-server');
  return {
    system: 'redis', pid: child.pid!, host: '127.0.0.1', port, url: `redis://127.0.0.1:${port}`, worker_tids: [],
    output,
    stop: () => stopProcess(child),
  };
}

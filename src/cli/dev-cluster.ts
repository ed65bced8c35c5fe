/**
 * `pikv dev-cluster`: a whole etcd-mode cluster on one machine, for trying pikv (issue #9).
 *
 * It starts a single-member etcd on free 127.0.0.1 ports with a temporary data dir
 * (src/cluster/etcd/local-server.ts), then N `pikv serve --etcd` nodes (n1..nN) on free ports,
 * one after the other: n1 creates the cluster in etcd, and each later node asks to join by
 * itself, the controller moving data to it (docs/MEMBERSHIP.md). Once every node shows a view
 * of all N with no move in progress and serves, it prints the addresses and commands to try,
 * then forwards the nodes' logs until Ctrl-C or SIGTERM: every node is stopped by PID (SIGTERM,
 * SIGKILL after a timeout), then etcd, and the temporary directory is removed.
 *
 * The cluster secret is random for each session and reaches the nodes through their
 * environment only (argv is visible to every user of the machine in `ps`).
 *
 * Children run in their own process groups: a Ctrl-C at the terminal reaches only this
 * process, which stops the nodes before etcd (nodes whose etcd vanished first would log lease
 * errors while stopping). The price: if this process is SIGKILLed, the children outlive it;
 * every other way out (a signal, an error, a normal exit) kills them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ETCD_BINARY_DEFAULT, ETCD_INSTALL_HINT, etcdProblem, freeLoopbackPort, LocalEtcdError, startLocalEtcd, type LocalEtcd } from '../cluster/etcd/local-server.js';
import { parseSize } from '../node/config.js';
import { nodeStatus, type NodeStatus } from './cluster.js';

export type DevClusterErrorCode = 'BAD_ARGUMENT' | 'ETCD_NOT_FOUND' | 'ETCD_START_FAILED' | 'NODE_START_FAILED' | 'CLUSTER_NOT_READY';

export class DevClusterError extends Error {
  constructor(readonly code: DevClusterErrorCode, message: string) {
    super(message);
    this.name = 'DevClusterError';
  }
}

export interface DevClusterFlags {
  nodes: string;
  workers: string;
  maxMemory: string;
  etcdBinary?: string;
  readyTimeoutMs: string;
  quiet?: boolean;
}

const CLI_PATH = fileURLToPath(new URL('./main.js', import.meta.url));
const NODES_MAX = 16;
const WORKERS_MAX = 64;
const ETCD_START_TIMEOUT_MS = 15_000;
/** Tries with fresh ports when etcd loses the race for the free ports it was given. */
const ETCD_START_ATTEMPTS = 3;
const NODE_LISTEN_TIMEOUT_MS = 15_000;
/** Above `pikv serve`'s own shutdown_timeout_ms (10 s), so a node finishing its requests is not cut short. */
const NODE_STOP_TIMEOUT_MS = 15_000;
const ETCD_STOP_TIMEOUT_MS = 5_000;
const STATUS_POLL_MS = 200;
/** Last output kept per node, for the message when it fails to start. */
const NODE_OUTPUT_KEPT_CHARS = 8_000;
const EXIT_ERROR = 2;

interface Settings {
  nodes: number;
  workers: number;
  memory_bytes_max: number;
  max_memory: string;
  etcd_binary: string;
  ready_timeout_ms: number;
  quiet: boolean;
}

function wholeFlag(value: string, flag: string, min: number, max: number): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new DevClusterError('BAD_ARGUMENT', `${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function parseFlags(flags: DevClusterFlags): Settings {
  let memory_bytes_max: number;
  try {
    memory_bytes_max = parseSize(flags.maxMemory, '--max-memory');
  } catch (error) {
    throw new DevClusterError('BAD_ARGUMENT', (error as Error).message);
  }
  if (memory_bytes_max === 0) throw new DevClusterError('BAD_ARGUMENT', '--max-memory must be more than 0');
  return {
    nodes: wholeFlag(flags.nodes, '--nodes', 1, NODES_MAX),
    workers: wholeFlag(flags.workers, '--workers', 1, WORKERS_MAX),
    memory_bytes_max,
    max_memory: flags.maxMemory,
    etcd_binary: flags.etcdBinary ?? ETCD_BINARY_DEFAULT,
    ready_timeout_ms: wholeFlag(flags.readyTimeoutMs, '--ready-timeout-ms', 1_000, 3_600_000),
    quiet: flags.quiet === true,
  };
}

/** Writes complete lines of a child's output to `out`, each prefixed; a partial last line waits for its end. */
function lineForwarder(prefix: string, out: NodeJS.WritableStream, enabled: () => boolean): { write(chunk: string): void; flush(): void } {
  let partial = '';
  return {
    write(chunk: string): void {
      const text = partial + chunk;
      const end = text.lastIndexOf('\n');
      partial = text.slice(end + 1);
      if (end < 0 || !enabled()) return;
      out.write(text.slice(0, end).split('\n').map((line) => `${prefix}${line}\n`).join(''));
    },
    flush(): void {
      if (partial !== '' && enabled()) out.write(`${prefix}${partial}\n`);
      partial = '';
    },
  };
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `signal ${signal}` : `code ${code}`;
}

function say(message: string): void {
  process.stderr.write(`pikv dev-cluster: ${message}\n`);
}

interface DevNode {
  id: string;
  child: ChildProcess;
  pid: number;
  url: string;
  /** The node's RESP (Redis protocol) port, a free one picked at start. */
  resp_port: number;
  output: string;
  /** It logged that it left the cluster (pikv cluster leave), so its exit is expected. */
  left: boolean;
  exited: Promise<void>;
}

class DevCluster {
  private readonly settings: Settings;
  private readonly secret = randomBytes(24).toString('base64url');
  private readonly temp_dir = mkdtempSync(join(tmpdir(), 'pikv-dev-cluster-'));
  private etcd: LocalEtcd | null = null;
  /** Every etcd process spawned, also ones still starting or that failed to start, so that none is left behind. */
  private readonly etcd_children = new Set<ChildProcess>();
  private readonly nodes: DevNode[] = [];
  private ready = false;
  stopping = false;
  /** Keeps the process alive while waiting for a signal, even if every child has exited. */
  private keepalive: NodeJS.Timeout | null = null;

  constructor(settings: Settings) {
    this.settings = settings;
  }

  /** Last resort on any exit, including an error thrown past us: kill what is still running, remove the directory. */
  killAllNow(): void {
    for (const node of this.nodes) if (isAlive(node.child)) node.child.kill('SIGKILL');
    for (const child of this.etcd_children) if (isAlive(child)) child.kill('SIGKILL');
    rmSync(this.temp_dir, { recursive: true, force: true });
  }

  async start(): Promise<void> {
    this.etcd = await this.startEtcd();
    this.etcd.exited.then(() => {
      if (!this.stopping) say(`etcd (pid ${this.etcd!.pid}) exited unexpectedly (${exitText(this.etcd!.child.exitCode, this.etcd!.child.signalCode)}); the nodes stop acknowledging writes within their lease TTL (3 s). Ctrl-C stops the rest.`);
    }, () => {});
    for (let i = 1; i <= this.settings.nodes; i++) {
      if (this.stopping) return; // a signal arrived while etcd or the previous node was starting
      await this.startNode(`n${i}`, this.etcd.client_url);
      // n1 must have created the cluster in etcd before the others start, so that the first view is always n1 alone.
      if (i === 1) await this.waitForView(['n1'], this.settings.ready_timeout_ms);
      if (this.stopping) return;
    }
    await this.waitForView(this.nodes.map((n) => n.id), this.settings.ready_timeout_ms);
    if (this.stopping) return;
    this.ready = true;
    this.keepalive = setInterval(() => {}, 1 << 30);
  }

  private async startEtcd(): Promise<LocalEtcd> {
    const forward = lineForwarder('[etcd] ', process.stderr, () => !this.settings.quiet);
    for (let attempt = 1; ; attempt++) {
      const data_dir = join(this.temp_dir, `etcd-${attempt}`);
      try {
        return await startLocalEtcd({
          binary: this.settings.etcd_binary,
          data_dir,
          client_port: await freeLoopbackPort(),
          peer_port: await freeLoopbackPort(),
          auto_compaction_retention_revisions: 1000,
          // Errors only: etcd's warnings (e.g. "running on a single port is not for production") would only confuse a newcomer.
          log_level: 'error',
          start_timeout_ms: ETCD_START_TIMEOUT_MS,
          detached: true,
          onOutput: (chunk) => forward.write(chunk),
          onSpawn: (child) => this.etcd_children.add(child),
        });
      } catch (error) {
        const message = (error as Error).message;
        // Another process may take a port between freeLoopbackPort() and etcd binding it.
        if (error instanceof LocalEtcdError && /address already in use/i.test(message) && attempt < ETCD_START_ATTEMPTS && !this.stopping) continue;
        throw new DevClusterError('ETCD_START_FAILED', `could not start etcd (${this.settings.etcd_binary}): ${message}`);
      }
    }
  }

  /**
   * The secret goes through the environment, never argv (`ps` shows argv to every user); a
   * PIKV_CLUSTER_SECRET of the caller's is replaced. A PIKV_CLIENT_TOKEN of the caller's is
   * dropped: the nodes would then require it, and the readiness checks here send none.
   */
  private nodeEnvironment(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, PIKV_CLUSTER_SECRET: this.secret };
    delete env['PIKV_CLIENT_TOKEN'];
    return env;
  }

  private startNode(id: string, etcd_url: string): Promise<DevNode> {
    const { settings } = this;
    const args = [CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', '0', '--node-id', id, '--etcd', etcd_url,
      '--workers', String(settings.workers), '--max-memory', settings.max_memory];
    const child = spawn(process.execPath, args, {
      env: this.nodeEnvironment(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const node: DevNode = { id, child, pid: child.pid ?? -1, url: '', resp_port: 0, output: '', left: false, exited: Promise.resolve() };
    this.nodes.push(node);
    const enabled = (): boolean => !settings.quiet;
    const out = lineForwarder(`[${id}] `, process.stdout, enabled);
    const err = lineForwarder(`[${id}] `, process.stderr, enabled);
    const keep = (chunk: string): void => {
      node.output = (node.output + chunk).slice(-NODE_OUTPUT_KEPT_CHARS);
      if (node.output.includes('left the cluster')) node.left = true;
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk.toString());
      out.write(chunk.toString());
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      keep(chunk.toString());
      err.write(chunk.toString());
    });
    node.exited = new Promise<void>((resolve) => child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      out.flush();
      err.flush();
      if (!this.stopping && this.ready) {
        say(node.left
          ? `node ${id} (pid ${node.pid}) left the cluster and exited (${exitText(code, signal)})`
          : `node ${id} (pid ${node.pid}) died (${exitText(code, signal)}); the keys it owned are unavailable (no replication). Ctrl-C stops the rest.`);
      }
      resolve();
    }));
    child.once('error', (error) => {
      node.output += `\n${error.message}`;
    });
    return new Promise<DevNode>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DevClusterError('NODE_START_FAILED', `node ${id} did not print its address within ${NODE_LISTEN_TIMEOUT_MS} ms:\n${node.output}`)), NODE_LISTEN_TIMEOUT_MS);
      const onData = (): void => {
        const match = /listening on (ws:\/\/\S+)/.exec(node.output);
        if (match === null) return;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        node.url = match[1]!;
        // serve prints its RESP address on the line before.
        node.resp_port = Number(/RESP \(Redis protocol\) on redis:\/\/\S*:(\d+)/.exec(node.output)?.[1] ?? 0);
        resolve(node);
      };
      child.stdout!.on('data', onData);
      void node.exited.then(() => {
        clearTimeout(timer);
        reject(new DevClusterError('NODE_START_FAILED', `node ${id} exited (${exitText(child.exitCode, child.signalCode)}) before listening:\n${node.output.trim()}`));
      });
    });
  }

  /**
   * Waits until every started node answers with a view of exactly `ids` at one epoch, no data
   * move in progress (no `next`, no migration) and serving (it read the view in a live etcd
   * session: before that it answers CLUSTER_UNAVAILABLE).
   */
  private async waitForView(ids: string[], timeout_ms: number): Promise<void> {
    const wanted = [...ids].sort().join(',');
    const give_up_ms = Date.now() + timeout_ms;
    let last: (NodeStatus | string)[] = [];
    for (;;) {
      if (this.stopping) return;
      const dead = this.nodes.find((node) => !isAlive(node.child));
      if (dead !== undefined) throw new DevClusterError('NODE_START_FAILED', `node ${dead.id} exited (${exitText(dead.child.exitCode, dead.child.signalCode)}) before the cluster was ready:\n${dead.output.trim()}`);
      last = await Promise.all(this.nodes.map((node) => nodeStatus(node.url, '').catch((error: Error) => error.message)));
      const settled = last.every((s) => typeof s !== 'string' && s.view.next === undefined && s.migration === null && s.etcd?.serving === true
        && s.view.nodes.map((n) => n.id).sort().join(',') === wanted);
      if (settled && new Set(last.map((s) => (s as NodeStatus).epoch)).size === 1) return;
      if (Date.now() > give_up_ms) {
        const seen = last.map((s, i) => `${this.nodes[i]!.id}: ${typeof s === 'string' ? s
          : `epoch ${s.epoch}, nodes ${s.view.nodes.map((n) => n.id).join(',')}${s.view.next ? ` -> ${s.view.next.map((n) => n.id).join(',')}` : ''}, serving ${s.etcd?.serving === true}`}`);
        throw new DevClusterError('CLUSTER_NOT_READY', `the nodes did not settle on ${wanted} within ${timeout_ms} ms (--ready-timeout-ms):\n  ${seen.join('\n  ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, STATUS_POLL_MS));
    }
  }

  printSummary(): void {
    const { nodes } = this;
    const etcd = this.etcd!;
    const first = nodes[0]!.url;
    const other = nodes[nodes.length > 1 ? 1 : 0]!.url;
    const width = Math.max(...nodes.map((n) => n.url.length), etcd.client_url.length) + 2;
    const lines = [
      '',
      `pikv dev-cluster: ${nodes.length} node${nodes.length === 1 ? '' : 's'} ready`,
      '',
      `  etcd  ${etcd.client_url.padEnd(width)}pid ${etcd.pid}`,
      ...nodes.map((n) => `  ${n.id.padEnd(4)}  ${n.url.padEnd(width)}pid ${n.pid}`),
      '',
      'Try it from another terminal (any node answers for any key):',
      `  npx pikv put greeting hello --url ${first}`,
      `  npx pikv get greeting --url ${other}`,
      `  npx pikv cluster status --url ${first}`,
      `  redis-cli -p ${nodes[0]!.resp_port} set greeting hi   # Redis protocol: ${nodes.map((n) => `${n.id} on ${n.resp_port}`).join(', ')}`,
      '',
      'From code:',
      `  import { connectCluster } from 'pikv'`,
      `  const kv = await connectCluster([${nodes.map((n) => `'${n.url}'`).join(', ')}])`,
      '',
      'Admin commands (cluster leave, remove) and extra nodes need this session\'s secret:',
      `  export PIKV_CLUSTER_SECRET=${this.secret}`,
      `  npx pikv cluster leave ${nodes[nodes.length - 1]!.id} --url ${first}`,
      `  npx pikv serve --port 0 --node-id n${nodes.length + 1} --etcd ${etcd.client_url}   # joins by itself; stop it yourself`,
      '',
      'Ctrl-C stops every node, then etcd, and deletes everything (all data is in memory).',
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }

  /** Stops every node by PID, then etcd, removes the directory, and exits with `exit_code`. A second call (a second Ctrl-C) kills at once. */
  async shutdown(exit_code: number, why: string): Promise<never> {
    if (this.stopping) {
      say('stopping now (SIGKILL)');
      this.killAllNow();
      process.exit(exit_code);
    }
    this.stopping = true;
    if (this.keepalive !== null) clearInterval(this.keepalive);
    const live = this.nodes.filter((node) => isAlive(node.child));
    say(`${why}: stopping ${live.length} node${live.length === 1 ? '' : 's'}, then etcd`);
    await Promise.all(live.map(async (node) => {
      try {
        process.kill(node.pid, 'SIGTERM');
      } catch {
        return; // exited just now
      }
      const timer = setTimeout(() => {
        say(`node ${node.id} (pid ${node.pid}) did not stop within ${NODE_STOP_TIMEOUT_MS} ms; SIGKILL`);
        node.child.kill('SIGKILL');
      }, NODE_STOP_TIMEOUT_MS);
      await node.exited;
      clearTimeout(timer);
    }));
    await this.etcd?.stop('SIGTERM', ETCD_STOP_TIMEOUT_MS);
    for (const child of this.etcd_children) if (isAlive(child)) child.kill('SIGKILL');
    rmSync(this.temp_dir, { recursive: true, force: true });
    say('stopped');
    process.exit(exit_code);
  }
}

/** Checks the flags and that etcd runs, before anything is started. */
function preflight(flags: DevClusterFlags): Settings {
  const settings = parseFlags(flags);
  const problem = etcdProblem(settings.etcd_binary);
  if (problem !== null) {
    throw new DevClusterError('ETCD_NOT_FOUND',
      `${problem}. pikv dev-cluster needs etcd: install it with \`sudo ${ETCD_INSTALL_HINT}\` (Debian, Ubuntu, Raspberry Pi OS), or point at an etcd binary with --etcd-binary PATH`);
  }
  return settings;
}

export async function runDevCluster(flags: DevClusterFlags): Promise<void> {
  let settings: Settings;
  try {
    settings = preflight(flags);
  } catch (error) {
    if (!(error instanceof DevClusterError)) throw error;
    // Said here rather than by main.ts, which adds the [CODE] suffix only to PikvError.
    say(`${error.message} [${error.code}]`);
    process.exitCode = EXIT_ERROR;
    return;
  }
  const cluster = new DevCluster(settings);
  process.on('exit', () => cluster.killAllNow());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void cluster.shutdown(0, `${signal} received`));
  }
  try {
    await cluster.start();
  } catch (error) {
    if (cluster.stopping) return; // a signal arrived mid-start; shutdown() exits
    const code = error instanceof DevClusterError ? error.code : 'INTERNAL';
    say(`${(error as Error).message} [${code}]`);
    await cluster.shutdown(EXIT_ERROR, 'start failed');
  }
  if (!cluster.stopping) cluster.printSummary();
}

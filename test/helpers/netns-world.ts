/**
 * A private LAN of network namespaces for tests that run every process inside one
 * (discovery-netns.test.ts, replication-netns.test.ts): a bridge in its own namespace
 * (`<tag>-br`), one namespace per host with a veth into the bridge and the address
 * `<subnet>.<host>/24`, which exists only inside them; processes started there with
 * `ip netns exec`; etcd listening on a namespace's address. Everything it made is undone by
 * cleanUp(): processes killed by PID, namespaces deleted (last made first), temp dirs removed.
 *
 * Not to be confused with netns-driver.ts and netns-replication-driver.ts: those are the
 * client programs the tests run inside a namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdEnvironment, localEtcdArgs } from '../../src/cluster/etcd/local-server.js';
import { ETCD_BINARY } from './etcd.js';

export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/**
 * Null if this machine can make a network namespace (and `check`, given one to try things in,
 * returns null); else why not.
 */
export function netnsUnavailable(tag: string, check?: (ns: string) => string | null): string | null {
  const probe = `${tag}-probe`;
  try {
    ip('netns', 'add', probe);
  } catch (error) {
    return `ip netns is unavailable here (${(error as Error).message.split('\n')[0]}); needs root and iproute2`;
  }
  try {
    return check?.(probe) ?? null;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch { /* gone */ }
  }
}

/** A process started in a namespace; its output is collected in `text`. */
export interface NetnsProc {
  name: string;
  child: ChildProcess;
  text: string;
  exited: Promise<void>;
  /** Resolves with the first truthy `match()`, checked on output and every 100 ms; throws on timeout or exit. */
  waitFor<T>(what: string, match: () => T | null | undefined | false, timeout_ms: number): Promise<T>;
  /** waitFor `pattern` in the output. */
  waitForText(pattern: RegExp, timeout_ms: number): Promise<RegExpExecArray>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** 'pipe' to write commands to the process (default 'ignore'). */
  stdin?: 'ignore' | 'pipe';
  /** What each piece of output adds to `text` (default: itself); it may keep what it does not add. */
  output?: (chunk: string, stream: 'stdout' | 'stderr') => string;
}

/** Characters of output quoted when a wait fails. */
const TAIL_CHARS = 4000;

export class NetnsWorld {
  readonly procs: NetnsProc[] = [];
  readonly bridge_ns: string;
  private readonly namespaces: string[] = [];
  private readonly temp_dirs: string[] = [];

  /** `tag` prefixes every name made (namespaces, veths); `subnet` is the /24's first three octets. */
  constructor(readonly tag: string, readonly subnet: string) {
    this.bridge_ns = `${tag}-br`;
  }

  address(host: number): string {
    return `${this.subnet}.${host}`;
  }

  /** The namespace holding the bridge `br0` every host's veth is attached to. */
  addBridge(): void {
    ip('netns', 'add', this.bridge_ns);
    this.namespaces.push(this.bridge_ns);
    ip('-n', this.bridge_ns, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.bridge_ns, 'link', 'set', 'br0', 'up');
  }

  /** Namespace `ns`, host `host` on the LAN (its eth0), loopback up. */
  addNamespace(ns: string, host: number): void {
    ip('netns', 'add', ns);
    this.namespaces.push(ns);
    const outside = `${this.tag}v${host}`;
    // Both ends are created inside our namespaces: nothing is added to the host's.
    ip('-n', this.bridge_ns, 'link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.bridge_ns, 'link', 'set', outside, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', `${this.address(host)}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }

  /** A temp dir removed by cleanUp(). */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.temp_dirs.push(dir);
    return dir;
  }

  /** Runs `command` in namespace `ns` (`ip netns exec` execs it: the PID is the command's own). */
  spawn(ns: string, name: string, command: string, args: string[], options: SpawnOptions = {}): NetnsProc {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    const output = options.output ?? ((chunk: string) => chunk);
    const wakers = new Set<() => void>();
    const proc: NetnsProc = {
      name, child, text: '',
      exited: new Promise((resolve) => child.once('close', () => resolve())),
      async waitFor<T>(what: string, match: () => T | null | undefined | false, timeout_ms: number): Promise<T> {
        const deadline = Date.now() + timeout_ms;
        for (;;) {
          const found = match();
          if (found !== null && found !== undefined && found !== false) return found;
          if (Date.now() > deadline) throw new Error(`${name}: no ${what} within ${timeout_ms} ms; output tail:\n${proc.text.slice(-TAIL_CHARS)}`);
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${proc.text.slice(-TAIL_CHARS)}`);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              wakers.delete(wake);
              resolve();
            }, 100);
            const wake = (): void => {
              clearTimeout(timer);
              resolve();
            };
            wakers.add(wake);
          });
        }
      },
      waitForText(pattern: RegExp, timeout_ms: number): Promise<RegExpExecArray> {
        return proc.waitFor(String(pattern), () => pattern.exec(proc.text), timeout_ms);
      },
    };
    const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer): void => {
      proc.text += output(chunk.toString(), stream);
      for (const wake of wakers) wake();
      wakers.clear();
    };
    child.stdout!.on('data', collect('stdout'));
    child.stderr!.on('data', collect('stderr'));
    // A process that exits while a command is written to it must not crash the test.
    child.stdin?.on('error', () => undefined);
    this.procs.push(proc);
    return proc;
  }

  /**
   * etcd (Debian's etcd-server, the flags of test/helpers/etcd.ts: 50 ms heartbeats, 250 ms
   * elections) in namespace `ns`, serving clients on `client_url` (the namespace's address)
   * instead of loopback; its data in a temp dir named `<data_prefix>…`. `spawn`: how its output
   * is kept (its environment is etcd's own).
   */
  startEtcd(ns: string, name: string, client_url: string, data_prefix: string,
    options: { auto_compaction_retention_revisions?: number; spawn?: Omit<SpawnOptions, 'env'> } = {}): NetnsProc {
    const data_dir = this.tempDir(data_prefix);
    const args = localEtcdArgs({
      binary: ETCD_BINARY, data_dir, client_port: 2379, peer_port: 2380, heartbeat_interval_ms: 50, election_timeout_ms: 250,
      ...(options.auto_compaction_retention_revisions === undefined ? {} : { auto_compaction_retention_revisions: options.auto_compaction_retention_revisions }),
      log_level: 'warn', start_timeout_ms: 15_000,
    });
    for (const flag of ['--listen-client-urls', '--advertise-client-urls']) args[args.indexOf(flag) + 1] = client_url;
    return this.spawn(ns, name, ETCD_BINARY, args, { ...options.spawn, env: etcdEnvironment() });
  }

  /** Kills every process by PID (waits 5 s at most for them), deletes the namespaces and the temp dirs. */
  async cleanUp(): Promise<void> {
    for (const proc of this.procs) {
      if (proc.child.pid !== undefined && proc.child.exitCode === null && proc.child.signalCode === null) {
        try {
          process.kill(proc.child.pid, 'SIGKILL');
        } catch { /* gone */ }
      }
    }
    await Promise.race([Promise.all(this.procs.map((p) => p.exited)), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    for (const name of this.namespaces.splice(0).reverse()) {
      try {
        ip('netns', 'del', name);
      } catch { /* gone */ }
    }
    for (const dir of this.temp_dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

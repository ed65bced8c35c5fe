/**
 * The set-up of the regression tests `npm run chaos` found (chaos-rejoin, chaos-removed-while-cut):
 * a real etcd, a TCP proxy in front of it (startEtcdProxy) through which a node can be cut off
 * from etcd, and durable `pikv serve --etcd` nodes on loopback with N = 2 and a 1 s down grace,
 * so that a node cut off or killed is removed quickly. stop() stops every node by PID, the proxy
 * and etcd, and removes the data dirs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, startEtcdProxy, type EtcdProcess, type EtcdProxy } from './etcd.js';
import { ENV } from './etcd-cluster.js';
import { startServer, type ServerProcess } from './server-process.js';

export class ProxiedEtcdCluster {
  private readonly started: ServerProcess[] = [];
  private readonly dirs: string[] = [];
  private etcd_process: EtcdProcess | null = null;
  private etcd_proxy: EtcdProxy | null = null;

  /** `name` goes in the data dirs' names (pikv-<name>-<id>-…). */
  constructor(readonly name: string) {}

  async start(): Promise<void> {
    this.etcd_process = await startEtcd();
    this.etcd_proxy = await startEtcdProxy(this.etcd_process.client_url);
  }

  /** etcd's own client URL: nodes started with it are never cut off. */
  get etcd_url(): string {
    return this.etcd_process!.client_url;
  }

  /** The proxy: nodes started with its client_url lose etcd on cut(). */
  get proxy(): EtcdProxy {
    return this.etcd_proxy!;
  }

  /** A fresh data dir for node `id`, removed by stop(). */
  dataDir(id: string): string {
    const dir = mkdtempSync(join(tmpdir(), `pikv-${this.name}-${id}-`));
    this.dirs.push(dir);
    return dir;
  }

  /** `pikv serve` as node `id` on `port`, using etcd at `etcd_url` (etcd_url or proxy.client_url), on `data_dir`. */
  async serve(id: string, port: number, etcd_url: string, data_dir: string): Promise<ServerProcess> {
    const server = await startServer(['--port', String(port), '--node-id', id, '--etcd', etcd_url, '--workers', '1', '--max-memory', '128mb',
      '--replicas', '2', '--lease-ttl-ms', '2000', '--down-grace-ms', '1000', '--controller-tick-ms', '50', '--heartbeat-interval-ms', '200',
      '--forward-timeout-ms', '2000', '--data-dir', data_dir, '--fsync', 'always'], ENV);
    this.started.push(server);
    return server;
  }

  async stop(): Promise<void> {
    for (const server of this.started.splice(0)) {
      if (server.child.exitCode === null && server.child.signalCode === null) {
        process.kill(server.pid, 'SIGKILL');
        await server.exited;
      }
    }
    await this.etcd_proxy?.close();
    this.etcd_proxy = null;
    await this.etcd_process?.stop();
    this.etcd_process = null;
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

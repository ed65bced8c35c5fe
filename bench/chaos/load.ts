/**
 * The chaos run's clients, all in this process and all recording into one History:
 *   - ring-aware writers (connectCluster over every node): batches of PUTs of their own keys,
 *     then a batch of GETs of random keys of every writer; one of them reads with read: 'any'
 *     (a random in-sync copy), checked against the same promise;
 *   - plain writers: one connection to a random running node (another one after the
 *     connection fails or the node keeps refusing), same pattern; the node forwards;
 *   - a RESP writer (ioredis, SET/GET) to a random running node's RESP port.
 * Reads are the default linearizable ones (the primary serves).
 */
import { Redis } from 'ioredis';
import { connect, connectCluster, type BatchOp, type OpResult, type PikvClient, type PikvClusterClient } from '../../src/index.js';
import type { ChaosCluster } from './cluster.js';
import { UNKNOWN_OUTCOME, type History } from './history.js';

export type Rng = () => number;

const KEYS_PER_WRITER = 120;
const BATCH_OPS = 10;
const REQUEST_TIMEOUT_MS = 3_000;
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

interface Batcher {
  batch(ops: readonly BatchOp[]): Promise<OpResult[]>;
}

abstract class Client {
  stopped = false;
  ops_ok = 0;
  constructor(readonly name: string, protected readonly history: History, protected readonly rng: Rng) {}

  protected keys(): string[] {
    return Array.from({ length: KEYS_PER_WRITER }, (_, i) => `${this.name}:${i}`);
  }

  /** One round of BATCH_OPS puts of distinct own keys, then BATCH_OPS gets of any writer's keys. */
  protected async round(client: Batcher): Promise<OpResult[]> {
    const own = this.keys();
    const chosen = new Set<string>();
    while (chosen.size < BATCH_OPS) chosen.add(pick(this.rng, own));
    const writes = [...chosen].map((key) => ({ key, version: this.history.nextVersion(key) }));
    const results = await client.batch(writes.map(({ key, version }) => ({ op: 'put' as const, key, value: String(version) })))
      .catch((error: { code?: string }) => writes.map((): OpResult => ({ code: (error.code ?? 'CONNECTION_LOST') as OpResult['code'] })));
    writes.forEach(({ key, version }, i) => {
      const code = results[i]!.code;
      if (code === 'OK') this.ops_ok++;
      this.history.writeDone(key, version, code);
    });
    const all = this.history.allKeys();
    const reads = Array.from({ length: BATCH_OPS }, () => pick(this.rng, all));
    const before = reads.map((key) => this.history.ackedOf(key));
    const invoked = this.history.now_ms();
    const answers = await client.batch(reads.map((key) => ({ op: 'get' as const, key })))
      .catch((error: { code?: string }) => reads.map((): OpResult => ({ code: (error.code ?? 'CONNECTION_LOST') as OpResult['code'] })));
    answers.forEach((answer, i) => {
      if (answer.code === 'OK') this.ops_ok++;
      const value = answer.code === 'OK' ? Number(Buffer.from(answer.value ?? new Uint8Array(0)).toString()) : null;
      this.history.readDone(reads[i]!, before[i]!, answer.code, value, invoked, this.name);
    });
    return [...results, ...answers];
  }

  abstract run(): Promise<void>;
  abstract close(): Promise<void>;
}

export class AwareClient extends Client {
  private client: PikvClusterClient | null = null;
  /** read: 'any' (GETs to a random in-sync copy) promises every write acknowledged before the read started, like the primary. */
  constructor(name: string, history: History, rng: Rng, private readonly cluster: ChaosCluster, private readonly read: 'primary' | 'any' = 'primary') {
    super(name, history, rng);
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      if (this.client === null) {
        this.client = await connectCluster(this.cluster.urls(), { request_timeout_ms: REQUEST_TIMEOUT_MS, connect_timeout_ms: 2_000, read: this.read }).catch(() => null);
        if (this.client === null) {
          await delay(200);
          continue;
        }
      }
      const results = await this.round(this.client);
      await delay(results.every((r) => r.code !== 'OK') ? 50 : 2);
    }
  }

  async close(): Promise<void> {
    await this.client?.close().catch(() => undefined);
  }
}

export class PlainClient extends Client {
  private client: PikvClient | null = null;
  node = '';
  private failed_rounds = 0;
  constructor(name: string, history: History, rng: Rng, private readonly cluster: ChaosCluster) {
    super(name, history, rng);
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      if (this.client === null) {
        const running = this.cluster.running();
        if (running.length === 0) {
          await delay(100);
          continue;
        }
        this.node = pick(this.rng, running);
        this.client = await connect(this.cluster.url(this.node), { request_timeout_ms: REQUEST_TIMEOUT_MS, connect_timeout_ms: 2_000 }).catch(() => null);
        if (this.client === null) {
          await delay(100);
          continue;
        }
      }
      const results = await this.round(this.client);
      const all_failed = results.every((r) => r.code !== 'OK');
      this.failed_rounds = all_failed ? this.failed_rounds + 1 : 0;
      // A lost connection, or a node that keeps refusing everything: try another node.
      if (results.some((r) => r.code === 'CONNECTION_LOST' || r.code === 'CLIENT_CLOSED') || this.failed_rounds >= 5) {
        await this.client.close().catch(() => undefined);
        this.client = null;
        this.failed_rounds = 0;
      }
      await delay(all_failed ? 50 : 2);
    }
  }

  async close(): Promise<void> {
    await this.client?.close().catch(() => undefined);
  }
}

/** The pikv code in a RESP error reply ("TRYAGAIN NODE_DOWN message", "ERR CODE message"); CONNECTION_LOST for anything else. */
function respCode(error: Error): string {
  const match = /^(?:TRYAGAIN|ERR|OOM) ([A-Z_]+)/.exec(error.message);
  if (match !== null) return match[1]!;
  if (/timed out/i.test(error.message)) return 'TIMEOUT';
  return 'CONNECTION_LOST';
}

export class RespClient extends Client {
  private redis: Redis | null = null;
  private failed_rounds = 0;
  constructor(name: string, history: History, rng: Rng, private readonly cluster: ChaosCluster) {
    super(name, history, rng);
  }

  private async open(): Promise<Redis | null> {
    const running = this.cluster.running();
    if (running.length === 0) return null;
    const { host, resp_port } = this.cluster.get(pick(this.rng, running)).address;
    const redis = new Redis({ host, port: resp_port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null,
      connectTimeout: 2_000, commandTimeout: REQUEST_TIMEOUT_MS, enableReadyCheck: false });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      return redis;
    } catch {
      redis.disconnect();
      return null;
    }
  }

  async run(): Promise<void> {
    while (!this.stopped) {
      if (this.redis === null) {
        this.redis = await this.open();
        if (this.redis === null) {
          await delay(100);
          continue;
        }
      }
      const redis = this.redis;
      const key = pick(this.rng, this.keys());
      const version = this.history.nextVersion(key);
      const code = await redis.set(key, String(version)).then(() => 'OK', (error: Error) => respCode(error));
      if (code === 'OK') this.ops_ok++;
      this.history.writeDone(key, version, code);
      const read_key = pick(this.rng, this.history.allKeys());
      const before = this.history.ackedOf(read_key);
      const invoked = this.history.now_ms();
      const read = await redis.get(read_key).then((value) => ({ code: value === null ? 'NOT_FOUND' : 'OK', value }), (error: Error) => ({ code: respCode(error), value: null }));
      if (read.code === 'OK' || read.code === 'NOT_FOUND') this.ops_ok++;
      this.history.readDone(read_key, before, read.code, read.value === null ? null : Number(read.value), invoked, this.name);
      const failed = code !== 'OK' && read.code !== 'OK' && read.code !== 'NOT_FOUND';
      this.failed_rounds = failed ? this.failed_rounds + 1 : 0;
      if ((UNKNOWN_OUTCOME.has(code) && code !== 'NODE_DOWN') || this.failed_rounds >= 10 || redis.status !== 'ready') {
        redis.disconnect();
        this.redis = null;
        this.failed_rounds = 0;
      }
      await delay(failed ? 50 : 1);
    }
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }
}

export class Load {
  readonly clients: Client[];
  private runs: Promise<void>[] = [];

  constructor(cluster: ChaosCluster, history: History, rng: Rng, options: { aware: number; any: number; plain: number; resp: number }) {
    this.clients = [
      ...Array.from({ length: options.aware }, (_, i) => new AwareClient(`aw${i}`, history, rng, cluster)),
      ...Array.from({ length: options.any }, (_, i) => new AwareClient(`ay${i}`, history, rng, cluster, 'any')),
      ...Array.from({ length: options.plain }, (_, i) => new PlainClient(`pl${i}`, history, rng, cluster)),
      ...Array.from({ length: options.resp }, (_, i) => new RespClient(`rs${i}`, history, rng, cluster)),
    ];
  }

  start(): void {
    this.runs = this.clients.map((client) => client.run());
  }

  ops_ok(): number {
    return this.clients.reduce((sum, client) => sum + client.ops_ok, 0);
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.stopped = true;
    await Promise.all(this.runs);
    for (const client of this.clients) await client.close();
  }
}

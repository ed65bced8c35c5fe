/**
 * A lost-write and stale-read checker for cluster tests (Jepsen's "lost write" idea, small):
 * each writer owns its keys and writes increasing versions to them; it remembers the highest
 * version each key had acknowledged and the highest it ever attempted. A later read of a key
 * must return a version at least the acknowledged one (else an acknowledged write was lost,
 * or the read was stale) and at most the attempted one. Writers also read back a sample of
 * their own keys as they go, so stale reads during membership changes are caught, not only
 * at the end.
 */
import type { BatchOp, OpResult } from '../../src/index.js';

export interface BatchClient {
  batch(ops: readonly BatchOp[]): Promise<OpResult[]>;
}

export interface Anomaly {
  key: string;
  kind: 'lost' | 'stale' | 'impossible';
  read: number | null;
  acked: number;
}

export class VersionWriter {
  readonly name: string;
  readonly acked = new Map<string, number>();
  readonly attempted = new Map<string, number>();
  readonly codes = new Map<string, number>();
  readonly anomalies: Anomaly[] = [];
  ops_acked = 0;
  private readonly client: BatchClient;
  private readonly keys: number;
  private readonly batch_ops: number;

  constructor(name: string, client: BatchClient, keys = 300, batch_ops = 25) {
    this.name = name;
    this.client = client;
    this.keys = keys;
    this.batch_ops = batch_ops;
  }

  /** Writes and reads back until `running()` is false; never throws for a failed op (it counts codes). */
  async run(running: () => boolean, pause_ms = 2): Promise<void> {
    for (let round = 1; running(); round++) {
      const ops: BatchOp[] = [];
      for (let i = 0; i < this.batch_ops; i++) {
        const key = `${this.name}${(round * 7 + i) % this.keys}`;
        ops.push({ op: 'put', key, value: String(round) });
        this.attempted.set(key, round);
      }
      const results = await this.client.batch(ops).catch(() => ops.map((): OpResult => ({ code: 'CONNECTION_LOST' })));
      results.forEach((result, i) => {
        this.count(result.code);
        if (result.code !== 'OK') return;
        const key = (ops[i] as { key: string }).key;
        this.acked.set(key, Math.max(this.acked.get(key) ?? 0, round));
        this.ops_acked++;
      });
      if (round % 5 === 0) await this.readBack(round);
      await new Promise((resolve) => setTimeout(resolve, pause_ms));
    }
  }

  /** Reads a sample of this writer's keys; each must be at least what was acknowledged before the read. */
  private async readBack(round: number): Promise<void> {
    const keys: string[] = [];
    for (let i = 0; i < this.batch_ops; i++) keys.push(`${this.name}${(round * 13 + i) % this.keys}`);
    const before = keys.map((key) => this.acked.get(key) ?? 0);
    const results = await this.client.batch(keys.map((key) => ({ op: 'get' as const, key }))).catch(() => null);
    if (results === null) return;
    results.forEach((result, i) => {
      if (result.code !== 'OK' && result.code !== 'NOT_FOUND') return;
      const read = result.code === 'OK' ? Number(Buffer.from(result.value!).toString()) : null;
      if ((read ?? 0) < before[i]!) this.anomalies.push({ key: keys[i]!, kind: 'stale', read, acked: before[i]! });
    });
  }

  private count(code: string): void {
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  /** Final check through `reader`: every acknowledged write is there (or a newer attempted one). */
  async check(reader: BatchClient): Promise<Anomaly[]> {
    const keys = [...this.acked.keys()];
    const found: Anomaly[] = [...this.anomalies];
    for (let start = 0; start < keys.length; start += 500) {
      const slice = keys.slice(start, start + 500);
      const results = await reader.batch(slice.map((key) => ({ op: 'get' as const, key })));
      results.forEach((result, i) => {
        const key = slice[i]!;
        const acked = this.acked.get(key)!;
        if (result.code !== 'OK' && result.code !== 'NOT_FOUND') throw new Error(`final read of ${key} failed with ${result.code}`);
        const read = result.code === 'OK' ? Number(Buffer.from(result.value!).toString()) : null;
        if (read === null || read < acked) found.push({ key, kind: 'lost', read, acked });
        else if (read > this.attempted.get(key)!) found.push({ key, kind: 'impossible', read, acked });
      });
    }
    return found;
  }

  summary(): string {
    return `${this.name}: ${this.ops_acked} acked; codes ${JSON.stringify(Object.fromEntries(this.codes))}`;
  }
}

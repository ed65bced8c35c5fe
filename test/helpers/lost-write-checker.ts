/**
 * A lost-write and stale-read checker for cluster tests (Jepsen's "lost write" idea, small):
 * each writer owns its keys and writes increasing versions to them; it remembers the highest
 * version each key had acknowledged, the highest it ever attempted, and the versions whose
 * outcome is unknown (NODE_DOWN, TIMEOUT, CONNECTION_LOST, WORKER_RESTARTED: "may or may not
 * have been applied", possibly later, like Jepsen's :info ops). A later read of a key must
 * return the acknowledged version or a newer attempted one, or an unknown-outcome version
 * (else an acknowledged write was lost, or the read was stale); a version whose write failed
 * with a definite error (refused before execution) must never be read. Writers also read back a sample of
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

/** Codes after which a write may or may not have been applied (docs/PROTOCOL.md). */
const UNKNOWN_OUTCOME = new Set(['NODE_DOWN', 'TIMEOUT', 'CONNECTION_LOST', 'WORKER_RESTARTED']);

export class VersionWriter {
  readonly name: string;
  readonly acked = new Map<string, number>();
  readonly attempted = new Map<string, number>();
  readonly codes = new Map<string, number>();
  /** Per key, versions whose write may or may not have taken effect. */
  readonly unknown = new Map<string, Set<number>>();
  /** Per key, versions whose write definitely did not take effect. */
  readonly refused = new Map<string, Set<number>>();
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
        const key = (ops[i] as { key: string }).key;
        if (result.code !== 'OK') {
          const into = UNKNOWN_OUTCOME.has(result.code) ? this.unknown : this.refused;
          let versions = into.get(key);
          if (versions === undefined) into.set(key, (versions = new Set()));
          versions.add(round);
          return;
        }
        this.acked.set(key, Math.max(this.acked.get(key) ?? 0, round));
        this.ops_acked++;
      });
      if (round % 5 === 0) await this.readBack(round);
      // A whole batch failing (its node is gone) is retried after a pause, not in a hot loop.
      const all_failed = results.every((r) => r.code !== 'OK');
      await new Promise((resolve) => setTimeout(resolve, all_failed ? Math.max(pause_ms, 50) : pause_ms));
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
      if ((read ?? 0) < before[i]! && !this.explained(keys[i]!, read)) this.anomalies.push({ key: keys[i]!, kind: 'stale', read, acked: before[i]! });
    });
  }

  /** A read older than the acknowledged version is explained only by an unknown-outcome write taking effect late. */
  private explained(key: string, read: number | null): boolean {
    return read !== null && this.unknown.get(key)?.has(read) === true;
  }

  private count(code: string): void {
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  /**
   * Final check through `reader`: every acknowledged write is there (or a newer attempted one).
   * Keys for which `exclude` is true (e.g. owned by a node lost for good) are not checked, neither at the end nor in the read-backs.
   */
  async check(reader: BatchClient, exclude: (key: string) => boolean = () => false): Promise<Anomaly[]> {
    const keys = [...this.acked.keys()].filter((key) => !exclude(key));
    const found: Anomaly[] = this.anomalies.filter((anomaly) => !exclude(anomaly.key));
    for (let start = 0; start < keys.length; start += 500) {
      const slice = keys.slice(start, start + 500);
      const results = await reader.batch(slice.map((key) => ({ op: 'get' as const, key })));
      results.forEach((result, i) => {
        const key = slice[i]!;
        const acked = this.acked.get(key)!;
        if (result.code !== 'OK' && result.code !== 'NOT_FOUND') throw new Error(`final read of ${key} failed with ${result.code}`);
        const read = result.code === 'OK' ? Number(Buffer.from(result.value!).toString()) : null;
        if (read !== null && this.refused.get(key)?.has(read) === true) found.push({ key, kind: 'impossible', read, acked });
        else if ((read === null || read < acked) && !this.explained(key, read)) found.push({ key, kind: 'lost', read, acked });
        else if (read !== null && read > this.attempted.get(key)!) found.push({ key, kind: 'impossible', read, acked });
      });
    }
    return found;
  }

  summary(): string {
    return `${this.name}: ${this.ops_acked} acked; codes ${JSON.stringify(Object.fromEntries(this.codes))}`;
  }
}

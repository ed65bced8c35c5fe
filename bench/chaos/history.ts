/**
 * The chaos run's lost-write / stale-read checker (Jepsen's idea, small, independent of
 * test/helpers/lost-write-checker.ts): every key belongs to one writer, which writes strictly
 * increasing versions to it (the value is the version). Every client lives in this process, so
 * one clock (performance.now) orders every invocation and completion.
 *
 * Per key it keeps: the highest acknowledged version (acks arrive in version order per key,
 * because a writer has at most one write of a key in flight), the highest attempted one, the
 * versions whose outcome is unknown (NODE_DOWN, TIMEOUT, CONNECTION_LOST, WORKER_RESTARTED:
 * "may or may not have been applied") and the versions refused with a definite code.
 *
 * A read is checked against the acknowledged version captured when the read was *invoked*
 * (so only writes that completed before the read started count):
 *   - value < that, and the value is not an unknown-outcome version: STALE;
 *   - value < that, but the value is an unknown-outcome version: LATE_UNKNOWN (the docs allow
 *     an unknown-outcome write to land late, MEMBERSHIP.md; an outside checker may not);
 *   - a refused version, or one above every version attempted by the read's completion: IMPOSSIBLE.
 * The final read of every key is checked the same way against the last acknowledged version:
 * LOST (or LOST_UNKNOWN when an older unknown-outcome version is what is left).
 */

export const UNKNOWN_OUTCOME = new Set(['NODE_DOWN', 'TIMEOUT', 'CONNECTION_LOST', 'WORKER_RESTARTED']);

export type AnomalyKind = 'stale' | 'late-unknown' | 'impossible' | 'lost' | 'lost-unknown';

export interface Anomaly {
  kind: AnomalyKind;
  key: string;
  read: number | null;
  acked: number;
  /** ms since the run started, when the read was invoked. */
  at_ms: number;
  via: string;
}

class KeyHistory {
  acked = 0;
  attempted = 0;
  readonly unknown = new Set<number>();
  readonly refused = new Set<number>();
}

export class History {
  private readonly keys = new Map<string, KeyHistory>();
  readonly anomalies: Anomaly[] = [];
  readonly codes = new Map<string, number>();
  writes_acked = 0;
  reads_checked = 0;
  private readonly started = performance.now();

  now_ms(): number {
    return performance.now() - this.started;
  }

  private of(key: string): KeyHistory {
    let history = this.keys.get(key);
    if (history === undefined) this.keys.set(key, (history = new KeyHistory()));
    return history;
  }

  allKeys(): string[] {
    return [...this.keys.keys()];
  }

  /** The next version of `key` to write (its writer calls this, then invoked/completed). */
  nextVersion(key: string): number {
    const history = this.of(key);
    history.attempted += 1;
    return history.attempted;
  }

  ackedOf(key: string): number {
    return this.keys.get(key)?.acked ?? 0;
  }

  writeDone(key: string, version: number, code: string): void {
    this.count(code);
    const history = this.of(key);
    if (code === 'OK') {
      if (version < history.acked) throw new Error(`checker: ${key} acked ${version} after ${history.acked} (two writes of one key in flight)`);
      history.acked = version;
      this.writes_acked++;
    } else if (UNKNOWN_OUTCOME.has(code)) {
      history.unknown.add(version);
    } else {
      history.refused.add(version);
    }
  }

  /** `acked_at_invoke` is ackedOf(key) taken just before the read was sent. */
  readDone(key: string, acked_at_invoke: number, code: string, read: number | null, invoked_ms: number, via: string, final = false): void {
    this.count(`read:${code}`);
    if (code !== 'OK' && code !== 'NOT_FOUND') return;
    this.reads_checked++;
    const history = this.of(key);
    const value = code === 'OK' ? read : null;
    const base = { key, read: value, acked: acked_at_invoke, at_ms: Math.round(invoked_ms), via };
    if (value !== null && (history.refused.has(value) || value > history.attempted || !Number.isInteger(value))) {
      this.anomalies.push({ kind: 'impossible', ...base });
    } else if ((value ?? 0) < acked_at_invoke) {
      const late = value !== null && history.unknown.has(value);
      this.anomalies.push({ kind: final ? (late ? 'lost-unknown' : 'lost') : late ? 'late-unknown' : 'stale', ...base });
    }
  }

  private count(code: string): void {
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  countOf(kind: AnomalyKind): number {
    return this.anomalies.filter((a) => a.kind === kind).length;
  }
}

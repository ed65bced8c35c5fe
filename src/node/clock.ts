/**
 * Is this node's clock good enough to decide expiries? Expiry times are absolute (ms since the
 * epoch), so a node that booted with a stale clock (a Raspberry Pi has no real-time clock; on a
 * LAN without a time server it may run in the past for a while) would give keys wrong
 * lifetimes or expire them all at once when the time jumps. Such a node says so in its status
 * and answers CLOCK_UNSYNCED to ops that depend on the time (docs/PROTOCOL.md, "Expiry").
 *
 * Mode "auto" asks systemd (`timedatectl show -p NTPSynchronized --value`: "yes" or "no"); on a
 * machine where that cannot answer (no systemd, a container) it falls back to "the year is at
 * least 2024", which catches a Pi that booted at its image's build date or at 1970. Checked
 * at start and then every CHECK_INTERVAL_MS, so a node starts serving TTLs once its time syncs.
 */
import { execFile } from 'node:child_process';

const CHECK_INTERVAL_MS = 10_000;
const CHECK_TIMEOUT_MS = 2_000;
/** Before this (2024-01-01T00:00:00Z) a clock is certainly wrong. */
export const CLOCK_PLAUSIBLE_SINCE_MS = Date.UTC(2024, 0, 1);

export type ClockMode = 'auto' | 'yes' | 'no';

export class ClockWatch {
  synced: boolean;
  /** Why `synced` is what it is, for status output. */
  reason: string;
  private readonly mode: ClockMode;
  private timer: NodeJS.Timeout | null = null;

  constructor(mode: ClockMode) {
    this.mode = mode;
    if (mode === 'yes') {
      this.synced = true;
      this.reason = 'declared synchronised (--clock-sync yes)';
    } else if (mode === 'no') {
      this.synced = false;
      this.reason = 'declared unsynchronised (--clock-sync no)';
    } else {
      // Until systemd answers: the plausibility check alone.
      this.synced = Date.now() >= CLOCK_PLAUSIBLE_SINCE_MS;
      this.reason = this.synced ? 'year check only (waiting for timedatectl)' : 'the clock is before 2024';
    }
  }

  start(): void {
    if (this.mode !== 'auto' || this.timer !== null) return;
    this.check();
    this.timer = setInterval(() => this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private check(): void {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: CHECK_TIMEOUT_MS }, (error, stdout) => {
      const answer = error === null ? stdout.trim() : '';
      if (Date.now() < CLOCK_PLAUSIBLE_SINCE_MS) {
        this.synced = false;
        this.reason = 'the clock is before 2024';
      } else if (answer === 'yes') {
        this.synced = true;
        this.reason = 'timedatectl: NTPSynchronized=yes';
      } else if (answer === 'no') {
        this.synced = false;
        this.reason = 'timedatectl: NTPSynchronized=no (systemd-timesyncd has not reached a time server yet)';
      } else {
        this.synced = true;
        this.reason = 'timedatectl unavailable; the year is plausible';
      }
    });
  }
}

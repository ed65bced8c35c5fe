/**
 * Rate-limited logging for lines hostile clients can cause (refused sockets, protocol errors,
 * timeouts): at most a few lines a second go to the log, and the rest are counted and reported
 * in one line, so a flood of bad connections cannot flood the log with it. Shared by the RESP
 * and HTTP front ends.
 */

/** Lines a second written before the rest are only counted. */
const LINES_PER_SECOND_MAX = 10;
const WINDOW_MS = 1_000;

export class LogLimiter {
  private window_start_ms = 0;
  private lines_in_window = 0;
  private lines_suppressed = 0;
  private readonly log: (message: string) => void;
  /** Names what the suppressed lines were about, in the summary line ("RESP connection"). */
  private readonly what: string;

  constructor(log: (message: string) => void, what: string) {
    this.log = log;
    this.what = what;
  }

  write(message: string): void {
    const now_ms = Date.now();
    if (now_ms - this.window_start_ms >= WINDOW_MS) {
      if (this.lines_suppressed > 0) this.log(`(${this.lines_suppressed} more ${this.what} lines in the last second were not logged)`);
      this.window_start_ms = now_ms;
      this.lines_in_window = 0;
      this.lines_suppressed = 0;
    }
    if (this.lines_in_window++ < LINES_PER_SECOND_MAX) this.log(message);
    else this.lines_suppressed++;
  }
}

/**
 * GET /v1/events: Server-Sent Events for the dashboard, one `cluster` event a second with the
 * ClusterSummary (cluster-summary.ts), built once and written to every subscriber.
 *
 * Bounded: at most SUBSCRIBERS_MAX streams per node (more get 503), and a subscriber whose
 * unsent bytes pass SEND_BYTES_MAX (a browser that stopped reading, a phone that slept) is
 * dropped rather than buffered for: memory per subscriber never grows past that. The browser's
 * EventSource reconnects by itself (retry: RETRY_MS) and gets the current state again.
 */
import type { ServerResponse } from 'node:http';
import type { ClusterSummaries } from './cluster-summary.js';

export const SUBSCRIBERS_MAX = 32;
export const SEND_BYTES_MAX = 256 * 1024;
const RETRY_MS = 2_000;
/** A comment line now and then keeps proxies and NATs from closing a quiet stream. */
const PUSH_INTERVAL_MS = 1_000;

export class EventStream {
  private readonly summaries: ClusterSummaries;
  private readonly subscribers = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private pushing = false;
  private readonly log: (message: string) => void;

  constructor(summaries: ClusterSummaries, log: (message: string) => void) {
    this.summaries = summaries;
    this.log = log;
  }

  get subscriber_count(): number {
    return this.subscribers.size;
  }

  /** False when SUBSCRIBERS_MAX streams are open (the caller answers 503). */
  subscribe(res: ServerResponse): boolean {
    if (this.subscribers.size >= SUBSCRIBERS_MAX) return false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.subscribers.add(res);
    res.once('close', () => this.unsubscribe(res));
    if (this.timer === null) {
      this.timer = setInterval(() => this.push(), PUSH_INTERVAL_MS);
      this.timer.unref();
    }
    this.push();
    return true;
  }

  /** Ends every stream (shutdown). */
  close(): void {
    for (const res of this.subscribers) res.end();
    this.subscribers.clear();
    this.stopTimer();
  }

  private unsubscribe(res: ServerResponse): void {
    this.subscribers.delete(res);
    if (this.subscribers.size === 0) this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private push(): void {
    // One build at a time: a slow peer fetch must not stack pushes up behind it.
    if (this.pushing || this.subscribers.size === 0) return;
    this.pushing = true;
    this.summaries.get().then(
      (summary) => {
        this.pushing = false;
        this.send(`event: cluster\ndata: ${JSON.stringify(summary)}\n\n`);
      },
      (error: unknown) => {
        this.pushing = false;
        this.log(`dashboard events: could not build the cluster summary: ${(error as Error).message}`);
      },
    );
  }

  private send(text: string): void {
    for (const res of this.subscribers) {
      if (res.writableLength + text.length > SEND_BYTES_MAX) {
        // The browser is not reading: drop it instead of queueing more (it reconnects when it can).
        this.subscribers.delete(res);
        res.destroy();
        continue;
      }
      res.write(text);
    }
    if (this.subscribers.size === 0) this.stopTimer();
  }
}

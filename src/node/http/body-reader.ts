/**
 * Reads one request body into memory, up to a byte limit. A Content-Length over the limit is
 * refused before anything is read (the caller checks declaredBytes()); a body sent without a
 * length (chunked) is cut as soon as it passes the limit, so the node never holds more than
 * the limit plus one chunk of it.
 */
import type { IncomingMessage } from 'node:http';

export type BodyOutcome = { body: Buffer } | { too_large: true };

/** The Content-Length of a request, 0 without one (Node has checked it is a valid number). */
export function declaredBytes(request: IncomingMessage): number {
  const value = request.headers['content-length'];
  return value === undefined ? 0 : Number(value);
}

/** True if the request has a body still to come: a length above 0, or chunked encoding. */
export function hasBody(request: IncomingMessage): boolean {
  return declaredBytes(request) > 0 || request.headers['transfer-encoding'] !== undefined;
}

export class BodyReader {
  /** When reading began, for the body timeout (HttpConnection.checkTimers). */
  readonly since_ms = Date.now();
  private readonly chunks: Buffer[] = [];
  private received_bytes = 0;
  private finished = false;
  private readonly request: IncomingMessage;
  private readonly limit_bytes: number;
  private readonly onDone: (outcome: BodyOutcome) => void;
  private readonly onData = (chunk: Buffer): void => {
    this.received_bytes += chunk.length;
    if (this.received_bytes > this.limit_bytes) {
      this.finish({ too_large: true });
      return;
    }
    this.chunks.push(chunk);
  };
  private readonly onEnd = (): void => {
    this.finish({ body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received_bytes) });
  };

  /** Starts reading; onDone is called once, unless the connection goes first (then never). */
  constructor(request: IncomingMessage, limit_bytes: number, onDone: (outcome: BodyOutcome) => void) {
    this.request = request;
    this.limit_bytes = limit_bytes;
    this.onDone = onDone;
    request.on('data', this.onData);
    request.once('end', this.onEnd);
  }

  /** Stops reading and forgets what was read (the connection is gone, or the body was cut). */
  stop(): void {
    this.finished = true;
    this.chunks.length = 0;
    this.request.off('data', this.onData);
    this.request.off('end', this.onEnd);
  }

  private finish(outcome: BodyOutcome): void {
    if (this.finished) return;
    this.stop();
    this.onDone(outcome);
  }
}

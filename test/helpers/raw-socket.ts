/**
 * A raw WebSocket for tests that speak the wire protocol directly: it keeps every frame it
 * receives so a test can read replies one by one, pause reading, or watch the close code.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { WireCodec, type ErrorResponse, type ResponseBatch } from '../../src/index.js';
import { isErrorResponse } from '../../src/protocol/codec.js';

const codec = new WireCodec();
const REPLY_TIMEOUT_MS = 10_000;

export interface Closed {
  code: number;
  reason: string;
}

/** A WebSocket that keeps every frame it receives, for tests that speak the wire protocol directly. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly closed: Promise<Closed>;
  private readonly inbox: Buffer[] = [];
  private wake: (() => void) | null = null;
  private has_closed = false;

  static open(url: string): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const socket = new RawSocket(new WebSocket(url, { perMessageDeflate: false }));
      socket.ws.once('open', () => resolve(socket));
      socket.ws.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
      void socket.closed.then((closed) => reject(new Error(`closed before opening: ${closed.code}`)));
    });
  }

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer, is_binary: boolean) => {
      assert.ok(is_binary, 'the server only sends binary frames');
      this.inbox.push(data);
      this.wake?.();
    });
    // Protocol errors surface as close codes, which the tests assert.
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => {
      this.has_closed = true;
      this.wake?.();
      resolve({ code, reason: reason.toString() });
    }));
  }

  send(frame: Uint8Array | string): void {
    this.ws.send(frame, { binary: typeof frame !== 'string' });
  }

  pauseReading(): void {
    (this.ws as unknown as { _socket: Socket })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: Socket })._socket.resume();
  }

  /** The next frame, decoded; fails the test if none arrives in time. */
  async reply(timeout_ms = REPLY_TIMEOUT_MS): Promise<ResponseBatch | ErrorResponse> {
    const deadline_ms = Date.now() + timeout_ms;
    while (this.inbox.length === 0) {
      if (this.has_closed) throw new Error(`connection closed (${(await this.closed).code}) while a reply was expected`);
      const remaining_ms = deadline_ms - Date.now();
      if (remaining_ms <= 0) throw new Error(`no reply within ${timeout_ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining_ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    return codec.decodeResponse(this.inbox.shift()!);
  }

  async error(): Promise<ErrorResponse> {
    const reply = await this.reply();
    assert.ok(isErrorResponse(reply), `expected an error response, got ${JSON.stringify(reply)}`);
    return reply;
  }

  async response(): Promise<ResponseBatch> {
    const reply = await this.reply();
    assert.ok(!isErrorResponse(reply), `expected a response, got ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Every error reply received so far (for a connection that has been closed). */
  drainErrors(): ErrorResponse[] {
    const replies = this.inbox.splice(0).map((frame) => codec.decodeResponse(frame));
    return replies.map((reply) => {
      assert.ok(isErrorResponse(reply));
      return reply;
    });
  }

  async close(): Promise<void> {
    if (!this.has_closed) this.ws.close(1000);
    await this.closed;
  }
}

/** Polls `probe` every 50 ms until it returns non-null; fails after `timeout_ms`. */
export async function waitFor<T>(probe: () => Promise<T | null>, timeout_ms: number): Promise<T> {
  const deadline_ms = Date.now() + timeout_ms;
  for (;;) {
    const result = await probe();
    if (result !== null) return result;
    if (Date.now() > deadline_ms) throw new Error(`condition not reached within ${timeout_ms} ms`);
    await delay(50);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * HTTP helpers for the HTTP API tests: curl (spawned, as a user would run it; the tests skip
 * when it is missing), raw sockets for byte-exact and hostile requests, and small readers of
 * the answers.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Every curl run is bounded; a hung one is killed by its PID. */
const CURL_TIMEOUT_S = 30;

export const NO_CURL = spawnSync('curl', ['--version']).status === 0 ? false : 'curl is not installed (Debian: apt-get install curl)';

export interface CurlResult {
  status: number;
  /** Lower-case header names of the final response (after any 100 Continue). */
  headers: Map<string, string>;
  body: Buffer;
  /** curl's own messages (-v output when asked for). */
  stderr: string;
}

/** Where curl writes response headers (-D): a file, since curl 7.88 crashes writing them to /dev/stderr beside -o -. */
const headers_dir = mkdtempSync(join(tmpdir(), 'pikv-curl-'));
let headers_files = 0;
process.on('exit', () => rmSync(headers_dir, { recursive: true, force: true }));

/**
 * Runs curl with `args` and returns the final response: the headers from `-D` (a file), the
 * body from stdout, so binary bodies survive.
 */
export function curl(args: string[], input?: Buffer): Promise<CurlResult> {
  const headers_file = join(headers_dir, `${headers_files++}`);
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '--max-time', String(CURL_TIMEOUT_S), '-D', headers_file, '-o', '-', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    const timer = setTimeout(() => {
      process.kill(child.pid!, 'SIGKILL');
      reject(new Error(`curl ${args.join(' ')} did not finish in time`));
    }, (CURL_TIMEOUT_S + 5) * 1000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', () => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('latin1');
      let head = '';
      try {
        head = readFileSync(headers_file, 'latin1');
        rmSync(headers_file);
      } catch {
        // No file: curl got no response; reported below.
      }
      const blocks = [...head.matchAll(/HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/g)].filter((block) => block[1] !== '100');
      const last = blocks[blocks.length - 1];
      if (last === undefined) {
        reject(new Error(`curl ${args.join(' ')}: no response:\n${stderr}`));
        return;
      }
      const headers = new Map<string, string>();
      for (const line of last[2]!.split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({ status: Number(last[1]), headers, body: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** The http:// base of a node whose `pikv serve` printed ws://host:port. */
export function httpBase(ws_url: string): string {
  return ws_url.replace(/^ws:/, 'http:');
}

/** A JSON error body: {"error": code, "message": ...}. */
export function errorOf(body: Buffer | string): { error: string; message: string } {
  const parsed = JSON.parse(body.toString()) as { error?: unknown; message?: unknown };
  assert.equal(typeof parsed.error, 'string', `not an error body: ${body.toString()}`);
  assert.equal(typeof parsed.message, 'string');
  return parsed as { error: string; message: string };
}

/** A raw TCP socket to a node's port that keeps everything it receives. */
export class RawHttp {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  private readonly chunks: Buffer[] = [];
  private is_closed = false;

  static open(ws_url: string): Promise<RawHttp> {
    const url = new URL(ws_url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname);
      socket.once('connect', () => resolve(new RawHttp(socket)));
      socket.once('error', reject);
    });
  }

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.is_closed = true;
      resolve();
    }));
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get is_open(): boolean {
    return !this.is_closed;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits until the socket closed (true) or `timeout_ms` passed (false). */
  async waitClosed(timeout_ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([this.closed.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeout_ms)))]);
    clearTimeout(timer);
    return closed;
  }

  /** Waits until `count` whole responses have arrived (or fails after timeout_ms); returns them parsed. */
  async responses(count: number, timeout_ms = 10_000): Promise<RawResponse[]> {
    const deadline_ms = Date.now() + timeout_ms;
    for (;;) {
      const parsed = parseResponses(this.received);
      if (parsed.length >= count) return parsed;
      if (this.is_closed) throw new Error(`closed after ${parsed.length} of ${count} responses: ${this.received.toString('latin1', 0, 300)}`);
      if (Date.now() > deadline_ms) throw new Error(`${parsed.length} of ${count} responses within ${timeout_ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Whole HTTP/1.1 responses with a Content-Length (or none: 204) in `bytes`, in order. */
export function parseResponses(bytes: Buffer): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const head_end = bytes.indexOf('\r\n\r\n', at);
    if (head_end < 0) return responses;
    const lines = bytes.toString('latin1', at, head_end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get('content-length') ?? 0);
    const body_start = head_end + 4;
    if (bytes.length < body_start + length) return responses;
    responses.push({ status, headers, body: bytes.subarray(body_start, body_start + length) });
    at = body_start + length;
  }
}

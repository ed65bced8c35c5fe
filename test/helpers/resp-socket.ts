/**
 * A raw RESP2 socket for tests that speak the Redis protocol byte by byte: send any bytes,
 * read replies one at a time (a small reply parser of its own, independent of the server's),
 * and see when the server closes. Also runners for redis-cli and redis-py, which tests skip
 * when they are not installed (.ci/run installs redis-tools and python3-redis).
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';

const REPLY_TIMEOUT_MS = 10_000;
const TOOL_TIMEOUT_MS = 60_000;

export class RespError {
  constructor(readonly message: string) {}
}
export type RespValue = string | number | Buffer | null | RespError | RespValue[];

/** One reply parsed from `data` at `offset`: the value and where it ends, or null if incomplete. */
function parseReply(data: Buffer, offset: number): { value: RespValue; end: number } | null {
  const line_end = data.indexOf('\r\n', offset);
  if (line_end < 0) return null;
  const type = String.fromCharCode(data[offset]!);
  const line = data.toString('latin1', offset + 1, line_end);
  const next = line_end + 2;
  switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: new RespError(line), end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (data.length < next + length + 2) return null;
      return { value: data.subarray(next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(data, at);
        if (item === null) return null;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default: throw new Error(`not a RESP reply: ${JSON.stringify(data.toString('latin1', offset, offset + 40))}`);
  }
}

/** Encodes a command as a RESP multibulk. */
export function encodeCommand(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export class RespSocket {
  readonly socket: Socket;
  /** Resolves when the server (or we) closed the socket. */
  readonly closed: Promise<void>;
  private received = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private has_closed = false;

  static open(port: number): Promise<RespSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RespSocket(socket)));
      socket.once('error', reject);
    });
  }

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.has_closed = true;
      this.wake?.();
      resolve();
    }));
  }

  get is_closed(): boolean {
    return this.has_closed;
  }

  /** Bytes received and not yet read as replies. */
  get unread(): Buffer {
    return this.received;
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  command(...args: (string | Buffer)[]): void {
    this.send(encodeCommand(...args));
  }

  /** Sends one command and reads its reply. */
  async call(...args: (string | Buffer)[]): Promise<RespValue> {
    this.command(...args);
    return this.reply();
  }

  /** The next reply; rejects if the socket closes first or nothing comes in time. */
  async reply(timeout_ms = REPLY_TIMEOUT_MS): Promise<RespValue> {
    const deadline_ms = Date.now() + timeout_ms;
    for (;;) {
      const parsed = this.received.length > 0 ? parseReply(this.received, 0) : null;
      if (parsed !== null) {
        this.received = this.received.subarray(parsed.end);
        return parsed.value;
      }
      if (this.has_closed) throw new Error(`closed before a whole reply; unread: ${JSON.stringify(this.received.toString('latin1'))}`);
      const left_ms = deadline_ms - Date.now();
      if (left_ms <= 0) throw new Error(`no reply within ${timeout_ms} ms; unread: ${JSON.stringify(this.received.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left_ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Waits for the server to close; resolves with everything it sent that was not read. */
  async waitClosed(timeout_ms = REPLY_TIMEOUT_MS): Promise<string> {
    const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still open after ${timeout_ms} ms`)), timeout_ms).unref());
    await Promise.race([this.closed, timer]);
    return this.received.toString('latin1');
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion with `input` on stdin, bounded in time. */
export function runTool(command: string, args: string[], input: string | Buffer = '', env: Record<string, string> = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${TOOL_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, TOOL_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** redis-cli's path, or null (with why) when it is not installed. */
export function findRedisCli(): string | null {
  const result = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? 'redis-cli' : null;
}

/** A python3 that can import redis (Debian's python3-redis lives under /usr/bin/python3), or null. */
export function findRedisPython(): string | null {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const result = spawnSync(python, ['-c', 'import redis'], { encoding: 'utf8' });
    if (result.status === 0) return python;
  }
  return null;
}

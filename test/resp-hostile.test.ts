/**
 * Hostile input on the RESP port never crashes or wedges a node, nor hurts other clients.
 *
 * One `pikv serve` process takes truncated commands, absurd and negative lengths, nested
 * arrays, binary garbage, mutated commands split at random points, HTTP requests, a command
 * larger than frame_bytes_max, a client that never reads and one that holds half a command,
 * each from its own raw socket. Throughout, an ioredis client keeps writing and reading on
 * another connection; after each case a fresh connection must still work, and the last test
 * checks that every value it wrote is intact, that no hostile connection was left behind and
 * that the process stayed small.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { encodeCommand, RespError, RespSocket, type RespValue } from './helpers/resp-socket.js';

const VALUE_BYTES_MAX = 512 * 1024;
const FRAME_TIMEOUT_MS = 1000;
const SLOW_CLIENT_TIMEOUT_MS = 1000;
const RSS_BYTES_MAX = 1024 ** 3;

/** Writes and reads on its own connection while the hostile cases run; remembers what it wrote. */
class NormalTraffic {
  readonly written = new Map<string, string>();
  errors: string[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(private readonly redis: Redis) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    for (let i = 0; this.running; i++) {
      const key = `normal:${i % 500}`;
      const value = `value-${i}`;
      try {
        assert.equal(await this.redis.set(key, value), 'OK');
        this.written.set(key, value);
        assert.equal(await this.redis.get(key), value);
      } catch (error) {
        this.errors.push(`${key}: ${(error as Error).message}`);
      }
      if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** A tiny seeded PRNG, so a failing run can be replayed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks that `bytes` is a sequence of well-formed RESP replies (the server never sends anything else). */
function assertRespReplies(bytes: Buffer): void {
  let at = 0;
  const skipOne = (): void => {
    const line_end = bytes.indexOf('\r\n', at);
    assert.ok(line_end >= 0, `unterminated reply line at ${at}: ${JSON.stringify(bytes.toString('latin1', at, at + 80))}`);
    const type = String.fromCharCode(bytes[at]!);
    const count = Number(bytes.toString('latin1', at + 1, line_end));
    at = line_end + 2;
    if (type === '$' && count >= 0) {
      assert.equal(bytes.toString('latin1', at + count, at + count + 2), '\r\n');
      at += count + 2;
    } else if (type === '*') {
      for (let i = 0; i < count; i++) skipOne();
    } else {
      assert.ok('+-:$'.includes(type), `not a RESP reply type: ${JSON.stringify(type)}`);
    }
  };
  while (at < bytes.length) skipOne();
}

/** Sends `bytes`, half-closes, and returns everything the server sent before it closed. */
async function sendAndCollect(port: number, chunks: Buffer[], timeout_ms = 10_000): Promise<Buffer> {
  const socket = await RespSocket.open(port);
  for (const chunk of chunks) socket.send(chunk);
  socket.socket.end();
  await socket.waitClosed(timeout_ms);
  return socket.unread;
}

function errorOf(value: RespValue): string {
  assert.ok(value instanceof RespError, `expected an error reply, got ${JSON.stringify(value)}`);
  return value.message;
}

describe('Hostile RESP input never crashes or wedges a node', { timeout: 180_000 }, () => {
  let server: ServerProcess;
  let port: number;
  let redis: Redis;
  let traffic: NormalTraffic;

  /** A fresh, well-behaved connection still works. */
  async function stillServes(): Promise<void> {
    const socket = await RespSocket.open(port);
    try {
      assert.equal(await socket.call('SET', 'probe', 'alive'), 'OK');
      assert.equal(String(await socket.call('GET', 'probe')), 'alive');
    } finally {
      socket.close();
    }
  }

  before(async () => {
    server = await startServer([
      '--workers', '2', '--resp-port', '0', '--value-bytes-max', '512kb', '--frame-bytes-max', '1mb', '--response-bytes-max', '1mb',
      '--connection-send-bytes-max', '1mb', '--frame-timeout-ms', String(FRAME_TIMEOUT_MS), '--slow-client-timeout-ms', String(SLOW_CLIENT_TIMEOUT_MS),
    ]);
    port = server.resp_port!;
    redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    traffic = new NormalTraffic(redis);
  });
  after(async () => {
    await traffic?.stop();
    redis?.disconnect();
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('closes with a protocol error on bulk lengths that are negative, absurd or over value_bytes_max', async () => {
    const cases: [string, RegExp][] = [
      ['*1\r\n$-1\r\n', /^ERR Protocol error: invalid bulk length$/],
      ['*2\r\n$3\r\nGET\r\n$-7\r\n', /^ERR Protocol error: invalid bulk length$/],
      ['*1\r\n$99999999999999999999\r\n', /^ERR Protocol error: invalid bulk length$/],
      ['*1\r\n$12abc\r\n', /^ERR Protocol error: invalid bulk length$/],
      [`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${VALUE_BYTES_MAX + 1}\r\n`, /^ERR Protocol error: invalid bulk length \d+ \(VALUE_TOO_LARGE: .*value_bytes_max = 524288/],
      ['*99999999\r\n', /^ERR Protocol error: invalid multibulk length$/],
      ['*1x\r\n', /^ERR Protocol error: invalid multibulk length$/],
      ['*1\r\n*1\r\n$4\r\nPING\r\n', /^ERR Protocol error: expected '\$', got '\*'$/],
      ['*2\r\n$3\r\nGET\r\n:12\r\n', /^ERR Protocol error: expected '\$', got ':'$/],
      ['*1\r\n$4\r\nPINGxx\r\n', /bulk string of 4 bytes is not followed by CRLF/],
      [`*1\r\n$${'9'.repeat(70_000)}`, /^ERR Protocol error: too big bulk count string$/],
      [`SET ${'a'.repeat(70_000)}`, /^ERR Protocol error: too big inline request$/],
      ['SET "unbalanced value\r\n', /^ERR Protocol error: unbalanced quotes in request$/],
    ];
    for (const [input, expected] of cases) {
      const socket = await RespSocket.open(port);
      socket.send(input);
      assert.match(errorOf(await socket.reply()), expected, JSON.stringify(input.slice(0, 60)));
      await socket.waitClosed();
      socket.close();
    }
    await stillServes();
  });

  it('ignores a multibulk count of zero or less, as Redis does', async () => {
    const socket = await RespSocket.open(port);
    try {
      socket.send('*0\r\n*-1\r\n*-5\r\nPING\r\n');
      assert.equal(await socket.reply(), 'PONG');
    } finally {
      socket.close();
    }
  });

  it('closes a connection whose command is larger than frame_bytes_max', async () => {
    const value = Buffer.alloc(VALUE_BYTES_MAX - 100, 1);
    const socket = await RespSocket.open(port);
    socket.send(encodeCommand('MSET', 'big:1', value, 'big:2', value, 'big:3', value));
    assert.match(errorOf(await socket.reply()), /a command may hold at most frame_bytes_max = 1048576 bytes/);
    await socket.waitClosed();
    socket.close();
    assert.equal(await redis.exists('big:1', 'big:2', 'big:3'), 0, 'nothing of it was applied');
    await stillServes();
  });

  it('answers what came before a protocol error, then closes', async () => {
    const replies = await sendAndCollect(port, [Buffer.from('*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$-3\r\n*1\r\n$4\r\nPING\r\n')]);
    assert.equal(replies.toString(), '+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid bulk length\r\n');
  });

  it('drops a connection that speaks HTTP, answering nothing', async () => {
    assert.equal((await sendAndCollect(port, [Buffer.from('POST /v1/kv/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nSET')])).length, 0);
    // In one read, the Host: line drops the connection before the GET line's error goes out.
    assert.equal((await sendAndCollect(port, [Buffer.from('GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n')])).length, 0);
    // Split across reads, the GET line is answered as a Redis command, and the Host: line closes.
    const socket = await RespSocket.open(port);
    socket.send('GET / HTTP/1.1\r\n');
    assert.equal(errorOf(await socket.reply()), 'ERR wrong number of arguments for \'get\' command');
    socket.send('Host: x\r\n');
    assert.equal(await socket.waitClosed(), '');
    await stillServes();
  });

  it('keeps serving after truncated commands and sockets that vanish mid-command', async () => {
    const full = encodeCommand('SET', 'truncated', 'never applied');
    for (let cut = 1; cut < full.length; cut += 3) {
      const socket = await RespSocket.open(port);
      socket.send(full.subarray(0, cut));
      socket.close();
    }
    // Half a command then a half-close: nothing to answer, the server closes its side too.
    const replies = await sendAndCollect(port, [full.subarray(0, full.length - 2)]);
    assert.equal(replies.length, 0);
    assert.equal(await redis.exists('truncated'), 0);
    await stillServes();
  });

  it('closes a client that holds half a command for frame_timeout_ms (slowloris)', async () => {
    const socket = await RespSocket.open(port);
    socket.send('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc');
    const started_ms = Date.now();
    await socket.waitClosed(FRAME_TIMEOUT_MS * 5);
    assert.ok(Date.now() - started_ms >= FRAME_TIMEOUT_MS - 100, 'not before the timeout');
    assert.match(server.output(), /closing a RESP connection from 127\.0\.0\.1 \(FRAME_TIMEOUT\)/);
    await stillServes();
  });

  it('survives binary garbage on many connections', async () => {
    const random = mulberry32(0x5eed);
    const connections = [];
    for (let c = 0; c < 60; c++) {
      const chunk = Buffer.alloc(1 + Math.floor(random() * 4000));
      for (let i = 0; i < chunk.length; i++) chunk[i] = Math.floor(random() * 256);
      // Some start like a multibulk, some carry line breaks, so both parsers get exercised.
      if (c % 3 === 0) chunk[0] = 0x2a;
      if (c % 2 === 0) for (let i = 0; i < chunk.length; i += 1 + Math.floor(random() * 40)) chunk[i] = 0x0a;
      connections.push(sendAndCollect(port, [chunk]).then(assertRespReplies));
    }
    await Promise.all(connections);
    await stillServes();
  });

  it('survives mutated commands split at random points, while a normal client works', async () => {
    const random = mulberry32(0xbad5eed);
    const valid = [
      encodeCommand('SET', 'fuzz:a', 'value'), encodeCommand('GET', 'fuzz:a'), encodeCommand('MSET', 'fuzz:b', '1', 'fuzz:c', '2'),
      encodeCommand('MGET', 'fuzz:a', 'fuzz:b'), encodeCommand('DEL', 'fuzz:a'), encodeCommand('PING'), encodeCommand('INFO'),
      encodeCommand('COMMAND', 'DOCS'), encodeCommand('CLIENT', 'SETNAME', 'x'), encodeCommand('HELLO', '2'), Buffer.from('PING\r\n'),
    ];
    const runs = [];
    for (let c = 0; c < 80; c++) {
      const parts: Buffer[] = [];
      for (let n = 0; n < 20; n++) parts.push(valid[Math.floor(random() * valid.length)]!);
      const stream = Buffer.concat(parts);
      const mutations = 1 + Math.floor(random() * 4);
      for (let m = 0; m < mutations; m++) stream[Math.floor(random() * stream.length)] = Math.floor(random() * 256);
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length;) {
        const size = 1 + Math.floor(random() * 200);
        chunks.push(stream.subarray(at, at + size));
        at += size;
      }
      runs.push(sendAndCollect(port, chunks).then(assertRespReplies));
      if (runs.length >= 20) await Promise.all(runs.splice(0));
    }
    await Promise.all(runs);
    await stillServes();
  });

  it('answers small commands with large replies (COMMAND DOCS) a bounded part at a time, in order', async () => {
    // 600 x 14 bytes in, ~3.6 MiB out: more than connection_send_bytes_max (1 MiB) of replies
    // from one read, which the node must produce in parts, not all at once.
    const socket = await RespSocket.open(port);
    try {
      const commands: Buffer[] = [];
      for (let i = 0; i < 600; i++) commands.push(Buffer.from(i % 100 === 99 ? `ECHO marker-${i}\r\n` : 'COMMAND DOCS\r\n'));
      socket.send(Buffer.concat(commands));
      for (let i = 0; i < 600; i++) {
        const reply = await socket.reply();
        if (i % 100 === 99) assert.equal(String(reply), `marker-${i}`);
        else assert.ok(Array.isArray(reply) && reply.length > 20, `reply ${i}`);
      }
    } finally {
      socket.close();
    }
    await stillServes();
  });

  it('stops reading a client that never reads its replies, closes it, and serves the others meanwhile', async () => {
    await redis.set('slow:big', Buffer.alloc(VALUE_BYTES_MAX - 1024, 3));
    const socket = await RespSocket.open(port);
    socket.socket.pause();
    // Two GETs of ~512 KiB per write, spread out so the node reads them as separate batches:
    // up to 300 MiB of replies if it answered them all without bound.
    const command = Buffer.concat([encodeCommand('GET', 'slow:big'), encodeCommand('GET', 'slow:big')]);
    const sender = setInterval(() => socket.send(command), 10);
    try {
      // Others are served while it sits there.
      for (let i = 0; i < 20; i++) assert.equal(typeof await redis.get(`normal:${i}`), 'string');
      await stillServes();
      await socket.waitClosed(SLOW_CLIENT_TIMEOUT_MS * 15);
    } finally {
      clearInterval(sender);
      socket.close();
    }
    assert.match(server.output(), /\(SLOW_CLIENT\)/);
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) * 1024;
    assert.ok(rss < RSS_BYTES_MAX, `server RSS ${rss} bytes`);
  });

  it('keeps every value the normal client wrote, and no hostile connection is left', async () => {
    await traffic.stop();
    assert.deepEqual(traffic.errors, []);
    assert.ok(traffic.written.size > 0);
    const keys = [...traffic.written.keys()];
    const values = await redis.mget(...keys);
    keys.forEach((key, i) => assert.equal(values[i], traffic.written.get(key), key));
    const info = await redis.info('clients');
    const clients = Number(/connected_clients:(\d+)/.exec(info)![1]);
    assert.equal(clients, 1, `only the normal client is connected:\n${info}`);
    assert.equal(server.child.exitCode, null, 'the node is alive');
  });
});

describe('RESP connection limits', { timeout: 60_000 }, () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--workers', '1', '--resp-port', '0', '--connections-max', '3', '--idle-timeout-ms', '1500']);
  });
  after(async () => {
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('refuses connections past connections_max with Redis\'s error, and admits again once one closes', async () => {
    const open = await Promise.all([0, 1, 2].map(() => RespSocket.open(server.resp_port!)));
    for (const socket of open) assert.equal(await socket.call('PING'), 'PONG');
    const refused = await RespSocket.open(server.resp_port!);
    assert.equal(await refused.waitClosed(), '-ERR max number of clients reached\r\n');
    open[0]!.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const admitted = await RespSocket.open(server.resp_port!);
    assert.equal(await admitted.call('PING'), 'PONG');
    for (const socket of [...open, admitted]) socket.close();
    // The next test needs a free slot: wait until the node has seen these sockets go (a close
    // here is only a FIN on its way; a loaded box may take a while to process it).
    for (let attempt = 0; ; attempt++) {
      const probe = await RespSocket.open(server.resp_port!);
      const reply = await probe.call('PING').catch((error: Error) => error);
      probe.close();
      if (reply === 'PONG') break;
      if (attempt >= 100) assert.fail(`connections were not freed: ${String(reply)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  });

  it('closes a client idle for idle_timeout_ms, as Redis\'s timeout', async () => {
    const socket = await RespSocket.open(server.resp_port!);
    // Taken before the PING is sent: the node's idle clock starts when it reads it, never earlier.
    const started_ms = Date.now();
    assert.equal(await socket.call('PING'), 'PONG');
    await socket.waitClosed(10_000);
    assert.ok(Date.now() - started_ms >= 1400, 'not before the timeout');
    assert.match(server.output(), /\(IDLE\)/);
  });
});

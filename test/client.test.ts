import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { connect, ErrorCode, WireCodec } from '../src/index.js';

/** A WebSocket server on a free loopback port that does whatever `onMessage` says. */
async function fakeServer(onMessage: (socket: WebSocket, frame: Buffer) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  wss.on('connection', (socket) => socket.on('message', (frame: Buffer) => onMessage(socket, frame)));
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    }),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The masking key of the first frame a client sends: a bare TCP server answers the WebSocket
 * upgrade itself and reads the frame header's 4 key bytes (RFC 6455 5.2).
 */
async function firstMaskKey(random_mask: boolean | undefined): Promise<Buffer> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    let buffered = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!upgraded) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const key = /sec-websocket-key: *(\S+)/i.exec(buffered.subarray(0, end).toString('latin1'))![1]!;
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        upgraded = true;
        buffered = buffered.subarray(end + 4);
      }
      if (buffered.length >= 2) socket.emit('frame-header', buffered);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const client = await connect(`ws://127.0.0.1:${port}`, { request_timeout_ms: 2_000, ...(random_mask === undefined ? {} : { random_mask }) });
  try {
    const header = new Promise<Buffer>((resolve, reject) => {
      sockets[0]!.on('frame-header', (bytes: Buffer) => {
        if ((bytes[1]! & 0x80) === 0) reject(new Error('a client frame without the mask bit'));
        const length7 = bytes[1]! & 0x7f;
        const key_at = length7 < 126 ? 2 : length7 === 126 ? 4 : 10;
        if (bytes.length >= key_at + 4) resolve(Buffer.from(bytes.subarray(key_at, key_at + 4)));
      });
    });
    client.get('k').catch(() => undefined);
    return await header;
  } finally {
    await client.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('client library', { timeout: 30_000 }, () => {
  it('masks its frames with a zero key by default, and with a random key when random_mask is set', async () => {
    assert.deepEqual(await firstMaskKey(undefined), Buffer.alloc(4), 'default: zero key (no copy and XOR per frame)');
    const keys = [await firstMaskKey(true), await firstMaskKey(true)];
    assert.ok(keys.some((key) => !key.equals(Buffer.alloc(4))), 'random_mask: a random key');
  });

  it('sends calls made in the same tick as one frame', async () => {
    const codec = new WireCodec();
    const frames: number[] = [];
    const fake = await fakeServer((socket, frame) => {
      const request = codec.decodeRequest(frame, 1_000_000);
      frames.push(request.op.length);
      const count = request.op.length;
      socket.send(codec.encodeResponse({ id: request.id, status: new Uint8Array(count), value_lengths: new Uint32Array(count), values: Buffer.alloc(0) }));
    });
    const kv = await connect(fake.url);
    await Promise.all([kv.put('a', '1'), kv.put('b', '2'), kv.delete('c'), kv.get('d')]);
    assert.deepEqual(frames, [4]);
    await kv.close();
    await fake.close();
  });

  it('splits a batch larger than batch_ops_max into several frames and keeps result order', async () => {
    const codec = new WireCodec();
    const frames: number[] = [];
    const fake = await fakeServer((socket, frame) => {
      const request = codec.decodeRequest(frame, 1_000_000);
      frames.push(request.op.length);
      // Echo each key back as the GET value, so order can be checked.
      socket.send(codec.encodeResponse({ id: request.id, status: new Uint8Array(request.op.length), value_lengths: new Uint32Array(request.key_lengths), values: request.keys }));
    });
    const kv = await connect(fake.url, { batch_ops_max: 100 });
    const results = await kv.batch(Array.from({ length: 250 }, (_, i) => ({ op: 'get' as const, key: `key${i}` })));
    assert.deepEqual(frames, [100, 100, 50]);
    results.forEach((result, i) => assert.equal(Buffer.from(result.value!).toString(), `key${i}`));
    await kv.close();
    await fake.close();
  });

  it('rejects with TIMEOUT when no response arrives in time', async () => {
    const fake = await fakeServer(() => {});
    const kv = await connect(fake.url, { request_timeout_ms: 200 });
    await assert.rejects(kv.get('k'), { code: ErrorCode.TIMEOUT });
    await kv.close();
    await fake.close();
  });

  it('rejects pending and later calls with CLIENT_CLOSED after close()', async () => {
    const fake = await fakeServer(() => {});
    const kv = await connect(fake.url);
    const pending = kv.put('k', 'v');
    await new Promise((resolve) => setImmediate(resolve));
    const closed = kv.close();
    await assert.rejects(pending, { code: ErrorCode.CLIENT_CLOSED });
    await closed;
    await assert.rejects(kv.get('k'), { code: ErrorCode.CLIENT_CLOSED });
    await assert.rejects(kv.batch([{ op: 'get', key: 'k' }]), { code: ErrorCode.CLIENT_CLOSED });
    await fake.close();
  });

  it('fails pending requests with CONNECTION_LOST when the server goes away, and does not retry them', async () => {
    let received = 0;
    const fake = await fakeServer((socket) => {
      received++;
      socket.terminate();
    });
    const kv = await connect(fake.url);
    await assert.rejects(kv.put('k', 'v'), { code: ErrorCode.CONNECTION_LOST });
    await assert.rejects(kv.put('k2', 'v'), { code: ErrorCode.CONNECTION_LOST });
    assert.equal(received, 1, 'the failed write was not sent again');
    await kv.close();
    await fake.close();
  });

  it('rejects connect() with CONNECT_FAILED when nothing listens', async () => {
    const port = await freePort();
    await assert.rejects(connect(`ws://127.0.0.1:${port}`, { connect_timeout_ms: 2000 }), { code: ErrorCode.CONNECT_FAILED });
  });

  it('rejects bad arguments with BAD_ARGUMENT without sending anything', async () => {
    const fake = await fakeServer(() => assert.fail('nothing should be sent'));
    const kv = await connect(fake.url);
    await assert.rejects(kv.get(42 as unknown as string), { code: ErrorCode.BAD_ARGUMENT });
    await assert.rejects(kv.batch([{ op: 'put', key: 'k', value: 1 as unknown as string }]), { code: ErrorCode.BAD_ARGUMENT });
    await assert.rejects(kv.batch([{ op: 'nope' } as never]), { code: ErrorCode.BAD_ARGUMENT });
    await kv.close();
    await fake.close();
  });

  it('rejects calls beyond pending_ops_max with CLIENT_OVERLOADED', async () => {
    const fake = await fakeServer(() => {});
    const kv = await connect(fake.url, { pending_ops_max: 10, request_timeout_ms: 60_000 });
    const first = kv.batch(Array.from({ length: 10 }, () => ({ op: 'get' as const, key: 'k' })));
    const first_outcome = assert.rejects(first, { code: ErrorCode.CLIENT_CLOSED });
    await assert.rejects(kv.get('k'), { code: ErrorCode.CLIENT_OVERLOADED });
    await kv.close();
    await first_outcome;
    await fake.close();
  });
});

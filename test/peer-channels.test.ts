/**
 * A peer's two channels (docs/CLUSTER.md, "Peer links"; src/protocol/auth.ts): the channel is
 * bound into the challenge-response, so neither a replayed nor a relayed data-channel
 * handshake opens a control channel; a control channel takes only control ops in small frames;
 * and the latest-connection rule (Connection.fenced) holds per peer id and channel.
 *
 * A real `pikv serve` process on a 127.0.0.1 ephemeral port, stopped by PID.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, ErrorCode, Op, Status, WireCodec, type PikvError } from '../src/index.js';
import { clientProof, PeerHandshake, PEER_CHANNEL_HEADER, PEER_NONCE_HEADER, PEER_PROTOCOL_VERSION } from '../src/protocol/auth.js';
import { single } from '../src/cluster/peer-link.js';
import { CONTROL_FRAME_BYTES_MAX } from '../src/node/peer-limits.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

const SECRET = 'channel-secret';
const codec = new WireCodec();

function heartbeatFrame(id: number): Buffer {
  return codec.encodeRequest({ id, ...single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'b', epoch: 1 })) });
}

/** Opens a raw WebSocket with these upgrade headers; resolves with it and the 101 response once open. */
function rawPeer(url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; response: IncomingMessage }> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    let response: IncomingMessage | null = null;
    ws.once('upgrade', (res) => (response = res));
    ws.once('open', () => resolve({ ws, response: response! }));
    ws.once('unexpected-response', (_request, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

/** Resolves with the first thing that happens: an answer frame, or the close. */
function nextEvent(ws: WebSocket): Promise<{ answer: Buffer } | { close: { code: number; reason: string } }> {
  return new Promise((resolve) => {
    ws.once('message', (data: Buffer) => resolve({ answer: data }));
    ws.once('close', (code, reason) => resolve({ close: { code, reason: reason.toString() } }));
  });
}

describe('peer channels', { timeout: 60_000 }, () => {
  let node: ServerProcess;
  before(async () => {
    node = await startServer(['--workers', '1', '--node-id', 'a', '--peer-send-bytes-max', '1mb'], { PIKV_CLUSTER_SECRET: SECRET });
  });
  after(async () => {
    await node.stop();
  });

  it('a replayed data-channel handshake cannot open a control channel', async () => {
    // A genuine data connection, recorded by an eavesdropper: its upgrade headers and its proof.
    const handshake = new PeerHandshake({ secret: SECRET, node_id: 'b', server_id: 'a', channel: 'data' });
    const genuine = await rawPeer(node.url, handshake.headers);
    const proof = handshake.accept(genuine.response, node.url);
    genuine.ws.send(proof);
    genuine.ws.send(heartbeatFrame(1));
    const answered = await nextEvent(genuine.ws);
    assert.ok('answer' in answered, 'the genuine connection is served');
    genuine.ws.close();

    // The replay, with the channel header switched to control.
    const replay = await rawPeer(node.url, { ...handshake.headers, [PEER_CHANNEL_HEADER]: 'control' });
    const event = nextEvent(replay.ws);
    replay.ws.send(proof);
    replay.ws.send(heartbeatFrame(2));
    assert.deepEqual(await event, { close: { code: 4401, reason: 'PEER_AUTH_FAILED' } }, 'refused, and the heartbeat behind the proof was not answered');
  });

  it('a relay that rewrites the channel of a live handshake breaks both proofs', async () => {
    // The genuine client asks for a data channel; an on-path relay (without the secret)
    // rewrites the header to control and passes everything else through unchanged.
    const client = new PeerHandshake({ secret: SECRET, node_id: 'b', server_id: 'a', channel: 'data' });
    const relayed = await rawPeer(node.url, { ...client.headers, [PEER_CHANNEL_HEADER]: 'control' });
    // The client checks the server's proof against the channel it asked for, and refuses.
    assert.throws(() => client.accept(relayed.response, node.url), (error: PikvError) => error.code === ErrorCode.PEER_AUTH_FAILED && /for this data connection/.test(error.message));
    // Had the client gone on, its proof (over "data", with the server's nonce) is refused by the server.
    const server_nonce = String(relayed.response.headers[PEER_NONCE_HEADER]);
    const data_proof = clientProof(SECRET, PEER_PROTOCOL_VERSION, server_nonce, client.headers[PEER_NONCE_HEADER]!, 'b', 'a', 'data');
    const event = nextEvent(relayed.ws);
    relayed.ws.send(data_proof);
    relayed.ws.send(heartbeatFrame(3));
    assert.deepEqual(await event, { close: { code: 4401, reason: 'PEER_AUTH_FAILED' } });
    assert.match(node.output(), /refused peer "b" .*wrong proof of the cluster secret \(PEER_AUTH_FAILED\)/);
  });

  it('a control channel answers control ops, and refuses data ops and large frames', async () => {
    const control = await connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'a', channel: 'control' } });
    try {
      const heartbeat = await control.batchColumns(single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'b', epoch: 1 })));
      assert.equal(heartbeat.status[0], Status.OK);
      await assert.rejects(control.batch([{ op: 'put', key: 'k', value: 'v' }]),
        (error: PikvError) => error.code === ErrorCode.BAD_REQUEST && /control channel carries only control ops/.test(error.message));
      const big = Buffer.alloc(CONTROL_FRAME_BYTES_MAX + 1);
      await assert.rejects(control.batchColumns(single(Op.CLUSTER_HEARTBEAT, big)),
        (error: PikvError) => error.code === ErrorCode.BAD_REQUEST && /frames of at most/.test(error.message));
      // Still open and served after the refusals.
      assert.equal((await control.batchColumns(single(Op.RING, new Uint8Array(0)))).status[0], Status.OK);
      const plain = await connect(node.url);
      assert.equal(await plain.get('k'), undefined, 'the PUT on the control channel was not applied');
      await plain.close();
    } finally {
      await control.close();
    }
  });

  it('a heartbeat on the control channel is answered while the data channel is stalled behind bulk answers', async () => {
    // A peer that stops reading its data connection (as a busy board does) while the node owes
    // it large answers: the node stops reading that connection once peer_send_bytes_max is
    // queued, so anything behind the bulk frames on it waits. The control connection does not.
    const value = Buffer.alloc(1024 * 1024, 0x62);
    const loader = await connect(node.url);
    await loader.put('bulk', value);
    await loader.close();
    const data = new PeerHandshake({ secret: SECRET, node_id: 'stuffer', server_id: 'a', channel: 'data' });
    const stuffed = await rawPeer(node.url, data.headers);
    stuffed.ws.send(data.accept(stuffed.response, node.url));
    let answers = 0;
    stuffed.ws.on('message', () => answers++);
    const socket = (stuffed.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const BULK_FRAMES = 64;
    for (let id = 1; id <= BULK_FRAMES; id++) {
      stuffed.ws.send(codec.encodeRequest({ id, op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(4), value_lengths: new Uint32Array(1), keys: Buffer.from('bulk'), values: new Uint8Array(0) }));
    }
    // A heartbeat behind the bulk frames on the data connection...
    stuffed.ws.send(codec.encodeRequest({ id: 1000, ...single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'stuffer', epoch: 1 })) }));
    // ...and one on the control connection, several times over.
    const control = await connect(node.url, { peer: { secret: SECRET, node_id: 'stuffer', server_id: 'a', channel: 'control' }, request_timeout_ms: 5_000 });
    try {
      for (let i = 0; i < 5; i++) {
        const reply = await control.batchColumns(single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'stuffer', epoch: 1 })));
        assert.equal(reply.status[0], Status.OK);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // The data connection is really stalled: its heartbeat (the 65th frame) is still unanswered.
      const received = answers;
      assert.ok(received < BULK_FRAMES + 1, `the data connection answered all ${received} frames: it was not stalled, so this test shows nothing`);
      socket.resume();
      // Once the peer reads again, everything is answered, the heartbeat last.
      const deadline_ms = Date.now() + 20_000;
      while (answers < BULK_FRAMES + 1 && Date.now() < deadline_ms) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(answers, BULK_FRAMES + 1);
    } finally {
      await control.close();
      stuffed.ws.terminate();
    }
  });

  it('the latest-connection rule supersedes a stale connection per channel, not across channels', async () => {
    const peer = (channel: 'data' | 'control') => connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'a', channel } });
    const data1 = await peer('data');
    const control1 = await peer('control');
    assert.equal((await data1.batch([{ op: 'put', key: 'fence', value: 'd1' }]))[0]!.code, 'OK');
    // A newer control connection does not fence the data connection.
    const control2 = await peer('control');
    assert.equal((await data1.batch([{ op: 'put', key: 'fence', value: 'd1-again' }]))[0]!.code, 'OK', 'a new control connection left the data connection alone');
    // A newer data connection fences the older one; both control connections still answer control ops.
    const data2 = await peer('data');
    await assert.rejects(data1.batch([{ op: 'put', key: 'fence', value: 'stale' }]), (error: PikvError) => error.code === ErrorCode.STALE_RING);
    await assert.rejects(data1.batch([{ op: 'get', key: 'fence' }]), (error: PikvError) => error.code === ErrorCode.STALE_RING);
    assert.equal((await data2.batch([{ op: 'put', key: 'fence', value: 'd2' }]))[0]!.code, 'OK');
    for (const control of [control1, control2]) {
      assert.equal((await control.batchColumns(single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'b', epoch: 1 })))).status[0], Status.OK);
    }
    const plain = await connect(node.url);
    assert.equal(Buffer.from((await plain.get('fence'))!).toString(), 'd2');
    assert.match(node.output(), /refusing data from an old data connection of peer "b"/);
    await Promise.all([data1, data2, control1, control2, plain].map((c) => c.close()));
  });
});

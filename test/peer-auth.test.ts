/**
 * Peer authentication (src/protocol/auth.ts, docs/PROTOCOL.md "Authentication"): a proof
 * captured on one connection is refused on another, a process without the secret on a
 * member's address is refused by the connecting node before anything it sends is read, a
 * peer protocol version mismatch is refused and logged on both sides, peers get their own
 * limits, and secrets are refused on argv but read from env and files.
 *
 * Everything listens on 127.0.0.1 ephemeral ports and is stopped by the test that started it.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { connect, ErrorCode, Op, Status, WireCodec, type PikvError } from '../src/index.js';
import { PeerHandshake, LEGACY_AUTH_HEADER, PEER_CHANNEL_HEADER, PEER_ID_HEADER, PEER_NONCE_HEADER, PEER_PROOF_HEADER, PEER_PROTOCOL_VERSION, PEER_VERSION_HEADER } from '../src/protocol/auth.js';
import { parseClusterConfig } from '../src/cluster/cluster-config.js';
import { PeerLink, single } from '../src/cluster/peer-link.js';
import { defaultConfig, validateConfig, type ServerConfig } from '../src/node/config.js';
import { PikvServer } from '../src/node/server.js';
import { delay } from './helpers/raw-socket.js';
import { runCli, startServer } from './helpers/server-process.js';

const SECRET = 'peer-auth-test-secret';
const codec = new WireCodec();
const quiet_ms = 50;

function nodeConfig(extra: Partial<ServerConfig> = {}): ServerConfig {
  return validateConfig({ ...defaultConfig(), host: '127.0.0.1', port: 0, resp_port: null, workers: 1, memory_bytes_max: 8 * 1024 * 1024, ...extra });
}

/** An in-process one-node cluster "a" whose log lines are kept for the assertions. */
async function startNode(extra: Partial<ServerConfig> = {}): Promise<{ server: PikvServer; url: string; logs: string[] }> {
  const logs: string[] = [];
  const cluster = parseClusterConfig({ node_id: 'a' }, { PIKV_CLUSTER_SECRET: SECRET });
  const server = new PikvServer(nodeConfig(extra), (line) => logs.push(line), { config: cluster });
  const url = await server.start();
  return { server, url, logs };
}

/** A request frame with one cluster op whose payload is `value` (as the peer link sends it). */
function controlFrame(id: number, op: number, value: unknown): Buffer {
  return codec.encodeRequest({ id, ...single(op, codec.encodeValue(value)) });
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** Opens a raw WebSocket with the given upgrade headers (no proof is sent by itself). */
function rawPeer(url: string, headers: Record<string, string>, onUpgrade?: (response: IncomingMessage) => void): WebSocket {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  ws.on('error', () => {});
  if (onUpgrade !== undefined) ws.once('upgrade', onUpgrade);
  return ws;
}

async function epochOf(url: string): Promise<number> {
  const client = await connect(url);
  try {
    const reply = await client.batchColumns(single(Op.RING, new Uint8Array(0)));
    return (codec.decodeValue(reply.values) as { epoch: number }).epoch;
  } finally {
    await client.close();
  }
}

describe('peer handshake on a node', { timeout: 30_000 }, () => {
  let node: Awaited<ReturnType<typeof startNode>>;
  before(async () => {
    node = await startNode({ idle_timeout_ms: 300 });
  });
  after(async () => {
    await node.server.stop();
  });

  it('accepts a peer that proves the secret, and refuses the same proof replayed on a new connection', async () => {
    // A genuine peer connection, recorded the way an eavesdropper on the LAN would see it.
    const handshake = new PeerHandshake({ secret: SECRET, node_id: 'b', server_id: 'a' });
    let proof = '';
    const genuine = rawPeer(node.url, handshake.headers, (response) => (proof = handshake.accept(response, node.url)));
    await new Promise((resolve) => genuine.once('open', resolve));
    genuine.send(proof);
    const answered = new Promise<Buffer>((resolve) => genuine.once('message', (data: Buffer) => resolve(data)));
    genuine.send(controlFrame(1, Op.CLUSTER_HEARTBEAT, { from: 'b', epoch: 1 }));
    const reply = codec.decodeResponse(await answered);
    assert.ok('status' in reply && reply.status[0] === Status.OK, 'a proven peer may send peer-only ops');
    genuine.close();

    // The replay: the same upgrade headers (same client nonce), the same proof, then a forged view.
    const epoch_before = await epochOf(node.url);
    const replay = rawPeer(node.url, handshake.headers);
    const closed = closeOf(replay);
    await new Promise((resolve) => replay.once('open', resolve));
    replay.send(proof);
    replay.send(controlFrame(2, Op.CLUSTER_VIEW, { epoch: epoch_before + 10, nodes: [{ id: 'evil', url: 'ws://127.0.0.1:1', weight: 1 }] }));
    assert.deepEqual(await closed, { code: 4401, reason: 'PEER_AUTH_FAILED' });
    assert.equal(await epochOf(node.url), epoch_before, 'the forged view was not adopted');
    assert.ok(node.logs.some((line) => /refused peer "b" .*wrong proof of the cluster secret \(PEER_AUTH_FAILED\)/.test(line)), node.logs.join('\n'));
  });

  it('refuses the pre-version-1 header, even a freshly made one, with PEER_VERSION_MISMATCH', async () => {
    const ws = rawPeer(node.url, { [LEGACY_AUTH_HEADER]: `${Date.now()}.00.00` });
    const response = await new Promise<IncomingMessage>((resolve) => ws.once('unexpected-response', (_request, res) => resolve(res)));
    assert.equal(response.statusCode, 400);
    assert.equal(response.headers['x-pikv-error'], 'PEER_VERSION_MISMATCH');
    ws.terminate();
    assert.ok(node.logs.some((line) => /old peer handshake .*\(PEER_VERSION_MISMATCH\)/.test(line)));
  });

  it('refuses another peer protocol version in the upgrade (a version 1 node, before channels), with a clear error on both sides', async () => {
    const ws = rawPeer(node.url, { [PEER_VERSION_HEADER]: '1', [PEER_ID_HEADER]: 'b', [PEER_NONCE_HEADER]: '0'.repeat(32) });
    const response = await new Promise<IncomingMessage>((resolve) => ws.once('unexpected-response', (_request, res) => resolve(res)));
    assert.equal(response.statusCode, 400);
    assert.equal(response.headers['x-pikv-error'], 'PEER_VERSION_MISMATCH');
    assert.equal(response.headers[PEER_VERSION_HEADER], String(PEER_PROTOCOL_VERSION), 'the refusal says which version the node speaks');
    ws.terminate();
    assert.ok(node.logs.some((line) => new RegExp(`peer protocol "1", this node speaks ${PEER_PROTOCOL_VERSION} \\(PEER_VERSION_MISMATCH\\)`).test(line)), node.logs.join('\n'));
  });

  it('refuses a peer handshake without a channel, or with an unknown one', async () => {
    for (const channel of [undefined, 'bulk']) {
      const headers: Record<string, string> = { [PEER_VERSION_HEADER]: String(PEER_PROTOCOL_VERSION), [PEER_ID_HEADER]: 'b', [PEER_NONCE_HEADER]: '0'.repeat(32) };
      if (channel !== undefined) headers[PEER_CHANNEL_HEADER] = channel;
      const ws = rawPeer(node.url, headers);
      const response = await new Promise<IncomingMessage>((resolve) => ws.once('unexpected-response', (_request, res) => resolve(res)));
      assert.equal(response.statusCode, 401);
      assert.equal(response.headers['x-pikv-error'], 'PEER_AUTH_FAILED');
      ws.terminate();
    }
    assert.ok(node.logs.some((line) => /x-pikv-peer-channel must be data or control \(PEER_AUTH_FAILED\)/.test(line)), node.logs.join('\n'));
  });

  it('refuses, on the connecting side, a node that answers as another member', async () => {
    await assert.rejects(connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'c' } }),
      (error: PikvError) => error.code === ErrorCode.PEER_AUTH_FAILED && /answered as node "a", expected "c"/.test(error.message));
  });

  it('gives a peer its own limits and never cuts it for idleness; a client is cut', async () => {
    const peer = await connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'a' } });
    const client = await connect(node.url);
    await delay(1_000); // idle_timeout_ms is 300
    assert.equal(peer.failed, null, 'the idle peer is still connected');
    assert.notEqual(client.failed, null, 'the idle client was closed');
    const reply = await peer.batchColumns(single(Op.CLUSTER_HEARTBEAT, codec.encodeValue({ from: 'b', epoch: 1 })));
    assert.equal(reply.status[0], Status.OK);
    await peer.close();
    await client.close();
  });
});

describe('a peer link to something that cannot prove the secret', { timeout: 30_000 }, () => {
  /**
   * A plain WebSocket server on a member's address: it answers every upgrade (optionally with
   * forged proof headers), pushes a forged answer at once, and answers every request with a
   * view of epoch 99. Whatever it manages to make the link do is recorded.
   */
  async function fakeMember(forge: (headers: string[]) => void): Promise<{ url: string; frames_received: () => number; connections: () => number; close: () => Promise<void> }> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
    let frames = 0;
    let connections = 0;
    wss.on('headers', (headers) => forge(headers));
    const forged = codec.encodeValue({ epoch: 99, nodes: [{ id: 'evil', url, weight: 1 }] });
    const answer = (id: number): Buffer => codec.encodeResponse({ id, status: Uint8Array.of(Status.OK), value_lengths: Uint32Array.of(forged.length), values: forged });
    wss.on('connection', (ws) => {
      connections++;
      ws.on('error', () => {});
      for (let id = 0; id < 4; id++) ws.send(answer(id));
      ws.on('message', (data: Buffer) => {
        frames++;
        try {
          ws.send(answer(codec.decodeRequest(data, 100).id));
        } catch {
          // not a request (a proof would be text): nothing to answer
        }
      });
    });
    return {
      url,
      frames_received: () => frames,
      connections: () => connections,
      close: () => new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
    };
  }

  async function driveLink(url: string): Promise<{ acted: string[]; logs: string[]; up: boolean }> {
    const acted: string[] = [];
    const logs: string[] = [];
    const link = new PeerLink({ id: 'b', url, weight: 1 }, { cluster_secret: SECRET, node_id: 'a', heartbeat_interval_ms: quiet_ms, heartbeats_missed_max: 3, forward_timeout_ms: 500, tls_ca: '' }, {
      heartbeatPayload: () => codec.encodeValue({ from: 'a', epoch: 1 }),
      onHeartbeatReply: (_link, value) => acted.push(`reply ${JSON.stringify(codec.decodeValue(value))}`),
      onUp: () => acted.push('up'),
      log: (line) => logs.push(line),
    });
    const timer = setInterval(() => link.tick(), quiet_ms);
    try {
      await delay(1_500);
      const up = link.up;
      return { acted, logs, up };
    } finally {
      clearInterval(timer);
      link.close();
    }
  }

  it('refuses a server with no secret at all, and acts on nothing it sends', async () => {
    const fake = await fakeMember(() => {});
    try {
      const { acted, logs, up } = await driveLink(fake.url);
      assert.ok(fake.connections() >= 1, 'the link did try the address');
      assert.deepEqual(acted, [], 'no heartbeat answer or view from the fake was acted on');
      assert.equal(up, false);
      assert.equal(fake.frames_received(), 0, 'the link sent nothing: not even its proof');
      assert.equal(logs.filter((line) => /PEER_AUTH_FAILED/.test(line)).length, 1, `logged once, not per retry: ${logs.join('\n')}`);
      assert.match(logs[0]!, /without a peer proof/);
    } finally {
      await fake.close();
    }
  });

  it('refuses a server that forges the proof headers without the secret', async () => {
    const fake = await fakeMember((headers) => headers.push(
      `${PEER_VERSION_HEADER}: ${PEER_PROTOCOL_VERSION}`, `${PEER_ID_HEADER}: b`, `${PEER_NONCE_HEADER}: ${'ab'.repeat(16)}`, `${PEER_PROOF_HEADER}: ${'cd'.repeat(32)}`,
    ));
    try {
      const { acted, logs, up } = await driveLink(fake.url);
      assert.deepEqual(acted, []);
      assert.equal(up, false);
      assert.equal(fake.frames_received(), 0);
      assert.ok(logs.some((line) => /could not prove the cluster secret for this (data|control) connection \(not a member, its secret differs from ours, or the handshake was altered\) \(PEER_AUTH_FAILED\)/.test(line)), logs.join('\n'));
    } finally {
      await fake.close();
    }
  });

  it('refuses a server of another peer protocol version with PEER_VERSION_MISMATCH', async () => {
    const fake = await fakeMember((headers) => headers.push(`${PEER_VERSION_HEADER}: 1`, `${PEER_PROOF_HEADER}: ${'cd'.repeat(32)}`));
    try {
      const { acted, logs } = await driveLink(fake.url);
      assert.deepEqual(acted, []);
      assert.ok(logs.some((line) => new RegExp(`speaks peer protocol 1, this node ${PEER_PROTOCOL_VERSION} \\(PEER_VERSION_MISMATCH\\)`).test(line)), logs.join('\n'));
    } finally {
      await fake.close();
    }
  });
});

describe('secrets are never taken from argv', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pikv-secret-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses --cluster-secret, --client-token and --token with a message naming the alternatives, without echoing the value', async () => {
    for (const args of [['serve', '--node-id', 'a', '--cluster-secret', 'hunter2'], ['serve', '--client-token=hunter2'], ['cluster', 'leave', '--cluster-secret', 'hunter2'], ['cluster', 'status', '--token', 'hunter2']]) {
      const result = await runCli(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, /is no longer accepted.*(PIKV_CLUSTER_SECRET or give --cluster-secret-file FILE|PIKV_CLIENT_TOKEN or give --client-token-file FILE) \[SECRET_ON_ARGV\]/);
      assert.doesNotMatch(result.stderr, /hunter2/);
    }
  });

  it('reads the cluster secret from --cluster-secret-file (trimmed), warns when others may read it, refuses an empty one', async () => {
    const file = join(dir, 'secret');
    writeFileSync(file, `  ${SECRET}\n`);
    chmodSync(file, 0o644);
    const env = { PIKV_CLUSTER_SECRET: '' };
    const served = await startServer(['--workers', '1', '--node-id', 'f', '--cluster-secret-file', file], env);
    try {
      assert.match(served.output(), /cluster secret file .* is readable by group or others \(mode 644\)/);
      const peer = await connect(served.url, { peer: { secret: SECRET, node_id: 'g', server_id: 'f' } });
      await peer.close();
      await assert.rejects(connect(served.url, { peer: { secret: `  ${SECRET}\n`, node_id: 'g' } }), (error: PikvError) => error.code === ErrorCode.PEER_AUTH_FAILED);
    } finally {
      await served.stop();
    }
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n', { mode: 0o600 });
    const refused = await runCli(['serve', '--port', '0', '--node-id', 'f', '--cluster-secret-file', empty], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the cluster secret file .* is empty/);
  });

  it('reads the client token from --client-token-file on serve and on the CLI', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'tok\n', { mode: 0o600 });
    const served = await startServer(['--workers', '1', '--client-token-file', file]);
    try {
      assert.doesNotMatch(served.output(), /readable by group/);
      await assert.rejects(connect(served.url), (error: PikvError) => error.code === ErrorCode.AUTH_FAILED);
      const status = await runCli(['cluster', 'status', '--json', '--url', served.url, '--client-token-file', file]);
      assert.equal(status.code, 0, status.stderr);
    } finally {
      await served.stop();
    }
  });
});

/**
 * Peer links under load (docs/CLUSTER.md, "Peer links"): two nodes whose plain clients write
 * keys the other node owns, so each node forwards to the other at full load at once. Peer
 * connections have their own limits, apart from the clients' node-wide in-flight budget, and
 * the heartbeat rides a control channel of its own: neither node may pause the other into
 * NODE_DOWN, and the heartbeat round trip (cluster status, peers[].rtt_ms) stays below what
 * would show the peer down.
 *
 * The nodes get a small node_inflight_bytes_max (2 MiB) so that "full load" is reached within
 * a few seconds on a shared 2-core machine; the values are 16 KiB, so each client frame is
 * about 512 KiB. Heartbeats are the default 500 ms (a peer is down after 1.5 s of silence):
 * on a machine shared with other work the round trip reaches several hundred ms from CPU
 * starvation alone. On the code before peer channels and peer budgets this test failed with
 * hundreds of NODE_DOWN answers and peers shown down. (That control messages do not wait
 * behind bulk stream data is checked without timing in test/peer-channels.test.ts.)
 *
 * Real `pikv serve` processes on 127.0.0.1 ephemeral ports, stopped by PID.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, WireCodec, type PikvClient } from '../src/index.js';
import { Op } from '../src/protocol/constants.js';
import { HashRing } from '../src/routing/ring.js';
import { clusterOp, ringOf, startNode, waitForMembers } from './helpers/cluster.js';
import { delay } from './helpers/raw-socket.js';
import type { ServerProcess } from './helpers/server-process.js';

const HEARTBEAT_MS = 500;
/** cluster-config.ts heartbeats_missed_max: a link silent this long is shown down. */
const DOWN_AFTER_MS = HEARTBEAT_MS * 3;
const LOAD_MS = 4_000;
const CLIENTS_PER_NODE = 4;
const FRAMES_INFLIGHT_PER_CLIENT = 2;
const OPS_PER_FRAME = 32;
const VALUE = Buffer.alloc(16 * 1024, 0x61);
const codec = new WireCodec();

interface PeerSample { id: string; up: boolean; rtt_ms: number | null }

describe('two nodes forwarding to each other at full load', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pikv-peer-load-'));
  let a: ServerProcess;
  let b: ServerProcess;

  before(async () => {
    const config = join(dir, 'node.json');
    writeFileSync(config, JSON.stringify({ node_inflight_bytes_max: '2mb' }));
    const extra = ['--config', config, '--heartbeat-interval-ms', String(HEARTBEAT_MS), '--forward-timeout-ms', '5000'];
    a = await startNode('a', [], extra);
    b = await startNode('b', [a.url], extra);
    await waitForMembers([a.url, b.url], ['a', 'b']);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('pauses neither into NODE_DOWN; the heartbeat round trip stays bounded', async () => {
    const ring = new HashRing((await ringOf(a.url)).nodes);
    /** Keys owned by `owner`, to be written through the other node. */
    const keysOf = (owner: string): string[] => {
      const keys: string[] = [];
      for (let i = 0; keys.length < 512; i++) if (ring.ownerOfKey(`k${i}`).id === owner) keys.push(`k${i}`);
      return keys;
    };
    const plan: { via: ServerProcess; keys: string[] }[] = [{ via: a, keys: keysOf('b') }, { via: b, keys: keysOf('a') }];

    const errors = new Map<string, number>();
    let ops_ok = 0;
    let stop = false;
    const clients: PikvClient[] = [];
    const writer = async (client: PikvClient, keys: string[], offset: number): Promise<void> => {
      for (let round = offset; !stop; round++) {
        const batch = Array.from({ length: OPS_PER_FRAME }, (_, i) => ({ op: 'put' as const, key: keys[(round * OPS_PER_FRAME + i) % keys.length]!, value: VALUE }));
        try {
          for (const result of await client.batch(batch)) {
            if (result.code === 'OK') ops_ok++;
            else errors.set(result.code, (errors.get(result.code) ?? 0) + 1);
          }
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'THROWN';
          errors.set(code, (errors.get(code) ?? 0) + 1);
          await delay(50);
        }
      }
    };

    const samples: PeerSample[] = [];
    // Connected before the load starts: the status queries must not wait for a handshake.
    const watchers = await Promise.all([a, b].map((node) => connect(node.url, { request_timeout_ms: 5_000 })));
    const sampler = async (): Promise<void> => {
      while (!stop) {
        for (const watcher of watchers) {
          const reply = await watcher.batchColumns({ op: Uint8Array.of(Op.CLUSTER_STATUS), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
          const status = codec.decodeValue(reply.values) as { peers: PeerSample[] };
          samples.push(...status.peers.map((p) => ({ id: p.id, up: p.up, rtt_ms: p.rtt_ms })));
        }
        await delay(100);
      }
    };

    const runs: Promise<void>[] = [];
    try {
      for (const { via } of plan) {
        for (let c = 0; c < CLIENTS_PER_NODE; c++) clients.push(await connect(via.url, { request_timeout_ms: 10_000 }));
      }
      clients.forEach((client, c) => {
        const keys = plan[c < CLIENTS_PER_NODE ? 0 : 1]!.keys;
        for (let f = 0; f < FRAMES_INFLIGHT_PER_CLIENT; f++) runs.push(writer(client, keys, c * FRAMES_INFLIGHT_PER_CLIENT + f));
      });
      const sampling = sampler();
      await Promise.race([delay(LOAD_MS), sampling]);
      stop = true;
      await sampling;
    } finally {
      stop = true;
      await Promise.all(runs);
      await Promise.all([...clients, ...watchers].map((client) => client.close()));
    }

    const statuses = (await Promise.all([a, b].map((node) => clusterOp(node.url, Op.CLUSTER_STATUS)))) as { peers: { id: string; ops_failed: number }[] }[];
    const rtts = samples.map((s) => s.rtt_ms ?? 0);
    const report = `ops ok ${ops_ok}; errors ${JSON.stringify([...errors])}; samples ${samples.length}, down ${samples.filter((s) => !s.up).length}; rtt max ${Math.max(...rtts)} ms; ops_failed ${JSON.stringify(statuses.map((s) => s.peers.map((p) => p.ops_failed)))}`;
    console.log(`peer-load: ${report}`);
    assert.ok(ops_ok > 0, `no write went through: ${report}`);
    assert.deepEqual([...errors], [], `clients saw errors: ${report}`);
    assert.ok(samples.length > 0);
    assert.ok(samples.every((s) => s.up), `a peer was shown down during the load: ${report}`);
    assert.ok(Math.max(...rtts) < DOWN_AFTER_MS, `the heartbeat round trip reached ${Math.max(...rtts)} ms, past the ${DOWN_AFTER_MS} ms that shows a peer down: ${report}`);
    for (const status of statuses) for (const peer of status.peers) assert.equal(peer.ops_failed, 0, report);
    for (const node of [a, b]) assert.doesNotMatch(node.output(), /is down|missed \d+ heartbeats/, node.output());
  });
});


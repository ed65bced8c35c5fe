import { OpRef } from '../src/engine/op-ref.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Forwarder } from '../src/cluster/forwarder.js';
import type { PeerLink } from '../src/cluster/peer-link.js';
import type { RingNode } from '../src/routing/ring.js';
import type { ColumnBatch, ColumnResults } from '../src/client/client.js';
import { Op, Status } from '../src/protocol/constants.js';
import { PendingRequest } from '../src/engine/pending-request.js';

const PEER: RingNode = { id: 'b', url: 'ws://127.0.0.1:1', weight: 1 };

/** A peer link that answers each frame with the next status from `script` (then OK). */
function scriptedLink(script: number[]): { link: PeerLink; frames: ColumnBatch[] } {
  const frames: ColumnBatch[] = [];
  const link = {
    up: true,
    ops_failed: 0,
    send(batch: ColumnBatch): Promise<ColumnResults> {
      frames.push(batch);
      const status = script.shift() ?? Status.OK;
      const value = status === Status.OK ? Buffer.from('v') : Buffer.alloc(0);
      return Promise.resolve({ status: Uint8Array.of(status), value_lengths: Uint32Array.of(value.length), values: value });
    },
  };
  return { link: link as unknown as PeerLink, frames };
}

function forwardOne(forwarder: Forwarder): Promise<PendingRequest> {
  // The forwarder's retry timers are unref'd (a server has other handles); hold the loop open.
  const keep_alive = setInterval(() => {}, 1000);
  return new Promise<PendingRequest>((resolve) => {
    const request = new PendingRequest(1, 1, 0, 1 << 20, resolve);
    const key = Buffer.from('key');
    forwarder.forward(PEER, new OpRef().set(request, 0, Op.GET, 0, key, 0, key.length, Buffer.alloc(0), 0, 0));
  }).finally(() => clearInterval(keep_alive));
}

describe('Forwarder', { timeout: 10_000 }, () => {
  it('sends an op refused with STALE_RING again to its owner, and answers the client with the result', async () => {
    const { link, frames } = scriptedLink([Status.STALE_RING, Status.STALE_RING]);
    const forwarder = new Forwarder(() => link, () => 3, () => PEER);
    const request = await forwardOne(forwarder);
    assert.equal(request.status[0], Status.OK);
    assert.equal(frames.length, 3, 'sent, refused twice, then answered');
    assert.equal(forwarder.ops_resent, 2);
  });

  it('answers STALE_RING once this node owns the key itself', async () => {
    const { link, frames } = scriptedLink([Status.STALE_RING]);
    const forwarder = new Forwarder(() => link, () => 3, () => null);
    const request = await forwardOne(forwarder);
    assert.equal(request.status[0], Status.STALE_RING);
    assert.equal(frames.length, 1);
  });

  it('gives up with STALE_RING after a bounded number of tries', async () => {
    const { link, frames } = scriptedLink(new Array<number>(100).fill(Status.STALE_RING));
    const forwarder = new Forwarder(() => link, () => 3, () => PEER);
    const request = await forwardOne(forwarder);
    assert.equal(request.status[0], Status.STALE_RING);
    assert.ok(frames.length > 1 && frames.length <= 21, `${frames.length} frames`);
  });

  it('fails ops for a peer that is down at once with NODE_DOWN', async () => {
    const { link } = scriptedLink([]);
    (link as unknown as { up: boolean }).up = false;
    const forwarder = new Forwarder(() => link, () => 3, () => PEER);
    const request = await forwardOne(forwarder);
    assert.equal(request.status[0], Status.NODE_DOWN);
  });
});

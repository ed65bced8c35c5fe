/**
 * MoveStream (cluster/move-stream.ts) against a scripted peer link: answers to pipelined
 * frames arrive out of order (the receiver answers a frame when its partitions are done), and
 * a failure resends every frame from the oldest unacknowledged one on, in order.
 */
import { OpRef } from '../src/engine/op-ref.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MoveStream } from '../src/cluster/move-stream.js';
import type { PeerLink } from '../src/cluster/peer-link.js';
import type { RingNode } from '../src/routing/ring.js';
import type { ColumnBatch, ColumnResults } from '../src/client/client.js';
import { Op, Status } from '../src/protocol/constants.js';

const DEST: RingNode = { id: 'd', url: 'ws://127.0.0.1:1', weight: 1 };

interface Frame { keys: string; resolve: (status: number) => void; reject: (error: Error) => void }

/** A link whose frames stay unanswered until the test answers them, in any order. */
function manualLink(): { link: PeerLink; frames: Frame[] } {
  const frames: Frame[] = [];
  const link = {
    up: true,
    send(batch: ColumnBatch): Promise<ColumnResults> {
      return new Promise<ColumnResults>((resolve, reject) => {
        frames.push({
          keys: Buffer.from(batch.keys).toString(),
          resolve: (status) => resolve({ status: new Uint8Array(batch.op.length).fill(status), value_lengths: new Uint32Array(batch.op.length), values: new Uint8Array(0) }),
          reject,
        });
      });
    },
  };
  return { link: link as unknown as PeerLink, frames };
}

function put(stream: MoveStream, key: string): void {
  const k = Buffer.from(key);
  stream.tail.add(new OpRef().set(null, 0, Op.PUT, 0, k, 0, k.length, Buffer.from('v'), 0, 1));
  stream.flush();
}

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('MoveStream', { timeout: 10_000 }, () => {
  it('takes answers out of order, and counts a frame acknowledged only once every older one is', async () => {
    const { link, frames } = manualLink();
    const stream = new MoveStream(DEST, () => link, () => {});
    put(stream, 'a');
    put(stream, 'b');
    put(stream, 'c');
    assert.deepEqual(frames.map((f) => f.keys), ['a', 'b', 'c']);
    frames[1]!.resolve(Status.OK);
    frames[2]!.resolve(Status.OK);
    await tick();
    assert.equal(stream.keys_acked, 0, 'frame a is still unanswered');
    assert.equal(stream.idle, false);
    frames[0]!.resolve(Status.OK);
    await tick();
    assert.equal(stream.keys_acked, 3);
    assert.equal(stream.idle, true);
    assert.equal(stream.failures, 0);
    stream.stop();
  });

  it('after a failure resends every frame from the oldest unacknowledged one, in order, even those answered already', async () => {
    const { link, frames } = manualLink();
    const stream = new MoveStream(DEST, () => link, () => {});
    put(stream, 'a');
    put(stream, 'b');
    put(stream, 'c');
    frames[1]!.resolve(Status.OK);
    await tick();
    frames[0]!.reject(new Error('timeout'));
    await tick();
    assert.equal(stream.failures, 1);
    assert.equal(stream.idle, false);
    frames[2]!.resolve(Status.OK); // a late answer from before the failure: ignored
    await tick(300); // RESEND_DELAY_MS
    assert.deepEqual(frames.slice(3).map((f) => f.keys), ['a', 'b', 'c']);
    for (const frame of frames.slice(3).reverse()) frame.resolve(Status.OK);
    await tick();
    assert.equal(stream.keys_acked, 3);
    assert.equal(stream.idle, true);
    stream.stop();
  });
});

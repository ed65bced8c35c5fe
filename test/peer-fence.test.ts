/**
 * A peer's old connection applies no data once the same peer has opened a newer one
 * (Connection.fenced, docs/MEMBERSHIP.md): a forwarded write or a stream frame its sender gave
 * up on (it reset the connection after a timeout and reconnected) must not land later over a
 * newer value. Control ops still work on the old connection.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect, ErrorCode, Op, Status, type PikvError } from '../src/index.js';
import { startServer } from './helpers/server-process.js';

const SECRET = 'fence-secret';

describe('peer connection fencing', { timeout: 30_000 }, () => {
  it('refuses data ops on an older connection of the same peer, and serves the newest', async () => {
    const node = await startServer(['--workers', '1', '--node-id', 'a'], { PIKV_CLUSTER_SECRET: SECRET });
    try {
      const older = await connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'a' } });
      assert.equal((await older.batch([{ op: 'put', key: 'k', value: 'old-1' }]))[0]!.code, 'OK');
      const newer = await connect(node.url, { peer: { secret: SECRET, node_id: 'b', server_id: 'a' } });
      await assert.rejects(older.batch([{ op: 'put', key: 'k', value: 'old-2' }]), (error: PikvError) => error.code === ErrorCode.STALE_RING);
      await assert.rejects(older.batch([{ op: 'get', key: 'k' }]), (error: PikvError) => error.code === ErrorCode.STALE_RING);
      // Control ops are not data: the old connection may still ask for the ring.
      const ring = await older.batchColumns({ op: Uint8Array.of(Op.RING), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
      assert.equal(ring.status[0], Status.OK);
      assert.equal((await newer.batch([{ op: 'put', key: 'k', value: 'new' }]))[0]!.code, 'OK');
      const plain = await connect(node.url);
      assert.equal(Buffer.from((await plain.get('k'))!).toString(), 'new');
      // Another peer id is not affected.
      const other = await connect(node.url, { peer: { secret: SECRET, node_id: 'c', server_id: 'a' } });
      assert.equal((await other.batch([{ op: 'get', key: 'k' }]))[0]!.code, 'OK');
      assert.match(node.output(), /refusing data from an old data connection of peer "b"/);
      await Promise.all([older.close(), newer.close(), plain.close(), other.close()]);
    } finally {
      await node.stop();
    }
  });
});

/**
 * The two halves of R7's bookkeeping (docs/REPLICATION.md, "Promotion with N ≥ 3"), alone:
 * the primary's commit watermark (src/cluster/commit-watermark.ts) and the backup's replay log
 * (src/cluster/replay-log.ts). test/replication-sim.test.ts runs both inside the real write path;
 * its commits complete in order (every key has the same copies), so the out-of-order case is here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommitWatermark } from '../src/cluster/commit-watermark.js';
import { ReplayLog } from '../src/cluster/replay-log.js';
import { Op } from '../src/protocol/constants.js';

describe('commit watermark', () => {
  it('moves over the completed prefix only, never to the highest completed id', () => {
    const w = new CommitWatermark();
    const [a, b, c, d] = [w.open(), w.open(), w.open(), w.open()];
    assert.deepEqual([a, b, c, d], [1, 2, 3, 4]);
    w.complete(c);
    w.complete(b);
    assert.equal(w.value, 0, 'commit 1 is still open');
    w.complete(a);
    assert.equal(w.value, 3);
    assert.equal(w.open_count, 1);
    w.complete(d);
    assert.equal(w.value, 4);
    assert.throws(() => w.complete(d), /completed|open/);
  });

  it('keeps up over many ids completed in a shuffled order', () => {
    const w = new CommitWatermark();
    const ids = Array.from({ length: 5000 }, () => w.open());
    // A fixed shuffle: each id completes after at most 7 later ones.
    for (let base = 0; base < ids.length; base += 8) {
      const chunk = ids.slice(base, base + 8).reverse();
      for (const id of chunk) {
        assert.equal(w.value, base, 'never past an open commit');
        w.complete(id);
      }
      assert.equal(w.value, Math.min(base + 8, ids.length));
    }
    assert.equal(w.open_count, 0);
  });
});

describe('replay log', () => {
  const key = (s: string): Buffer => Buffer.from(s);

  it('keeps ops tagged above the watermark, drops a prefix as it moves, and keeps them per sender', () => {
    const log = new ReplayLog(1 << 20);
    let tag = log.frame('p', 1, 0);
    log.add('p', tag, Op.PUT, 11, key('x'), key('v1'), 0, 0);
    tag = log.frame('p', 0, 0); // a frame of scanned entries only: the running tag stays 1
    assert.equal(tag, 1);
    log.add('p', tag, Op.PUT, 12, key('y'), key('s'), 0, 0);
    tag = log.frame('p', 3, 0);
    log.add('p', tag, Op.DELETE, 11, key('x'), Buffer.alloc(0), 0, 0);
    log.add('q', log.frame('q', 9, 0), Op.PUT, 13, key('z'), key('q'), 0, 0);
    assert.equal(log.opsOf('p'), 3);
    // cw 2: commit 3 is open; the ops tagged 1 go, the DELETE (tag 3) stays.
    log.frame('p', 0, 2);
    assert.equal(log.opsOf('p'), 1);
    const taken = log.take('p');
    assert.deepEqual(taken.map((op) => [op.op, op.key.toString()]), [[Op.DELETE, 'x']]);
    assert.equal(log.opsOf('p'), 0);
    assert.equal(log.opsOf('q'), 1, 'another sender is untouched');
    assert.equal(log.take('q')[0]!.value.toString(), 'q');
    assert.equal(log.bytes, 0);
  });

  it("starts a sender's log afresh when its watermark goes back (the sender restarted and counts from 1)", () => {
    const log = new ReplayLog(1 << 20);
    log.add('p', log.frame('p', 900, 800), Op.PUT, 7, key('a'), key('old'), 0, 0);
    assert.equal(log.opsOf('p'), 1);
    // The new process: ci 1, no watermark yet. Kept under the old tag (900), its ops would wait
    // for a watermark of 900 that the new process reaches only after 900 commits.
    const tag = log.frame('p', 1, 0);
    assert.equal(tag, 1);
    assert.equal(log.opsOf('p'), 0, "the old incarnation's entries are gone");
    assert.equal(log.pending(7), false);
    log.add('p', tag, Op.PUT, 8, key('b'), key('new'), 0, 0);
    log.frame('p', 0, 1);
    assert.equal(log.opsOf('p'), 0, "the new incarnation's watermark trims its own entries");
    assert.equal(log.senders_restarted, 1);
  });

  it('knows which key hashes have an op no watermark covers yet (read: any at N >= 3)', () => {
    const log = new ReplayLog(1 << 20);
    let tag = log.frame('p', 1, 0);
    log.add('p', tag, Op.PUT, 7, key('a'), key('1'), 0, 0);
    tag = log.frame('p', 2, 0);
    log.add('p', tag, Op.PUT, 7, key('a'), key('2'), 0, 0);
    log.add('p', tag, Op.PUT, 8, key('b'), key('1'), 0, 0);
    log.add('q', log.frame('q', 5, 0), Op.PUT, 9, key('c'), key('1'), 0, 0);
    assert.deepEqual([7, 8, 9, 10].map((h) => log.pending(h)), [true, true, true, false]);
    log.frame('p', 0, 1);
    assert.equal(log.pending(7), true, 'the second write of hash 7 (commit 2) is still open');
    log.frame('p', 0, 2);
    assert.deepEqual([7, 8, 9].map((h) => log.pending(h)), [false, false, true]);
    log.take('q');
    assert.equal(log.pending(9), false);
  });

  it('does not keep an op its frame shows is already covered, copies the bytes, and says when it is full', () => {
    const log = new ReplayLog(4096);
    const tag = log.frame('p', 5, 5);
    const value = Buffer.from('abc');
    log.add('p', tag, Op.PUT, 1, key('k'), value, 0, 0);
    assert.equal(log.opsOf('p'), 0, 'tag 5 <= cw 5');
    const next = log.frame('p', 6, 5);
    log.add('p', next, Op.PUT, 1, key('k'), value, 123, 1);
    value.fill(0);
    const [op] = log.take('p');
    assert.equal(op!.value.toString(), 'abc', 'the log holds its own copy');
    assert.equal(op!.expiry_ms, 123);
    assert.equal(op!.value_codec, 1);
    assert.equal(log.full(100), false);
    assert.equal(log.full(8192), true);
    assert.throws(() => log.add('p', 1, Op.PUT, 1, key('k'), value, 0, 0), /before frame/);
    log.frame('p', 9, 0);
    assert.throws(() => log.add('p', 8, Op.PUT, 1, key('k'), value, 0, 0), /must not decrease/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Decoder, Encoder } from 'cbor-x';
import { Op, Status } from '../src/protocol/constants.js';
import { isErrorResponse, RequestDecodeError, WireCodec } from '../src/protocol/codec.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { responseFrameBytes, writeResponseHead } from '../src/protocol/response-writer.js';
import { readRequestMap } from '../src/protocol/request-reader.js';

const codec = new WireCodec();
const raw = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true });

function request(overrides: Record<string, unknown> = {}): Buffer {
  return raw.encode({
    v: 1, id: 9, op: Buffer.from([Op.PUT, Op.GET]), kl: new Uint32Array([1, 2]), vl: new Uint32Array([3, 0]),
    keys: Buffer.from('abc'), vals: Buffer.from('xyz'), ...overrides,
  });
}

function decodeError(frame: Uint8Array, ops_max = 100): RequestDecodeError {
  try {
    codec.decodeRequest(frame, ops_max);
  } catch (error) {
    assert.ok(error instanceof RequestDecodeError);
    return error;
  }
  assert.fail('expected decodeRequest to throw');
}

describe('WireCodec requests', () => {
  it('round-trips a request batch through encodeRequest and decodeRequest', () => {
    const frame = codec.encodeRequest({
      id: 12345, op: Uint8Array.from([Op.PUT, Op.GET, Op.DELETE]), key_lengths: new Uint32Array([2, 2, 0]),
      value_lengths: new Uint32Array([4, 0, 0]), keys: Buffer.from('k1k2'), values: Buffer.from('abcd'),
    });
    const decoded = codec.decodeRequest(frame, 100);
    assert.equal(decoded.id, 12345);
    assert.deepEqual([...decoded.op], [Op.PUT, Op.GET, Op.DELETE]);
    assert.deepEqual([...decoded.key_lengths], [2, 2, 0]);
    assert.deepEqual([...decoded.value_lengths], [4, 0, 0]);
    assert.equal(Buffer.from(decoded.keys).toString(), 'k1k2');
    assert.equal(Buffer.from(decoded.values).toString(), 'abcd');
  });

  it('accepts uint16 key lengths and leaving out vl and vals together', () => {
    const decoded = codec.decodeRequest(request({ kl: new Uint16Array([1, 2]), op: Buffer.from([Op.GET, Op.GET]), vl: undefined, vals: undefined }), 100);
    assert.deepEqual([...decoded.value_lengths], [0, 0]);
    assert.equal(decoded.values.length, 0);
  });

  it('rejects a frame that is not CBOR with BAD_FRAME', () => {
    assert.equal(decodeError(Buffer.from([0xa1, 0xff, 0xff])).code, ErrorCode.BAD_FRAME);
  });

  it('rejects anything but a map with BAD_REQUEST, before decoding it', () => {
    for (const frame of [Buffer.alloc(0), raw.encode([1, 2]), raw.encode('text'), Buffer.from('9b00000000ffffffff', 'hex')]) {
      assert.equal(decodeError(frame).code, ErrorCode.BAD_REQUEST);
    }
  });

  it('rejects a missing or invalid id with BAD_REQUEST and no id', () => {
    for (const id of [undefined, -1, 1.5, 'x', 2 ** 60]) {
      const error = decodeError(request({ id }));
      assert.equal(error.code, ErrorCode.BAD_REQUEST);
      assert.equal(error.request_id, null);
    }
  });

  it('rejects a wrong version with UNSUPPORTED_VERSION and keeps the id', () => {
    const error = decodeError(request({ v: 2 }));
    assert.equal(error.code, ErrorCode.UNSUPPORTED_VERSION);
    assert.equal(error.request_id, 9);
  });

  it('rejects fields of the wrong type or with inconsistent lengths', () => {
    const cases: Record<string, unknown>[] = [
      { op: 'text' }, { op: [1, 2] }, { kl: [1, 2] }, { kl: new Float64Array([1, 2]) }, { kl: new Uint32Array([1]) },
      { kl: new Uint32Array([1, 1]) }, { keys: 'abc' }, { vl: new Uint16Array([3, 0]) }, { vl: new Uint32Array([3, 1]) },
      { vals: 7 }, { vl: undefined },
    ];
    for (const overrides of cases) {
      const error = decodeError(request(overrides));
      assert.equal(error.code, ErrorCode.BAD_REQUEST, JSON.stringify(Object.keys(overrides)));
      assert.equal(error.request_id, 9);
    }
  });

  it('rejects more ops than the limit with TOO_MANY_OPS', () => {
    assert.equal(decodeError(request(), 1).code, ErrorCode.TOO_MANY_OPS);
  });
});

describe('WireCodec responses', () => {
  it('round-trips a response', () => {
    const frame = codec.encodeResponse({ id: 3, status: Uint8Array.from([Status.OK, Status.NOT_FOUND]), value_lengths: new Uint32Array([2, 0]), values: Buffer.from('hi') });
    const decoded = codec.decodeResponse(frame);
    assert.ok(!isErrorResponse(decoded));
    assert.equal(decoded.id, 3);
    assert.deepEqual([...decoded.status], [0, 1]);
    assert.equal(Buffer.from(decoded.values).toString(), 'hi');
  });

  it('round-trips an error response, with and without an id', () => {
    for (const id of [4, null]) {
      const decoded = codec.decodeResponse(codec.encodeError({ id, code: ErrorCode.BAD_REQUEST, message: 'nope' }));
      assert.ok(isErrorResponse(decoded));
      assert.equal(decoded.id, id);
      assert.equal(decoded.code, 'BAD_REQUEST');
    }
  });

  it('refuses a response whose value lengths do not add up', () => {
    const frame = raw.encode({ v: 1, id: 1, st: Buffer.from([0]), vl: new Uint32Array([5]), vals: Buffer.from('hi') });
    assert.throws(() => codec.decodeResponse(frame), { code: ErrorCode.BAD_RESPONSE });
  });
});

describe('writeResponseHead', () => {
  function frameFor(id: number, values: Buffer[]): Buffer {
    const status = Uint8Array.from(values, (_, i) => i % 3);
    const value_lengths = Uint32Array.from(values, (value) => value.length);
    const values_bytes = value_lengths.reduce((sum, length) => sum + length, 0);
    const frame = Buffer.alloc(responseFrameBytes(id, values.length, values_bytes));
    let offset = writeResponseHead(frame, id, status, value_lengths, values_bytes);
    for (const value of values) offset += value.copy(frame, offset);
    assert.equal(offset, frame.length, 'the frame is exactly as long as computed');
    return frame;
  }

  it('writes frames that cbor-x and the client decode back exactly, for ids and sizes across every CBOR length form', () => {
    const ids = [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];
    const counts = [0, 1, 23, 24, 255, 256, 70_000];
    for (const id of ids) {
      for (const count of counts) {
        const values = Array.from({ length: count }, (_, i) => Buffer.alloc(i % 5 === 0 ? 0 : (i * 7) % 40, i & 0xff));
        const frame = frameFor(id, values);
        const decoded = codec.decodeResponse(frame);
        assert.ok(!isErrorResponse(decoded));
        assert.equal(decoded.id, id);
        assert.equal(decoded.status.length, count);
        assert.deepEqual([...decoded.value_lengths], values.map((value) => value.length));
        assert.ok(Buffer.from(decoded.values).equals(Buffer.concat(values)));
        const generic = new Decoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true }).decode(frame) as Record<string, unknown>;
        assert.deepEqual(Object.keys(generic), ['v', 'id', 'st', 'vl', 'vals']);
        assert.equal(generic['v'], 1);
      }
    }
  });

  it('writes a large value whose length needs a 4-byte head', () => {
    const big = Buffer.alloc(70_000, 9);
    const decoded = codec.decodeResponse(frameFor(5, [big, Buffer.from('x')]));
    assert.ok(!isErrorResponse(decoded));
    assert.equal(decoded.values.length, 70_001);
  });
});

describe('readRequestMap (the fast request reader)', () => {
  const generic = new Decoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true });

  it('reads what cbor-x reads, for requests of every size and id length', () => {
    // (cbor-x writes ids of 2^32 and up as floats, which go to cbor-x; see the next test for uint64.)
    for (const id of [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1]) {
      for (const count of [0, 1, 24, 300, 70_000]) {
        const key_lengths = Uint32Array.from({ length: count }, (_, i) => i % 17);
        const value_lengths = Uint32Array.from({ length: count }, (_, i) => (i % 3 === 0 ? i % 29 : 0));
        const keys = Buffer.alloc(key_lengths.reduce((sum, n) => sum + n, 0), 7);
        const values = Buffer.alloc(value_lengths.reduce((sum, n) => sum + n, 0), 9);
        const frame = codec.encodeRequest({ id, op: new Uint8Array(count).fill(Op.PUT), key_lengths, value_lengths, keys, values });
        const fast = readRequestMap(frame);
        assert.ok(fast !== null, `id ${id}, ${count} ops took the fast path`);
        const slow = generic.decode(frame) as Record<string, unknown>;
        assert.equal(fast['id'], Number(slow['id']));
        assert.equal(fast['v'], 1);
        assert.deepEqual([...(fast['kl'] as Uint32Array)], [...key_lengths]);
        assert.deepEqual([...(fast['vl'] as Uint32Array)], [...value_lengths]);
        assert.ok(Buffer.from(fast['keys'] as Uint8Array).equals(keys));
        assert.ok(Buffer.from(fast['vals'] as Uint8Array).equals(values));
        assert.equal((fast['op'] as Uint8Array).length, count);
      }
    }
  });

  it('reads an id written as an 8-byte integer as a number', () => {
    const frame = Buffer.from('a2617601626964' + '1b' + '0000000100000005', 'hex');
    assert.equal(readRequestMap(frame)?.['id'], 2 ** 32 + 5);
  });

  it('skips fields the protocol does not define, and reads uint16 key lengths and tag-64 op bytes', () => {
    const frame = raw.encode({ v: 1, id: 3, extra: 5, op: Uint8Array.of(Op.GET), kl: Uint16Array.of(2), keys: Buffer.from('ab') });
    const fast = readRequestMap(frame);
    assert.ok(fast !== null);
    assert.equal(fast['extra'], undefined);
    assert.ok(fast['kl'] instanceof Uint16Array);
    const with_tag_64 = new Encoder({ tagUint8Array: true, useRecords: false, mapsAsObjects: true }).encode({ v: 1, id: 1, op: Uint8Array.of(Op.GET), kl: Uint32Array.of(1), keys: Buffer.from('k') });
    assert.equal((readRequestMap(with_tag_64)?.['op'] as Uint8Array)[0], Op.GET);
  });

  it('leaves anything outside its subset to cbor-x', () => {
    const outside = [
      raw.encode({ v: 1, id: 1.5 }),                           // float
      raw.encode({ v: 1, id: 1, nested: { a: 1 } }),           // nested map
      raw.encode({ v: 1, id: -1 }),                            // negative integer
      Buffer.concat([request(), Buffer.from([0])]),            // trailing byte
      Buffer.from('bf617601ff', 'hex'), // indefinite-length map
      raw.encode({ v: 1, id: 1, kl: new Uint32Array(0) }).subarray(0, 10), // truncated
      Buffer.from([0xa1, 0x61, 0x76, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // 2^64-1
    ];
    for (const frame of outside) assert.equal(readRequestMap(frame), null, frame.toString('hex'));
  });
});

describe('readRequestMap with cluster fields', () => {
  it('reads the ring epoch and the data-move flag of peer requests', () => {
    const frame = codec.encodeRequest({ id: 4, op: Uint8Array.of(Op.GET), key_lengths: Uint32Array.of(1), value_lengths: Uint32Array.of(0), keys: Buffer.from('k'), values: Buffer.alloc(0), ring_epoch: 7, migrate: true });
    const fast = readRequestMap(frame);
    assert.ok(fast !== null);
    assert.equal(fast['re'], 7);
    assert.equal(fast['mg'], true);
  });
});

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { crc32c } from '../src/persistence/crc32c.js';
import { PersistenceError } from '../src/persistence/errors.js';
import { deflateSync } from 'node:zlib';
import { FILE_HEADER_BYTES, LOG_MAGIC, OP_DELETE, OP_PUT, RECORD_ABORT, RECORD_BATCH, RECORD_BATCH_DEFLATE, RECORD_HEADER_BYTES, SNAPSHOT_MAGIC } from '../src/persistence/format.js';
import { RecordBuffer } from '../src/persistence/record-buffer.js';
import { readRecordFile, type RecordView } from '../src/persistence/record-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'pikv-format-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const EXPECT = { magic: LOG_MAGIC, workers: 2, partition: 1, generation: 3 };

/** A log of `batches` BATCH records of 3 ops each; returns its path and record end offsets. */
function writeLog(name: string, batches: number): { path: string; ends: number[] } {
  const buffer = new RecordBuffer();
  buffer.writeFileHeader(LOG_MAGIC, 2, 1, 3);
  const ends: number[] = [];
  const data = Buffer.from('keyAvalueAkeyB');
  for (let b = 0; b < batches; b++) {
    buffer.beginRecord(RECORD_BATCH);
    buffer.appendOp(OP_PUT, 11, data, 0, 4, 4, 6);
    buffer.appendOp(OP_DELETE, 12, data, 10, 4, 14, 0);
    buffer.appendOp(OP_PUT, 13, data, 10, 4, 4, 6);
    buffer.endRecord();
    ends.push(buffer.length);
  }
  const path = join(dir, name);
  writeFileSync(path, buffer.bytes.subarray(0, buffer.length));
  return { path, ends };
}

function countOps(path: string, repair = false): { ops: number; result: ReturnType<typeof readRecordFile> } {
  let ops = 0;
  const result = readRecordFile(path, EXPECT, { repair }, (record: RecordView) => (ops += record.count - record.abort_count));
  return { ops, result };
}

describe('crc32c', () => {
  it('matches the standard check value', () => {
    assert.equal(crc32c(0, Buffer.from('123456789'), 0, 9), 0xe3069283);
  });
  it('gives the same result over pieces as over the whole', () => {
    const bytes = Buffer.from('the quick brown fox jumps over the lazy dog, twice over');
    assert.equal(crc32c(crc32c(0, bytes, 0, 13), bytes, 13, bytes.length), crc32c(0, bytes, 0, bytes.length));
  });
});

describe('log records', () => {
  it('read back exactly as written', () => {
    const { path, ends } = writeLog('clean.log', 5);
    const { ops, result } = countOps(path);
    assert.equal(ops, 15);
    assert.equal(result.valid_bytes, ends[4]);
    assert.equal(result.torn_bytes, 0);
  });

  it('treat a cut-off last record as a torn tail, not as damage', () => {
    const { path, ends } = writeLog('torn.log', 4);
    writeFileSync(path, readFileSync(path).subarray(0, ends[3]! - 5));
    const { ops, result } = countOps(path);
    assert.equal(ops, 9);
    assert.equal(result.valid_bytes, ends[2]);
    assert.equal(result.torn_bytes, ends[3]! - 5 - ends[2]!);
  });

  it('refuse a damaged record in the middle, naming the file and offset; repair drops only it', () => {
    const { path, ends } = writeLog('middle.log', 5);
    const bytes = readFileSync(path);
    bytes[ends[1]! + 20] ^= 0xff; // inside record 2
    writeFileSync(path, bytes);
    assert.throws(() => countOps(path), (error: unknown) => {
      assert.ok(error instanceof PersistenceError);
      assert.equal(error.code, 'PIKV_ERR_DATA_CORRUPT');
      assert.ok(error.message.includes(path) && error.message.includes(`offset ${ends[1]}`), error.message);
      return true;
    });
    const { ops, result } = countOps(path, true);
    assert.equal(ops, 12);
    assert.deepEqual(result.dropped, [{ offset: ends[1]!, bytes: ends[2]! - ends[1]! }]);
  });

  it('hand a BATCH over together with the ABORT right after it', () => {
    const { path } = writeLog('abort.log', 2);
    const buffer = new RecordBuffer();
    buffer.beginRecord(RECORD_ABORT);
    buffer.appendU32(0);
    buffer.appendU32(2);
    buffer.endRecord();
    appendFileSync(path, buffer.bytes.subarray(0, buffer.length));
    const { ops, result } = countOps(path);
    assert.equal(ops, 3 + 1);
    assert.equal(result.records, 3);
  });

  it('refuse a file written for another partition or worker count', () => {
    const { path } = writeLog('other.log', 1);
    assert.throws(() => readRecordFile(path, { ...EXPECT, workers: 3 }, { repair: false }, () => {}), /expected magic "PIKVLOG\\u0000", version 1..4, workers 3/);
  });

  it('treat a file shorter than its header as empty', () => {
    const path = join(dir, 'short.log');
    writeFileSync(path, Buffer.alloc(FILE_HEADER_BYTES - 1));
    assert.equal(countOps(path).result.header_torn, true);
  });
});

describe('deflated snapshot records (format version 4)', () => {
  const SNAP_EXPECT = { ...EXPECT, magic: SNAPSHOT_MAGIC };
  /** A snapshot of one BATCH_DEFLATE record of `ops` PUTs; `mangle` may replace the deflated bytes or the stated raw length. */
  function writeDeflatedSnapshot(name: string, ops: number, mangle: { deflated?: Buffer; raw_bytes?: number } = {}): { path: string; keys: string[] } {
    const batch = new RecordBuffer();
    batch.beginRecord(RECORD_BATCH);
    const keys: string[] = [];
    for (let i = 0; i < ops; i++) {
      const data = Buffer.from(`key-${i}{"reading":${i},"room":"kitchen","ok":true}`);
      keys.push(`key-${i}`);
      batch.appendOp(OP_PUT, i, data, 0, `key-${i}`.length, `key-${i}`.length, data.length - `key-${i}`.length);
    }
    batch.endRecord();
    const payload = batch.bytes.subarray(RECORD_HEADER_BYTES, batch.length);
    const file = new RecordBuffer();
    file.writeFileHeader(SNAPSHOT_MAGIC, 2, 1, 3);
    file.beginRecord(RECORD_BATCH_DEFLATE);
    file.appendU32(mangle.raw_bytes ?? payload.length);
    file.appendBytes(mangle.deflated ?? deflateSync(payload, { level: 1 }));
    file.endRecord(ops);
    const path = join(dir, name);
    writeFileSync(path, file.bytes.subarray(0, file.length));
    return { path, keys };
  }

  it('read back as the BATCH they hold, op for op', () => {
    const { path, keys } = writeDeflatedSnapshot('deflated.snap', 200);
    const seen: string[] = [];
    const result = readRecordFile(path, SNAP_EXPECT, { repair: false }, (record: RecordView) => {
      assert.equal(record.type, RECORD_BATCH);
      assert.equal(record.count, 200);
      // Walk the ops: [0] op [1] flags [2] u16 key bytes [4] u32 value bytes [8] u32 hash, key, value.
      for (let at = record.payload_offset; at < record.payload_offset + record.payload_bytes;) {
        const key_bytes = record.bytes[at + 2]! | (record.bytes[at + 3]! << 8);
        const value_bytes = Buffer.from(record.bytes.buffer, record.bytes.byteOffset + at + 4, 4).readUInt32LE(0);
        seen.push(Buffer.from(record.bytes.subarray(at + 12, at + 12 + key_bytes)).toString());
        at += 12 + key_bytes + value_bytes;
      }
    });
    assert.deepEqual(seen, keys);
    assert.equal(result.torn_bytes, 0);
    assert.ok(result.valid_bytes < 200 * 40, `deflated: ${result.valid_bytes} bytes`);
  });

  it('refuse a record whose checksum holds but whose bytes do not inflate, or inflate to another length', () => {
    const garbage = writeDeflatedSnapshot('garbage.snap', 10, { deflated: Buffer.from('this is not a zlib stream at all') });
    assert.throws(() => readRecordFile(garbage.path, SNAP_EXPECT, { repair: true }, () => {}), (error: unknown) => {
      assert.ok(error instanceof PersistenceError);
      assert.equal(error.code, 'PIKV_ERR_DATA_CORRUPT');
      assert.match(error.message, /garbage\.snap: deflated record at byte offset 32 does not inflate/);
      return true;
    });
    const short = writeDeflatedSnapshot('length.snap', 10, { raw_bytes: 12 });
    assert.throws(() => readRecordFile(short.path, SNAP_EXPECT, { repair: false }, () => {}), /length\.snap: deflated record at byte offset 32 (does not inflate|inflates to \d+ bytes, its header says 12)/);
  });
});

describe('BATCH ops with expiry (format version 2)', () => {
  it('round-trips the flags and the absolute expiry, and a version-1 op reads as one without', async () => {
    const { OP_EXPIRE, OP_PERSIST, OPF_HAS_EXPIRY, OPF_KEEP_EXPIRY, RECORD_HEADER_BYTES } = await import('../src/persistence/format.js');
    const { readLoggedOp, applyLoggedOp } = await import('../src/persistence/logged-op.js');
    const { createTableMemory, HashTable } = await import('../src/hashmap/index.js');
    const buffer = new RecordBuffer();
    buffer.beginRecord(RECORD_BATCH);
    const data = Buffer.from('kAvalue1value2');
    const T = 1_900_000_000_777;
    buffer.appendOp(OP_PUT, 5, data, 0, 2, 2, 6, OPF_HAS_EXPIRY, T);
    buffer.appendOp(OP_PUT, 5, data, 0, 2, 8, 6, OPF_KEEP_EXPIRY, 0);
    buffer.appendOp(OP_EXPIRE, 5, data, 0, 2, 0, 0, OPF_HAS_EXPIRY, T + 1);
    buffer.appendOp(OP_PERSIST, 5, data, 0, 2, 0, 0);
    buffer.appendOp(OP_DELETE, 5, data, 0, 2, 0, 0);
    buffer.endRecord();
    const bytes = buffer.bytes.subarray(0, buffer.length);
    const op = { op: 0, flags: 0, expiry_ms: 0, hash: 0, key_offset: 0, key_length: 0, value_length: 0, value_codec: 0 };
    const table = new HashTable(createTableMemory(1 << 20));
    const seen: [number, number, number, number | null][] = [];
    let at = RECORD_HEADER_BYTES;
    for (let i = 0; i < 5; i++) {
      at = readLoggedOp(bytes, at, bytes.length, op);
      assert.ok(at > 0);
      applyLoggedOp(table, bytes, op);
      const ref = table.find(5, Buffer.from('kA'), 0, 2);
      seen.push([op.op, op.flags, op.expiry_ms, ref === 0 ? null : table.expiry(ref)]);
    }
    assert.equal(at, bytes.length);
    assert.deepEqual(seen, [
      [OP_PUT, OPF_HAS_EXPIRY, T, T],
      [OP_PUT, OPF_KEEP_EXPIRY, 0, T], // KEEP takes the expiry the replay reached
      [OP_EXPIRE, OPF_HAS_EXPIRY, T + 1, T + 1],
      [OP_PERSIST, 0, 0, 0],
      [OP_DELETE, 0, 0, null],
    ]);
    // Unknown flag bits are refused, not misread.
    const bad = Buffer.from(bytes);
    bad[RECORD_HEADER_BYTES + 1] = 0x80;
    assert.equal(readLoggedOp(bad, RECORD_HEADER_BYTES, bad.length, op), -1);
  });
});

/**
 * The node's own small piscina pool for its background codec work:
 * - decoding compressed values (docs/PROTOCOL.md, "Value compression") for clients that did
 *   not announce the codec: RESP, HTTP, and WebSocket clients without `ac`. Stored values are
 *   never decoded on the fast path: a node that only serves compressing clients and keeps no
 *   data dir never starts a thread here;
 * - deflating the snapshot records of compactions (docs/PERSISTENCE.md, "Compressed snapshot
 *   records"), which partition workers send through the main thread.
 *
 * Off the main thread (the event loop serves every connection) and off the partition workers
 * (each owns a table and must not stall on CPU work for one client). Bounded: at most
 * `threads` threads, started on first use and stopped when idle, and a queue of at most
 * QUEUE_JOBS_MAX jobs; past that a value is decoded inline rather than refused, so a burst
 * slows this node down instead of failing reads.
 */
import { CodecThreads } from '../protocol/codec-threads.js';
import { isCodecFailure, type CodecAnswer, type CodecJob } from '../protocol/value-codec-task.js';
import { decodeValue, ValueCodec, ValueCorruptError } from '../protocol/value-codec.js';

/** Jobs waiting for a thread at most; a deeper queue only adds latency. */
const QUEUE_JOBS_MAX = 1024;
/** Threads are stopped after this long without work. */
const IDLE_TIMEOUT_MS = 30_000;
/** Values this small are decoded inline: a thread hop costs more than inflating a few KiB. */
export const INLINE_DECODE_BYTES_MAX = 2048;

/** A value decoded, or why it could not be. */
export type Decoded = { bytes: Buffer } | { corrupt: true; message: string };

export class CodecPool {
  private readonly pool: CodecThreads;
  jobs_run = 0;
  values_corrupt = 0;
  /** Snapshot records deflated, and kept raw (not worth it, or the pool was busy or closed). */
  records_deflated = 0;
  records_raw = 0;

  constructor(threads = 1) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`codec pool: threads must be a whole number >= 1, got ${threads}`);
    this.pool = new CodecThreads({ threads, idle_timeout_ms: IDLE_TIMEOUT_MS, queue_jobs_max: QUEUE_JOBS_MAX * 2 });
  }

  /** Decodes `bytes` (a copy the pool may keep) stored with `codec`; never rejects. */
  async decode(codec: number, bytes: Uint8Array, bytes_max: number): Promise<Decoded> {
    this.jobs_run++;
    const pool = bytes.length <= INLINE_DECODE_BYTES_MAX ? null : this.pool.get();
    if (pool === null || pool.queueSize >= QUEUE_JOBS_MAX) return this.decodeInline(codec, bytes, bytes_max);
    const job: CodecJob = { kind: 'decode', codec, bytes, bytes_max };
    let answer: CodecAnswer;
    try {
      answer = (await pool.run(job)) as CodecAnswer;
    } catch {
      // The pool is closing or a thread died: decode here rather than fail the read.
      return this.decodeInline(codec, bytes, bytes_max);
    }
    if (answer === null || isCodecFailure(answer)) {
      this.values_corrupt++;
      return { corrupt: true, message: answer === null ? 'no bytes' : answer.message };
    }
    return { bytes: Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength) };
  }

  /**
   * A snapshot record deflated with the value codec (level 1) if that saves an eighth, else
   * null. Never inline: a compaction can wait, so a full queue or a closed pool keeps the
   * record raw rather than spending the main thread on it.
   */
  async deflateRecord(bytes: Uint8Array): Promise<Uint8Array | null> {
    const pool = this.pool.get();
    if (pool === null || pool.queueSize >= QUEUE_JOBS_MAX) {
      this.records_raw++;
      return null;
    }
    const job: CodecJob = { kind: 'encode', codec: ValueCodec.DEFLATE, bytes };
    let answer: CodecAnswer;
    try {
      answer = (await pool.run(job, { transferList: [bytes.buffer as ArrayBuffer] })) as CodecAnswer;
    } catch {
      answer = null;
    }
    if (answer === null || isCodecFailure(answer)) {
      this.records_raw++;
      return null;
    }
    this.records_deflated++;
    return answer;
  }

  private decodeInline(codec: number, bytes: Uint8Array, bytes_max: number): Decoded {
    try {
      const plain = decodeValue(codec, bytes, bytes_max);
      return { bytes: Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength) };
    } catch (error) {
      if (!(error instanceof ValueCorruptError)) throw error;
      this.values_corrupt++;
      return { corrupt: true, message: error.message };
    }
  }

  /** Stops the threads; jobs still queued are decoded inline by their callers. */
  async close(): Promise<void> {
    await this.pool.close();
  }
}

/**
 * The client's piscina pool for value compression (docs/PROTOCOL.md, "Value compression").
 *
 * PUT values of at least `compress_min_bytes` are compressed here, off the caller's thread,
 * each as its own job, so a batch of many large values is compressed by every thread of the
 * pool at once; smaller values never come here. A job first looks at a sample of the value
 * (value-codec.ts looksCompressible) and stores it raw unless compression saves at least an
 * eighth. Large compressed GET results are decoded here too; small ones inline, where a
 * thread hop would cost more than the inflate.
 *
 * Threads start on first use (a client that never stores a large value never starts one),
 * stop when idle, and close() stops them for good.
 */
import { availableParallelism } from 'node:os';
import { CodecThreads } from '../protocol/codec-threads.js';
import { isCodecFailure, type CodecAnswer, type CodecJob } from '../protocol/value-codec-task.js';
import { decodeValue, looksCompressible, ValueCodec, ValueCorruptError } from '../protocol/value-codec.js';
import { ErrorCode, PikvError } from '../protocol/errors.js';
import { Op } from '../protocol/constants.js';
import type { ColumnBatch } from './ops.js';

/** Compressed results up to this size are decoded on the caller's thread. */
export const DECODE_INLINE_BYTES_MAX = 16 * 1024;
/** A decoded value is never larger than a node may store (its hard cap, 1 GiB). */
export const DECODED_BYTES_MAX = 1024 * 1024 * 1024;
const IDLE_TIMEOUT_MS = 10_000;

/** The default for compress_threads: one per core but one, at least one. */
export function defaultCompressThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

export class CompressPool {
  /** The codec new values are stored with. */
  readonly codec: number = ValueCodec.DEFLATE;
  private readonly pool: CodecThreads;

  constructor(threads: number) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new PikvError(ErrorCode.BAD_ARGUMENT, `compress_threads must be a whole number >= 1, got ${String(threads)}`);
    this.pool = new CodecThreads({ threads, idle_timeout_ms: IDLE_TIMEOUT_MS });
  }

  /** `value` encoded with this.codec, or null to store it raw (incompressible, or the pool is closed or failed). */
  async encode(value: Uint8Array): Promise<Uint8Array | null> {
    const pool = this.pool.get();
    if (pool === null) return null;
    const job: CodecJob = { kind: 'encode', codec: this.codec, bytes: value };
    try {
      const answer = (await pool.run(job)) as CodecAnswer;
      return answer === null || isCodecFailure(answer) ? null : answer;
    } catch {
      return null; // the pool was closed meanwhile: raw is always a correct way to store it
    }
  }

  /** The plain bytes of a result stored with `codec`; throws PikvError(VALUE_CORRUPT). */
  async decode(codec: number, bytes: Uint8Array): Promise<Uint8Array> {
    const pool = bytes.length <= DECODE_INLINE_BYTES_MAX ? null : this.pool.get();
    if (pool === null) return decodeInline(codec, bytes);
    // A copy of its own: `bytes` is a view into a response frame that holds other results too.
    const job: CodecJob = { kind: 'decode', codec, bytes: new Uint8Array(bytes), bytes_max: DECODED_BYTES_MAX };
    let answer: CodecAnswer;
    try {
      answer = (await pool.run(job)) as CodecAnswer;
    } catch {
      return decodeInline(codec, bytes);
    }
    if (answer === null || isCodecFailure(answer)) {
      throw new PikvError(ErrorCode.VALUE_CORRUPT, answer === null ? 'value did not decode' : answer.message);
    }
    return answer;
  }

  /** Stops the threads; waits for the jobs they run. Later encodes store raw, decodes run inline. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Threads the pool runs now (0 before first use and after close). */
  get threads_running(): number {
    return this.pool.threads_running;
  }
}

export function decodeInline(codec: number, bytes: Uint8Array): Uint8Array {
  try {
    return decodeValue(codec, bytes, DECODED_BYTES_MAX);
  } catch (error) {
    if (error instanceof ValueCorruptError) throw new PikvError(ErrorCode.VALUE_CORRUPT, error.message);
    throw error;
  }
}

/**
 * A copy of `batch` whose PUT values of at least `min_bytes` are compressed in the pool, all at
 * once, with `value_codec` set where that paid (the same rule as put()). For batchColumns()
 * callers such as `pikv load`; a batch with nothing to compress comes back as is.
 */
export async function compressColumns(batch: ColumnBatch, compressor: CompressPool | null, min_bytes: number): Promise<ColumnBatch> {
  if (compressor === null || batch.value_codec !== undefined) return batch;
  const op_count = batch.op.length;
  const offsets = new Uint32Array(op_count + 1);
  // Candidates: large PUT values whose sample looks compressible (checked here, so incompressible
  // values never enter the pool).
  const candidate = new Uint8Array(op_count);
  let large = 0;
  for (let i = 0; i < op_count; i++) {
    offsets[i + 1] = offsets[i]! + batch.value_lengths[i]!;
    if (batch.op[i] !== Op.PUT || batch.value_lengths[i]! < min_bytes) continue;
    if (!looksCompressible(batch.values.subarray(offsets[i]!, offsets[i + 1]!))) continue;
    candidate[i] = 1;
    large++;
  }
  if (large === 0) return batch;
  const encoded: (Uint8Array | null)[] = await Promise.all(Array.from({ length: op_count }, (_, i) =>
    candidate[i] === 1 ? compressor.encode(batch.values.subarray(offsets[i]!, offsets[i + 1]!)) : Promise.resolve(null)));
  const value_codec = new Uint8Array(op_count);
  const value_lengths = new Uint32Array(op_count);
  let total = 0;
  for (let i = 0; i < op_count; i++) {
    const length = encoded[i]?.length ?? batch.value_lengths[i]!;
    value_lengths[i] = length;
    total += length;
  }
  const values = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < op_count; i++) {
    const bytes = encoded[i] ?? batch.values.subarray(offsets[i]!, offsets[i + 1]!);
    if (encoded[i] !== null) value_codec[i] = compressor.codec;
    values.set(bytes, at);
    at += bytes.length;
  }
  return { ...batch, value_lengths, values, value_codec };
}

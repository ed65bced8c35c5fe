/**
 * The job a piscina pool thread runs for value compression (src/client/compress-pool.ts,
 * src/node/codec-pool.ts): encode or decode one value with value-codec.ts. Stateless,
 * so any thread of the pool can take any job.
 *
 * Answers are objects, not thrown errors, so a value that does not decode (VALUE_CORRUPT)
 * stays apart from a pool failure. Result bytes are moved, not copied, back to the caller:
 * always from a fresh ArrayBuffer of their own (zlib may hand out a view into a shared slab,
 * and moving that would detach memory other Buffers use).
 */
import { Piscina } from 'piscina';
import { decodeValue, encodeValue, looksCompressible, worthCompressed, ValueCorruptError } from './value-codec.js';

export type CodecJob =
  /** Compress if it pays: `bytes` comes back encoded with `codec`, or `encoded` is false (store raw). */
  | { kind: 'encode'; codec: number; bytes: Uint8Array }
  | { kind: 'decode'; codec: number; bytes: Uint8Array; bytes_max: number };

/** Why a job failed: `corrupt` when the value does not decode (VALUE_CORRUPT), else a pool-side bug. */
export interface CodecFailure {
  failed: true;
  corrupt: boolean;
  message: string;
}

/**
 * Encode: the encoded bytes, or null when the value is stored raw (it does not look
 * compressible, or compressing saves less than an eighth). Decode: the plain bytes.
 */
export type CodecAnswer = Uint8Array | null | CodecFailure;

export function isCodecFailure(answer: CodecAnswer): answer is CodecFailure {
  return answer !== null && !(answer instanceof Uint8Array);
}

function owned(bytes: Uint8Array): Uint8Array {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes;
  return new Uint8Array(bytes);
}

export default function run(job: CodecJob): CodecAnswer {
  try {
    if (job.kind === 'encode') {
      if (!looksCompressible(job.bytes)) return null;
      const encoded = encodeValue(job.codec, job.bytes);
      if (!worthCompressed(job.bytes.length, encoded.length)) return null;
      return Piscina.move(owned(encoded)) as Uint8Array;
    }
    return Piscina.move(owned(decodeValue(job.codec, job.bytes, job.bytes_max))) as Uint8Array;
  } catch (error) {
    return { failed: true, corrupt: error instanceof ValueCorruptError, message: (error as Error).message };
  }
}

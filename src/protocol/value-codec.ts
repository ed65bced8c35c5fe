/**
 * Value codecs: how a stored value's bytes are encoded (docs/PROTOCOL.md, "Value compression").
 *
 * A value's codec id travels beside it, never inside it: in the request and response column
 * `vc`, in the hashmap entry's flags (3 bits, src/hashmap/entry.ts), in log and snapshot
 * records and in stream frames. The node stores and forwards the bytes as they are; only a
 * client that announced the codec (`ac`) gets them so, everyone else gets them decoded.
 *
 * Id 1 is deflate in the zlib wrapper (RFC 1950) at level 1: built into every Node (no native
 * binding to build for the Pi's arm64), and its Adler-32 trailer catches a corrupt value, which
 * then reads as VALUE_CORRUPT instead of garbage. bench/compress-algos.ts compares it with
 * brotli and LZ4 (docs/PERFORMANCE.md). Ids 2..7 are free for faster codecs later (a client
 * only uses ids the nodes it talks to know; a node refuses unknown ids on PUT with BAD_OP).
 *
 * Everything here is synchronous and stateless: it runs inside piscina pool threads
 * (src/client/compress-pool.ts, src/node/codec-pool.ts) or inline for small values.
 */
import { deflateSync, inflateSync } from 'node:zlib';

export const ValueCodec = {
  RAW: 0,
  DEFLATE: 1,
} as const;
export type ValueCodecId = (typeof ValueCodec)[keyof typeof ValueCodec];

/** Bit mask of the codec ids this build can decode (for `ac`): bit c = codec c. */
export const VALUE_CODECS_KNOWN_MASK = 1 << ValueCodec.DEFLATE;
/** Largest codec id the stored format has room for (3 bits). */
export const VALUE_CODEC_ID_MAX = 7;

/** deflate level 1: the fastest; bench/compress-algos.ts shows what higher levels would add. */
const DEFLATE_LEVEL = 1;

export function isKnownValueCodec(codec: number): boolean {
  return codec === ValueCodec.RAW || (codec >= 1 && codec <= VALUE_CODEC_ID_MAX && (VALUE_CODECS_KNOWN_MASK & (1 << codec)) !== 0);
}

/** The value encoded with `codec` (not RAW). */
export function encodeValue(codec: number, value: Uint8Array): Uint8Array {
  if (codec === ValueCodec.DEFLATE) return deflateSync(value, { level: DEFLATE_LEVEL });
  throw new Error(`value codec ${codec} cannot encode`);
}

/** Thrown by decodeValue: the bytes do not decode with their codec. */
export class ValueCorruptError extends Error {
  readonly code = 'VALUE_CORRUPT';
}

/**
 * The plain bytes of a value stored with `codec`. `bytes_max` bounds the output (a small
 * corrupt or hostile value must not inflate into gigabytes). Throws ValueCorruptError.
 */
export function decodeValue(codec: number, bytes: Uint8Array, bytes_max: number): Uint8Array {
  if (codec === ValueCodec.RAW) return bytes;
  if (codec !== ValueCodec.DEFLATE) throw new ValueCorruptError(`unknown value codec ${codec}`);
  try {
    return inflateSync(bytes, { maxOutputLength: Math.max(1, bytes_max) });
  } catch (error) {
    throw new ValueCorruptError(`value does not decode (codec ${codec}): ${(error as Error).message}`);
  }
}

/**
 * Bytes of a value's start and middle a client looks at before compressing all of it. 1 KiB: the
 * sample runs on the caller's thread for every large PUT, at ~3 ns a byte (12.5 us for 4 KiB
 * measured here, which held random 4 KiB PUTs at 0.57x of compression off). Uniform random
 * bytes still show ~7.8 bits of entropy in 1,024 samples, well above the 7.5 limit.
 */
export const SAMPLE_BYTES = 1024;
/** Order-0 entropy (bits per byte) above which a sample is taken for incompressible. */
const SAMPLE_ENTROPY_BITS_MAX = 7.5;

/**
 * A cheap first look (~3 us for the 1 KiB sample): false when the value's bytes look like
 * random or already-compressed data (their byte histogram is nearly flat), so the pool is
 * not asked to compress what will not shrink. Values that pass are still stored raw when
 * compression saves less than an eighth (worthCompressed).
 */
export function looksCompressible(value: Uint8Array): boolean {
  const counts = SAMPLE_COUNTS;
  counts.fill(0);
  const half = SAMPLE_BYTES / 2;
  let sampled = 0;
  if (value.length <= SAMPLE_BYTES) {
    for (let i = 0; i < value.length; i++) counts[value[i]!]!++;
    sampled = value.length;
  } else {
    const middle = (value.length >>> 1) - (half >>> 1);
    for (let i = 0; i < half; i++) counts[value[i]!]!++;
    for (let i = middle; i < middle + half; i++) counts[value[i]!]!++;
    sampled = SAMPLE_BYTES;
  }
  if (sampled === 0) return false;
  // H = log2(n) - (sum of c log2 c) / n, with c log2 c from a table: no log per byte value.
  let sum = 0;
  for (let b = 0; b < 256; b++) sum += C_LOG2_C[counts[b]!]!;
  const entropy_bits = Math.log2(sampled) - sum / sampled;
  return entropy_bits < SAMPLE_ENTROPY_BITS_MAX;
}

/** The sample's byte histogram, reused: looksCompressible runs on the caller's thread for every large PUT. */
const SAMPLE_COUNTS = new Uint32Array(256);
/** c * log2(c) for c = 0..SAMPLE_BYTES (0 for c = 0). */
const C_LOG2_C = Float64Array.from({ length: SAMPLE_BYTES + 1 }, (_, c) => (c === 0 ? 0 : c * Math.log2(c)));

/** A value is stored compressed only if that saves at least an eighth of its size. */
export function worthCompressed(raw_bytes: number, encoded_bytes: number): boolean {
  return encoded_bytes <= raw_bytes - raw_bytes / 8;
}

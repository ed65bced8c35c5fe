/**
 * Writes RESP2 replies into one growing Buffer, so the replies to everything one socket read
 * asked for go out in one write. Values found by the workers are copied straight from the
 * request's sources into it (PendingRequest.copyValue): one copy per value.
 */
import type { PendingRequest } from '../../engine/pending-request.js';

const CRLF_BYTES = 2;
/** "$" or ":" or "*", up to 16 digits and a sign, CRLF. */
const HEADER_BYTES_MAX = 20;
const INITIAL_BYTES = 1024;
/** Simple strings and errors are one line: a CR or LF inside would end the reply early. */
const LINE_BREAKS = /[\r\n]/g;

export class ReplyWriter {
  private buffer: Buffer;
  private length = 0;

  constructor(initial_bytes = INITIAL_BYTES) {
    this.buffer = Buffer.allocUnsafe(initial_bytes);
  }

  get byte_length(): number {
    return this.length;
  }

  /** `+text` (a status reply). */
  simple(text: string): this {
    return this.line(0x2b, text);
  }

  /** `-text`: text starts with the error's kind (ERR, WRONGPASS, ...). */
  error(text: string): this {
    return this.line(0x2d, text);
  }

  integer(value: number): this {
    return this.line(0x3a, String(value));
  }

  /** `$len` then the bytes; a string is written as latin1, one byte per char (how args are read). */
  bulk(value: Uint8Array | string): this {
    const length = typeof value === 'string' ? Buffer.byteLength(value, 'latin1') : value.length;
    this.header(0x24, length);
    this.reserve(length + CRLF_BYTES);
    if (typeof value === 'string') this.buffer.write(value, this.length, 'latin1');
    else this.buffer.set(value, this.length);
    this.length += length;
    return this.crlf();
  }

  /** The value op `op_index` of `request` found, as a bulk string (after request.limitValues()). */
  bulkFromRequest(request: PendingRequest, op_index: number): this {
    const length = request.value_length[op_index]!;
    this.header(0x24, length);
    this.reserve(length + CRLF_BYTES);
    this.length += request.copyValue(op_index, this.buffer, this.length);
    return this.crlf();
  }

  /** `$-1`: a missing value. */
  nullBulk(): this {
    return this.line(0x24, '-1');
  }

  arrayHeader(count: number): this {
    return this.header(0x2a, count);
  }

  /** Bytes already in RESP form (a cached reply). */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  /** The replies written so far, as one Buffer; the writer starts empty again. */
  take(): Buffer {
    const out = this.buffer.subarray(0, this.length);
    this.buffer = Buffer.allocUnsafe(INITIAL_BYTES);
    this.length = 0;
    return out;
  }

  private header(type: number, count: number): this {
    this.reserve(HEADER_BYTES_MAX);
    this.buffer[this.length++] = type;
    this.length += this.buffer.write(String(count), this.length, 'latin1');
    return this.crlf();
  }

  private line(type: number, text: string): this {
    const safe = text.replace(LINE_BREAKS, ' ');
    const length = Buffer.byteLength(safe, 'latin1');
    this.reserve(1 + length + CRLF_BYTES);
    this.buffer[this.length++] = type;
    this.length += this.buffer.write(safe, this.length, 'latin1');
    return this.crlf();
  }

  private crlf(): this {
    this.reserve(CRLF_BYTES);
    this.buffer[this.length++] = 0x0d;
    this.buffer[this.length++] = 0x0a;
    return this;
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.length + bytes, this.buffer.length * 2));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

/** One reply, encoded now (for replies that never change, or that are known when read). */
export function encodeReply(write: (writer: ReplyWriter) => void): Buffer {
  const writer = new ReplyWriter(64);
  write(writer);
  return writer.take();
}

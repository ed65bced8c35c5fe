/**
 * A streaming, bounded RESP2 request parser: multibulk commands (`*N` then N `$len` bulk
 * strings) and inline commands (one line split on spaces, with Redis's quoting rules).
 *
 * Socket chunks are pushed in; next() returns one whole command at a time, or null until
 * more bytes arrive. Parsing resumes where it stopped (arguments already read are not read
 * again, and a line being searched for its end is not searched twice), so a client that
 * trickles a large command one byte at a time costs linear work, not quadratic.
 *
 * Every quantity a client chooses is capped, as Redis caps them, and breaking a cap is a
 * RespProtocolError, after which the connection answers `-ERR Protocol error: ...` and closes:
 * the byte stream can no longer be trusted to be in step. The caps: a bulk string's length
 * (the node's value_bytes_max), the argument count of one command, the length of an inline
 * command or of a length line, and the bytes of one whole command (the node's frame_bytes_max,
 * as one WebSocket frame). Before AUTH, when the node wants a token, the first two are cut to
 * Redis's unauthenticated limits (10 arguments, 16 KiB), so a stranger cannot make the node
 * hold megabytes.
 *
 * Whole commands in a chunk are returned as views of that chunk (no copy); only the tail of a
 * command cut by a read boundary is copied into a buffer of the parser's own. Arguments are
 * valid until the next push().
 */

const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;
const MINUS = 45;
const ZERO = 48;
const NINE = 57;
const EMPTY = Buffer.alloc(0);

/** Redis's PROTO_INLINE_MAX_SIZE: an inline command, or a `*N`/`$N` line, longer than this is refused. */
export const INLINE_BYTES_MAX = 64 * 1024;
/** Redis's limits before AUTH (networking.c): a stranger may send only small commands. */
export const UNAUTHENTICATED_ARGS_MAX = 10;
export const UNAUTHENTICATED_BULK_BYTES_MAX = 16 * 1024;
/** An owned buffer this small is kept for the next command cut by a read boundary. */
const SPARE_BYTES_MAX = 64 * 1024;
const OWNED_BYTES_MIN = 16 * 1024;
/** Decimal digits of a length: 15 keep it an exact JS number, and no limit is near 10^15. */
const LENGTH_DIGITS_MAX = 15;

export interface RespParserLimits {
  /** Longest bulk string: the node's value_bytes_max. */
  bulk_bytes_max: number;
  /** Most arguments in one multibulk command, the command name included. */
  args_max: number;
  /** Most bytes of one command, framing included: the node's frame_bytes_max. */
  command_bytes_max: number;
}

/** Malformed or over-limit input; the message follows "Protocol error: " in the reply. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespProtocolError';
  }
}

export class RespParser {
  /** False while the node wants AUTH and this client has not given it: smaller caps apply. */
  authenticated = true;
  private readonly limits: RespParserLimits;
  /** Holds the bytes [start, end): a socket chunk (not ours to write to) or a buffer we own. */
  private buffer: Buffer = EMPTY;
  private owned = false;
  private spare: Buffer | null = null;
  /** First byte of the command being parsed. */
  private start = 0;
  private end = 0;
  /** Inside a multibulk command: arguments still to read, where the next one starts, its length once read (-1 before). */
  private args_left = 0;
  private position = 0;
  private bulk_length = -1;
  /** Arguments read so far, as offsets from `start`, so moving the bytes keeps them right. */
  private readonly arg_starts: number[] = [];
  private readonly arg_lengths: number[] = [];
  /** A line end is searched for from here: bytes already searched are not searched again. */
  private scan_from = 0;
  /** Bytes from `start` the command needs at least (a bulk body's end); sizes the next buffer. */
  private bytes_wanted = 0;

  constructor(limits: RespParserLimits) {
    this.limits = limits;
  }

  /** True while part of a command is held, waiting for the rest. */
  get holds_partial(): boolean {
    return this.end > this.start;
  }

  /** Adds a chunk read from the socket. Arguments returned earlier are invalid from here on. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const held = this.end - this.start;
    if (held === 0) {
      this.buffer = chunk;
      this.owned = false;
      this.resetPositions(0, chunk.length);
      return;
    }
    if (this.owned && this.buffer.length - this.end >= chunk.length) {
      chunk.copy(this.buffer, this.end);
      this.end += chunk.length;
      return;
    }
    const needed = held + chunk.length;
    let target: Buffer;
    if (this.owned && this.buffer.length >= needed) {
      target = this.buffer;
      target.copyWithin(0, this.start, this.end);
    } else {
      const capacity = Math.max(needed, this.bytes_wanted, Math.min(held * 2, this.limits.command_bytes_max), OWNED_BYTES_MIN);
      target = this.spare !== null && this.spare.length >= capacity ? this.spare : Buffer.allocUnsafe(capacity);
      this.spare = null;
      this.buffer.copy(target, 0, this.start, this.end);
    }
    chunk.copy(target, held);
    const shift = this.start;
    this.buffer = target;
    this.owned = true;
    this.start = 0;
    this.end = needed;
    this.position -= shift;
    this.scan_from = Math.max(0, this.scan_from - shift);
  }

  /** The next whole command (its arguments, name first), or null until more bytes arrive. */
  next(): Buffer[] | null {
    for (;;) {
      if (this.args_left === 0) {
        if (this.start >= this.end) {
          this.release();
          return null;
        }
        if (this.buffer[this.start] !== STAR) {
          const inline = this.nextInline();
          if (inline === null) return null;
          if (inline.length === 0) continue;
          return inline;
        }
        if (!this.readMultibulkHeader()) return null;
        if (this.args_left === 0) continue;
      }
      return this.readArguments();
    }
  }

  /** Reads `*N\r\n`; false until the line is whole. A count of 0 or less is skipped, as Redis does. */
  private readMultibulkHeader(): boolean {
    const cr = this.findByte(CR, this.start + 1, 'too big mbulk count string');
    if (cr < 0 || cr + 1 >= this.end) return false;
    const count = parseLength(this.buffer, this.start + 1, cr);
    if (Number.isNaN(count) || this.buffer[cr + 1] !== LF || count > this.limits.args_max) throw new RespProtocolError('invalid multibulk length');
    if (!this.authenticated && count > UNAUTHENTICATED_ARGS_MAX) throw new RespProtocolError('unauthenticated multibulk length');
    this.position = cr + 2;
    this.scan_from = this.position;
    if (count <= 0) {
      this.start = this.position;
      return true;
    }
    this.args_left = count;
    this.bulk_length = -1;
    this.arg_starts.length = 0;
    this.arg_lengths.length = 0;
    return true;
  }

  /** Reads the `$len\r\n<bytes>\r\n` arguments of a multibulk command; null until all are here. */
  private readArguments(): Buffer[] | null {
    const buffer = this.buffer;
    while (this.args_left > 0) {
      if (this.bulk_length < 0) {
        const cr = this.findByte(CR, this.position, 'too big bulk count string');
        if (cr < 0 || cr + 1 >= this.end) return this.incomplete();
        if (buffer[this.position] !== DOLLAR) throw new RespProtocolError(`expected '$', got '${printable(buffer[this.position]!)}'`);
        const length = parseLength(buffer, this.position + 1, cr);
        if (Number.isNaN(length) || length < 0 || buffer[cr + 1] !== LF) throw new RespProtocolError('invalid bulk length');
        if (length > this.limits.bulk_bytes_max) {
          throw new RespProtocolError(`invalid bulk length ${length} (VALUE_TOO_LARGE: this node takes bulk strings of at most value_bytes_max = ${this.limits.bulk_bytes_max} bytes)`);
        }
        if (!this.authenticated && length > UNAUTHENTICATED_BULK_BYTES_MAX) throw new RespProtocolError('unauthenticated bulk length');
        this.position = cr + 2;
        this.scan_from = this.position;
        if (this.position + length + 2 - this.start > this.limits.command_bytes_max) this.tooLarge();
        this.bulk_length = length;
      }
      const length = this.bulk_length;
      if (this.end - this.position < length + 2) {
        this.bytes_wanted = this.position + length + 2 - this.start;
        return this.incomplete();
      }
      if (buffer[this.position + length] !== CR || buffer[this.position + length + 1] !== LF) {
        throw new RespProtocolError(`a bulk string of ${length} bytes is not followed by CRLF`);
      }
      this.arg_starts.push(this.position - this.start);
      this.arg_lengths.push(length);
      this.position += length + 2;
      this.scan_from = this.position;
      this.bulk_length = -1;
      this.args_left--;
    }
    const args: Buffer[] = new Array(this.arg_starts.length);
    for (let i = 0; i < args.length; i++) {
      const from = this.start + this.arg_starts[i]!;
      args[i] = buffer.subarray(from, from + this.arg_lengths[i]!);
    }
    this.start = this.position;
    this.bytes_wanted = 0;
    return args;
  }

  /** An inline command: one line, split on spaces. Null until the line is whole. */
  private nextInline(): Buffer[] | null {
    const lf = this.findByte(LF, this.start, 'too big inline request');
    if (lf < 0) return null;
    if (lf - this.start > INLINE_BYTES_MAX) throw new RespProtocolError('too big inline request');
    const line_end = lf > this.start && this.buffer[lf - 1] === CR ? lf - 1 : lf;
    const args = splitInlineArgs(this.buffer, this.start, line_end);
    if (args === null) throw new RespProtocolError('unbalanced quotes in request');
    this.start = lf + 1;
    this.scan_from = this.start;
    return args;
  }

  /** Checks the command held so far against command_bytes_max; returns null (wait for more). */
  private incomplete(): null {
    if (this.end - this.start > this.limits.command_bytes_max) this.tooLarge();
    return null;
  }

  private tooLarge(): never {
    throw new RespProtocolError(`a command may hold at most frame_bytes_max = ${this.limits.command_bytes_max} bytes`);
  }

  /**
   * Index of `byte` in [from, end), resuming a search that stopped earlier; -1 if absent. Past
   * INLINE_BYTES_MAX bytes without it, the line is refused with `too_long`.
   */
  private findByte(byte: number, from: number, too_long: string): number {
    const buffer = this.buffer;
    const end = this.end;
    for (let i = Math.max(from, this.scan_from); i < end; i++) {
      if (buffer[i] === byte) return i;
    }
    this.scan_from = end;
    if (end - from > INLINE_BYTES_MAX) throw new RespProtocolError(too_long);
    return -1;
  }

  /** Everything was read: drop the chunk (keep a small buffer of our own for the next partial command). */
  private release(): void {
    if (this.owned && this.buffer.length <= SPARE_BYTES_MAX) this.spare = this.buffer;
    this.buffer = EMPTY;
    this.owned = false;
    this.resetPositions(0, 0);
  }

  private resetPositions(start: number, end: number): void {
    this.start = start;
    this.end = end;
    this.position = start;
    this.scan_from = start;
    this.bytes_wanted = 0;
  }
}

/**
 * The decimal integer in bytes [from, to), as Redis's string2ll reads it: an optional minus,
 * then digits with no leading zero (but "0" itself). NaN for anything else.
 */
export function parseLength(bytes: Uint8Array, from: number, to: number): number {
  let i = from;
  const negative = i < to && bytes[i] === MINUS;
  if (negative) i++;
  const digits = to - i;
  if (digits <= 0 || digits > LENGTH_DIGITS_MAX) return NaN;
  if (bytes[i] === ZERO) return digits === 1 && !negative ? 0 : NaN;
  let value = 0;
  for (; i < to; i++) {
    const byte = bytes[i]!;
    if (byte < ZERO || byte > NINE) return NaN;
    value = value * 10 + (byte - ZERO);
  }
  return negative ? -value : value;
}

/** A byte as it may appear inside an error reply: printable ASCII, else \xHH. */
function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  return -1;
}

const ESCAPES: Readonly<Record<number, number>> = { 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x62: 0x08, 0x61: 0x07 };
const DOUBLE_QUOTE = 0x22;
const SINGLE_QUOTE = 0x27;
const BACKSLASH = 0x5c;

/**
 * Splits an inline command as Redis's sdssplitargs does: arguments separated by spaces;
 * "double quotes" with \n \r \t \b \a \xHH and \<char> escapes; 'single quotes' with \'.
 * A closing quote must be followed by a space or the end. Null for unbalanced quotes.
 */
export function splitInlineArgs(line: Buffer, from: number, to: number): Buffer[] | null {
  const args: Buffer[] = [];
  let p = from;
  for (;;) {
    while (p < to && isSpace(line[p]!)) p++;
    if (p >= to) return args;
    const first = line[p]!;
    if (first !== DOUBLE_QUOTE && first !== SINGLE_QUOTE) {
      // Plain argument: a view of the line, no copy. A quote inside one is an ordinary byte.
      const arg_start = p;
      while (p < to && !isSpace(line[p]!) && line[p] !== 0) p++;
      args.push(line.subarray(arg_start, p));
      if (p < to && line[p] === 0) p++;
      continue;
    }
    const bytes: number[] = [];
    p++;
    for (;;) {
      if (p >= to) return null;
      const byte = line[p]!;
      if (first === DOUBLE_QUOTE && byte === BACKSLASH && p + 3 < to && line[p + 1] === 0x78 && hexValue(line[p + 2]!) >= 0 && hexValue(line[p + 3]!) >= 0) {
        bytes.push(hexValue(line[p + 2]!) * 16 + hexValue(line[p + 3]!));
        p += 4;
      } else if (first === DOUBLE_QUOTE && byte === BACKSLASH && p + 1 < to) {
        const escaped = line[p + 1]!;
        bytes.push(ESCAPES[escaped] ?? escaped);
        p += 2;
      } else if (first === SINGLE_QUOTE && byte === BACKSLASH && p + 1 < to && line[p + 1] === SINGLE_QUOTE) {
        bytes.push(SINGLE_QUOTE);
        p += 2;
      } else if (byte === first) {
        p++;
        if (p < to && !isSpace(line[p]!)) return null;
        break;
      } else {
        bytes.push(byte);
        p++;
      }
    }
    args.push(Buffer.from(bytes));
  }
}

/**
 * A raw RESP load generator for Redis: commands are pre-encoded into pipelined chunks, and
 * replies are only counted, by a minimal streaming scanner (type byte, length, skip). That
 * keeps Node's own cost per op near a memcpy, so Redis, not the client, is what is measured.
 * Used where redis-benchmark cannot go: Zipfian keys, YCSB mixes, latency CDFs.
 */
import { Socket } from 'node:net';

/** One RESP array-of-bulk-strings command. */
export function encodeCommand(parts: readonly (string | Uint8Array)[]): Buffer {
  const chunks: Buffer[] = [Buffer.from(`*${parts.length}\r\n`)];
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : Buffer.from(part.buffer, part.byteOffset, part.length);
    chunks.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(chunks);
}

const CR = 13;
const LF = 10;

/**
 * Counts complete top-level replies in a RESP2 byte stream, across chunk boundaries. An
 * array reply counts once, when its last element has arrived. Nil bulk strings ($-1) and
 * errors (-…) are counted too, so a run can show misses instead of silently timing them.
 */
export class RespReplyCounter {
  replies = 0;
  nils = 0;
  errors = 0;
  /** Bytes of bulk payload (plus CRLF) still to skip. */
  private skip_bytes = 0;
  /** The header line being read: its type byte and the digits so far. */
  private in_header = false;
  private header_type = 0;
  private header_number = 0;
  private header_negative = false;
  /** Elements still expected by each open array, innermost last. */
  private readonly open_arrays: number[] = [];

  feed(chunk: Uint8Array): void {
    let i = 0;
    const length = chunk.length;
    while (i < length) {
      if (this.skip_bytes > 0) {
        const step = Math.min(this.skip_bytes, length - i);
        this.skip_bytes -= step;
        i += step;
        if (this.skip_bytes === 0) this.completeElement();
        continue;
      }
      if (!this.in_header) {
        this.in_header = true;
        this.header_type = chunk[i++]!;
        this.header_number = 0;
        this.header_negative = false;
        continue;
      }
      const byte = chunk[i++]!;
      if (byte === LF) {
        this.in_header = false;
        this.endHeader();
      } else if (byte >= 48 && byte <= 57) {
        this.header_number = this.header_number * 10 + (byte - 48);
      } else if (byte === 45) {
        this.header_negative = true;
      } else if (byte !== CR && this.header_type !== 43 && this.header_type !== 45 && this.header_type !== 58) {
        throw new Error(`unexpected byte ${byte} in a RESP header of type ${String.fromCharCode(this.header_type)}`);
      }
    }
  }

  private endHeader(): void {
    const type = this.header_type;
    if (type === 36 /* $ */) {
      if (this.header_negative) {
        this.nils++;
        this.completeElement();
      } else {
        this.skip_bytes = this.header_number + 2;
        if (this.skip_bytes === 0) this.completeElement();
      }
    } else if (type === 42 /* * */) {
      if (this.header_negative || this.header_number === 0) this.completeElement();
      else this.open_arrays.push(this.header_number);
    } else {
      if (type === 45 /* - */) this.errors++;
      this.completeElement();
    }
  }

  private completeElement(): void {
    while (this.open_arrays.length > 0) {
      const last = this.open_arrays.length - 1;
      this.open_arrays[last]!--;
      if (this.open_arrays[last]! > 0) return;
      this.open_arrays.pop();
    }
    this.replies++;
  }
}

export interface RespLoadOptions {
  host: string;
  port: number;
  connections: number;
  /** Chunks in flight per connection. */
  depth: number;
  /** Pre-encoded chunks; chunk i holds commands answered by replies_per_chunk[i] replies. */
  chunks: readonly Buffer[];
  replies_per_chunk: readonly number[];
  ops_per_chunk: readonly number[];
  deadline_ms: number;
  /** Called with each chunk's round-trip time in ms (latency mode: use depth 1). */
  onChunkDone?: (elapsed_ms: number) => void;
}

export interface LoadTotals {
  requests: number;
  ops: number;
  misses: number;
  errors: number;
}

function connectSocket(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.connect(port, host, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

async function driveConnection(options: RespLoadOptions, start_index: number, totals: LoadTotals): Promise<void> {
  const socket = await connectSocket(options.host, options.port);
  const counter = new RespReplyCounter();
  // Chunks in flight, oldest first: index into options.chunks and send time.
  const inflight: { index: number; sent_ms: number }[] = [];
  let next = start_index;
  let replies_needed = 0;
  const send = (): void => {
    const index = next++ % options.chunks.length;
    inflight.push({ index, sent_ms: performance.now() });
    socket.write(options.chunks[index]!);
  };
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('data', (data: Buffer) => {
      counter.feed(data);
      while (inflight.length > 0) {
        const head = inflight[0]!;
        if (replies_needed === 0) replies_needed = options.replies_per_chunk[head.index]!;
        if (counter.replies < replies_needed) return;
        counter.replies -= replies_needed;
        replies_needed = 0;
        inflight.shift();
        totals.requests++;
        totals.ops += options.ops_per_chunk[head.index]!;
        const now = performance.now();
        options.onChunkDone?.(now - head.sent_ms);
        if (now < options.deadline_ms) send();
        else if (inflight.length === 0) resolve();
      }
    });
    for (let d = 0; d < options.depth; d++) send();
  });
  totals.misses += counter.nils;
  totals.errors += counter.errors;
  socket.destroy();
}

/** Runs until the deadline; every connection finishes its in-flight chunks before returning. */
export async function runRespLoad(options: RespLoadOptions): Promise<LoadTotals> {
  const totals: LoadTotals = { requests: 0, ops: 0, misses: 0, errors: 0 };
  const stride = Math.max(1, Math.floor(options.chunks.length / options.connections));
  await Promise.all(Array.from({ length: options.connections }, (_, c) => driveConnection(options, c * stride, totals)));
  return totals;
}

/** One command, one reply, as text (for INFO, DBSIZE and the like; not for load). */
export async function redisCommand(host: string, port: number, parts: readonly string[]): Promise<string> {
  const socket = await connectSocket(host, port);
  const counter = new RespReplyCounter();
  const received: Buffer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (data: Buffer) => {
        received.push(data);
        counter.feed(data);
        if (counter.replies > 0) resolve();
      });
      socket.write(encodeCommand(parts));
    });
  } finally {
    socket.destroy();
  }
  const reply = Buffer.concat(received).toString('utf8');
  // Drop the RESP header line of a bulk string or integer reply.
  return reply.slice(reply.indexOf('\r\n') + 2).trimEnd() || reply.slice(1).trimEnd();
}

/** INFO fields as a name → value map. */
export async function redisInfo(host: string, port: number, section: string): Promise<Record<string, string>> {
  const text = await redisCommand(host, port, ['INFO', section]);
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/**
 * Raw-frame load for pikv: pre-encoded request frames over plain `ws` sockets, replies only
 * counted. Shows the server's own limit, with the client doing little more than memcpy and
 * WebSocket masking. The first reply of every connection is decoded to count misses and
 * per-op errors, so a run of GETs on absent keys cannot pass for a run of hits.
 */
import WebSocket from 'ws';
import { Status, WireCodec } from '../../src/index.js';
import type { LoadTotals } from './redis-resp.js';

export interface PikvRawOptions {
  url: string;
  connections: number;
  /** Requests in flight per connection. */
  depth: number;
  frames: readonly Buffer[];
  ops_per_frame: readonly number[];
  deadline_ms: number;
  onRequestDone?: (elapsed_ms: number) => void;
}

export function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

function countFailures(codec: WireCodec, data: Buffer, totals: LoadTotals): void {
  const response = codec.decodeResponse(data);
  if (!('status' in response)) {
    totals.errors++;
    return;
  }
  for (const status of response.status) {
    if (status === Status.NOT_FOUND) totals.misses++;
    else if (status !== Status.OK) totals.errors++;
  }
}

async function driveConnection(options: PikvRawOptions, start_index: number, totals: LoadTotals): Promise<void> {
  const socket = await openSocket(options.url);
  const codec = new WireCodec();
  // Frame index and send time of each request in flight, oldest first. Replies may overtake
  // each other, but every frame of a run has the same op count except in value sweeps with
  // one frame size, so the oldest is a fair attribution for counting and latency at depth 1.
  const inflight: { index: number; sent_ms: number }[] = [];
  let next = start_index;
  let checked = false;
  const send = (): void => {
    const index = next++ % options.frames.length;
    inflight.push({ index, sent_ms: performance.now() });
    socket.send(options.frames[index]!);
  };
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('message', (data: Buffer) => {
      if (!checked) {
        checked = true;
        countFailures(codec, data, totals);
      }
      const head = inflight.shift()!;
      totals.requests++;
      totals.ops += options.ops_per_frame[head.index]!;
      const now = performance.now();
      options.onRequestDone?.(now - head.sent_ms);
      if (now < options.deadline_ms) send();
      else if (inflight.length === 0) resolve();
    });
    for (let d = 0; d < options.depth; d++) send();
  });
  socket.close();
}

export async function runPikvRaw(options: PikvRawOptions): Promise<LoadTotals> {
  const totals: LoadTotals = { requests: 0, ops: 0, misses: 0, errors: 0 };
  const stride = Math.max(1, Math.floor(options.frames.length / options.connections));
  await Promise.all(Array.from({ length: options.connections }, (_, c) => driveConnection(options, c * stride, totals)));
  return totals;
}

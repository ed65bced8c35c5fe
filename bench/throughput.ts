/**
 * A quick pikv throughput probe: C connections, each keeping D requests of B ops in flight,
 * over K keys, for S seconds. Mode "raw" pre-encodes frames (the server's own limit); mode
 * "client" goes through the client library (what users run).
 *
 *   node dist/bench/throughput.js --url ws://127.0.0.1:7070 --op get --batch 1024 --keys 1000000
 *
 * Prints ops/s, and server CPU seconds per op when --server-pid is given.
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { connect, Op, WireCodec, type BatchOp } from '../src/index.js';
import { makeKey, makeValue, prng } from './lib/keys.js';
import { cpuSeconds } from './lib/proc.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:7070' },
    op: { type: 'string', default: 'get' },
    batch: { type: 'string', default: '1024' },
    keys: { type: 'string', default: '1000000' },
    'key-bytes': { type: 'string', default: '16' },
    'value-bytes': { type: 'string', default: '100' },
    connections: { type: 'string', default: '4' },
    depth: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '5' },
    mode: { type: 'string', default: 'raw' },
    'server-pid': { type: 'string' },
    preload: { type: 'boolean', default: false },
  },
});

const batch = Number(args.batch);
const key_count = Number(args.keys);
const key_bytes = Number(args['key-bytes']);
const value_bytes = Number(args['value-bytes']);
const connections = Number(args.connections);
const depth = Number(args.depth);
const seconds = Number(args.seconds);
const op_code = args.op === 'put' ? Op.PUT : Op.GET;
const server_pid = args['server-pid'] === undefined ? 0 : Number(args['server-pid']);
const value = makeValue(value_bytes, 1);
/** Pre-encoded frames per connection in raw mode (memory: FRAMES_MAX x batch x (key + value bytes)). */
const FRAMES_MAX = 1024;

/** A set of pre-encoded frames to cycle through, so encoding does not limit the raw mode. */
function makeFrames(count: number, seed: number): Buffer[] {
  const codec = new WireCodec();
  const random = prng(seed);
  const frames: Buffer[] = [];
  for (let f = 0; f < count; f++) {
    const keys = Buffer.allocUnsafe(batch * key_bytes);
    const is_put = op_code === Op.PUT;
    for (let i = 0; i < batch; i++) makeKey(Math.floor(random() * key_count), key_bytes).copy(keys, i * key_bytes);
    frames.push(codec.encodeRequest({
      id: f,
      op: new Uint8Array(batch).fill(op_code),
      key_lengths: new Uint32Array(batch).fill(key_bytes),
      value_lengths: new Uint32Array(batch).fill(is_put ? value_bytes : 0),
      keys,
      values: is_put ? Buffer.concat(Array.from({ length: batch }, () => value)) : Buffer.alloc(0),
    }));
  }
  return frames;
}

async function preload(): Promise<void> {
  const kv = await connect(args.url!);
  const chunk = 8192;
  const pending: Promise<unknown>[] = [];
  for (let start = 0; start < key_count; start += chunk) {
    const ops = [];
    for (let i = start; i < Math.min(key_count, start + chunk); i++) ops.push({ op: 'put' as const, key: makeKey(i, key_bytes), value });
    pending.push(kv.batch(ops));
    if (pending.length >= 8) await pending.shift();
  }
  await Promise.all(pending);
  await kv.close();
}

async function runRaw(deadline_ms: number): Promise<number> {
  let ops = 0;
  const workers = Array.from({ length: connections }, async (_, c) => {
    // Enough distinct frames that the keys touched cover the whole key space, not a cached subset.
    const frames = makeFrames(Math.min(FRAMES_MAX, Math.ceil(key_count / batch)), c + 1);
    const socket = new WebSocket(args.url!, { perMessageDeflate: false });
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    let sent = 0;
    await new Promise<void>((resolve) => {
      const sendNext = (): void => {
        socket.send(frames[sent++ % frames.length]!);
      };
      socket.on('message', () => {
        ops += batch;
        if (performance.now() < deadline_ms) sendNext();
        else if (--inflight === 0) resolve();
      });
      let inflight = depth;
      for (let d = 0; d < depth; d++) sendNext();
    });
    socket.close();
  });
  await Promise.all(workers);
  return ops;
}

/** Pre-built op lists for client mode, so the probe measures the library, not key formatting. */
function makeOpLists(count: number, seed: number): BatchOp[][] {
  const random = prng(seed);
  const lists: BatchOp[][] = [];
  for (let l = 0; l < count; l++) {
    const list: BatchOp[] = [];
    for (let i = 0; i < batch; i++) {
      const key = makeKey(Math.floor(random() * key_count), key_bytes);
      list.push(op_code === Op.PUT ? { op: 'put', key, value } : { op: 'get', key });
    }
    lists.push(list);
  }
  return lists;
}

async function runClient(deadline_ms: number): Promise<number> {
  let ops = 0;
  const workers = Array.from({ length: connections }, async (_, c) => {
    const lists = makeOpLists(Math.min(FRAMES_MAX, Math.ceil(key_count / batch)), c + 1);
    const kv = await connect(args.url!);
    let next = 0;
    const loop = async (): Promise<void> => {
      while (performance.now() < deadline_ms) {
        await kv.batch(lists[next++ % lists.length]!);
        ops += batch;
      }
    };
    await Promise.all(Array.from({ length: depth }, loop));
    await kv.close();
  });
  await Promise.all(workers);
  return ops;
}

async function main(): Promise<void> {
  if (args.preload) await preload();
  const cpu_before = server_pid ? cpuSeconds(server_pid) : 0;
  const client_before = process.cpuUsage();
  const started_ms = performance.now();
  const deadline_ms = started_ms + seconds * 1000;
  const ops = args.mode === 'client' ? await runClient(deadline_ms) : await runRaw(deadline_ms);
  const elapsed_s = (performance.now() - started_ms) / 1000;
  const client_cpu = process.cpuUsage(client_before);
  const server_cpu_s = server_pid ? cpuSeconds(server_pid) - cpu_before : 0;
  const result = {
    mode: args.mode, op: args.op, batch, connections, depth, keys: key_count,
    ops_per_s: Math.round(ops / elapsed_s),
    server_cpu_s: Number(server_cpu_s.toFixed(2)),
    server_us_per_op: server_pid ? Number(((server_cpu_s * 1e6) / ops).toFixed(3)) : null,
    client_cpu_s: Number(((client_cpu.user + client_cpu.system) / 1e6).toFixed(2)),
    elapsed_s: Number(elapsed_s.toFixed(2)),
  };
  console.log(JSON.stringify(result));
}

await main();

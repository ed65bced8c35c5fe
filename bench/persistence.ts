/**
 * Persistence bench: write throughput under each fsync policy (and without persistence),
 * bytes written to disk per op, and recovery time of 1M keys.
 *
 *   npm run bench:persistence -- [--seconds 3] [--recovery-keys 1000000] [--dir /tmp] [--policies off,no,everysec,always]
 *
 * Each run starts its own `pikv serve --workers 2` on a loopback port with a fresh data
 * directory, sends pre-encoded frames of 1000 PUTs (16 B keys, 100 B values) with 8 requests
 * in flight over one connection, and stops the server by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { connect, Op, WireCodec } from '../src/index.js';

/** PIKV_CLI: another build's dist/src/cli/main.js, to compare (e.g. the no-persistence path before a change). */
const CLI = process.env['PIKV_CLI'] ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const BATCH_OPS = 1000;
const INFLIGHT = 8;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    'recovery-keys': { type: 'string', default: '1000000' },
    dir: { type: 'string', default: tmpdir() },
    policies: { type: 'string', default: 'off,no,everysec,always' },
  },
});

interface Server {
  child: ChildProcess;
  url: string;
  output: () => string;
}

async function startServer(extra: string[]): Promise<Server> {
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', 'off', '--workers', '2', '--max-memory', '1gb', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start: ${output}`)), 60_000);
    const poll = setInterval(() => {
      const match = /listening on (ws:\/\/\S+)/.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(match[1]!);
      }
    }, 20);
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${output}`)));
  });
  return { child, url, output: () => output };
}

async function stopServer(server: Server, signal: NodeJS.Signals): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  process.kill(server.child.pid!, signal);
  await exited;
}

/** Frames of BATCH_OPS puts over keys [first, first + count). */
function putFrames(codec: WireCodec, first: number, count: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let start = 0; start < count; start += BATCH_OPS) {
    const n = Math.min(BATCH_OPS, count - start);
    const keys = Buffer.alloc(n * KEY_BYTES);
    for (let i = 0; i < n; i++) keys.write(`key:${String(first + start + i).padStart(KEY_BYTES - 4, '0')}`, i * KEY_BYTES, 'latin1');
    frames.push(codec.encodeRequest({
      id: frames.length + 1, op: new Uint8Array(n).fill(Op.PUT), key_lengths: new Uint32Array(n).fill(KEY_BYTES),
      value_lengths: new Uint32Array(n).fill(VALUE_BYTES), keys, values: Buffer.alloc(n * VALUE_BYTES, 0x76),
    }));
  }
  return frames;
}

/** Sends frames round-robin with INFLIGHT outstanding until `deadline_ms` or all sent; returns ops acknowledged. */
async function drive(url: string, frames: Buffer[], deadline_ms: number, loop: boolean): Promise<number> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let next = 0;
  let outstanding = 0;
  let acknowledged = 0;
  await new Promise<void>((resolve) => {
    const send = (): void => {
      while (outstanding < INFLIGHT && Date.now() < deadline_ms && (loop || next < frames.length)) {
        socket.send(frames[next % frames.length]!);
        next++;
        outstanding++;
      }
      if (outstanding === 0) resolve();
    };
    socket.on('message', () => {
      outstanding--;
      acknowledged += BATCH_OPS;
      send();
    });
    send();
  });
  socket.close();
  return acknowledged;
}

async function diskStats(url: string): Promise<{ bytes_per_op: number; bytes_per_payload_byte: number; disk_bytes: number }> {
  const kv = await connect(url);
  const stats = (await kv.stats()) as unknown as { per_worker: { disk_bytes_written: number; logged_ops: number; disk_bytes: number; disk_bytes_per_payload_byte: number }[] };
  await kv.close();
  const written = stats.per_worker.reduce((sum, w) => sum + w.disk_bytes_written, 0);
  const ops = stats.per_worker.reduce((sum, w) => sum + w.logged_ops, 0);
  const disk_bytes = stats.per_worker.reduce((sum, w) => sum + w.disk_bytes, 0);
  return { bytes_per_op: ops > 0 ? written / ops : 0, bytes_per_payload_byte: ops > 0 ? written / ops / (KEY_BYTES + VALUE_BYTES) : 0, disk_bytes };
}

async function throughput(policy: string, seconds: number): Promise<void> {
  const dir = mkdtempSync(join(args.dir!, 'pikv-bench-'));
  const server = await startServer(policy === 'off' ? [] : ['--data-dir', dir, '--fsync', policy]);
  try {
    const codec = new WireCodec();
    const frames = putFrames(codec, 0, 200_000);
    await drive(server.url, frames, Date.now() + 500, true); // warm-up
    const started_ms = Date.now();
    const ops = await drive(server.url, frames, started_ms + seconds * 1000, true);
    const elapsed_s = (Date.now() - started_ms) / 1000;
    const disk = await diskStats(server.url);
    const per_op = policy === 'off' ? '-' : disk.bytes_per_op.toFixed(1);
    const per_payload = policy === 'off' ? '-' : disk.bytes_per_payload_byte.toFixed(2);
    console.log(`| ${policy.padEnd(8)} | ${Math.round(ops / elapsed_s).toLocaleString('en-US').padStart(10)} | ${per_op.padStart(6)} | ${per_payload.padStart(5)} |`);
  } finally {
    await stopServer(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function recovery(keys: number): Promise<void> {
  const dir = mkdtempSync(join(args.dir!, 'pikv-bench-'));
  try {
    const writer = await startServer(['--data-dir', dir, '--fsync', 'no']);
    const codec = new WireCodec();
    const written = await drive(writer.url, putFrames(codec, 0, keys), Date.now() + 600_000, false);
    const disk = await diskStats(writer.url);
    await stopServer(writer, 'SIGKILL');
    const reader = await startServer(['--data-dir', dir]);
    const line = /recovered (\d+) keys in (\d+) ms[^\n]*/.exec(reader.output());
    console.log(`recovery: wrote ${written} puts (${(disk.disk_bytes / 1024 / 1024).toFixed(1)} MiB on disk), kill -9, restart: ${line?.[0] ?? reader.output()}`);
    await stopServer(reader, 'SIGTERM');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const seconds = Number(args.seconds);
console.log(`write throughput: 1 connection, ${INFLIGHT} x ${BATCH_OPS}-op PUT frames in flight, ${KEY_BYTES} B keys, ${VALUE_BYTES} B values, 2 workers, ${seconds} s each`);
console.log('| fsync    |      ops/s | disk B/op | B per payload B |');
console.log('|---|---:|---:|---:|');
const policies = args.policies!.split(',');
for (const policy of policies) await throughput(policy, seconds);
if (Number(args['recovery-keys']) > 0) await recovery(Number(args['recovery-keys']));

/**
 * The cluster bench's load generator. bench/cluster.ts starts it inside the client network
 * namespace (`ip netns exec <ns> node cluster-loadgen.js`) and drives it with one JSON
 * command per stdin line; it answers one JSON line per command on stdout (and a
 * `{"event":"start"}` line right before a timed run's clock starts, so the parent can snapshot
 * the nodes' CPU).
 *
 * Two ways to reach the cluster, both with pre-encoded frames over plain `ws` (the
 * `pikv-raw` driver of the single-node bench, extended):
 * - direct: the raw ring-aware mode. The view is read with RING, the same HashRing as
 *   `connectCluster` is built, and every logical batch is split by owner into one frame per
 *   node carrying the view's epoch (`re`), before the clock starts. A "lane" holds one socket
 *   per node and keeps `depth` logical batches in flight; a logical batch completes when every
 *   node has answered its part (as `connectCluster.batch()` would).
 * - entry: every frame, without `re`, goes to one entry node, which forwards the ops it does
 *   not own to their owners (docs/CLUSTER.md, Routing).
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { connect } from '../../src/client/client.js';
import { HashRing } from '../../src/routing/ring.js';
import { checkView, type ClusterView } from '../../src/routing/view.js';
import { WireCodec } from '../../src/protocol/codec.js';
import { Op, Status } from '../../src/protocol/constants.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../../src/routing/murmur3.js';
import { makeTextValue, prng } from './keys.js';
import { keyOf, type KeySpec } from './ycsb.js';

export type Workload = 'get' | 'put' | 'mix';
export type Mode = 'direct' | 'entry';

export interface RunCommand {
  cmd: 'run';
  mode: Mode;
  /** Every node's URL (direct) or [entry URL] (entry). */
  urls: string[];
  workload: Workload;
  keys: number;
  key_bytes: number;
  value_bytes: number;
  prefix?: string;
  batch_ops: number;
  batch_count: number;
  lanes: number;
  depth: number;
  seconds: number;
  seed: number;
}

export interface LoadCommand {
  cmd: 'load';
  urls: string[];
  keys: number;
  key_bytes: number;
  value_bytes: number;
  prefix?: string;
  batch_ops: number;
}

export interface WaitCommand {
  cmd: 'wait';
  urls: string[];
  ids: string[];
  timeout_ms: number;
}

export type Command = RunCommand | LoadCommand | WaitCommand | { cmd: 'quit' };

export interface RunTotals {
  ops: number;
  batches: number;
  frames: number;
  wall_s: number;
  client_cpu_s: number;
  misses: number;
  errors: number;
  /** Status names of the errors seen in checked replies, with counts. */
  error_codes: Record<string, number>;
  /** Frames answered per node URL. */
  frames_per_url: Record<string, number>;
}

const codec = new WireCodec();

async function readRing(url: string): Promise<ClusterView> {
  const client = await connect(url, { connect_timeout_ms: 2_000, request_timeout_ms: 2_000 });
  try {
    const reply = await client.batchColumns({ op: Uint8Array.of(Op.RING), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
    if (reply.status[0] !== Status.OK) throw new Error(`RING on ${url}: status ${reply.status[0]}`);
    return checkView(codec.decodeValue(reply.values));
  } finally {
    await client.close();
  }
}

/** Until every node at `urls` shows the same settled view of exactly `ids`. */
async function waitForMembers(command: WaitCommand): Promise<ClusterView> {
  const deadline_ms = Date.now() + command.timeout_ms;
  const wanted = [...command.ids].sort().join(',');
  let views: (ClusterView | null)[] = [];
  for (;;) {
    views = await Promise.all(command.urls.map((url) => readRing(url).catch(() => null)));
    const settled = views.every((view) => view !== null && view.next === undefined && view.nodes.map((n) => n.id).sort().join(',') === wanted);
    if (settled && new Set(views.map((view) => view!.epoch)).size === 1) return views[0]!;
    if (Date.now() > deadline_ms) throw new Error(`views did not settle on ${wanted}: ${JSON.stringify(views)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Part {
  /** Index into the lane's sockets. */
  target: number;
  frame: Buffer;
}

interface LogicalBatch {
  ops: number;
  parts: Part[];
}

/** Splits ops over owners (direct) or keeps them whole (entry) and encodes the frames. */
function encodeBatches(ops_list: Uint8Array[], key_list: Uint32Array[], spec: KeySpec, value: Buffer, route: ((key: Buffer) => number) | null, targets: number, epoch: number | undefined): LogicalBatch[] {
  let id = 0;
  return ops_list.map((ops, b) => {
    const key_indices = key_list[b]!;
    const groups: number[][] = Array.from({ length: targets }, () => []);
    const keys = Array.from(key_indices, (index) => keyOf(index, spec));
    keys.forEach((key, i) => groups[route === null ? 0 : route(key)]!.push(i));
    const parts: Part[] = [];
    groups.forEach((members, target) => {
      if (members.length === 0) return;
      let puts = 0;
      for (const i of members) if (ops[i] === Op.PUT) puts++;
      const key_buffer = Buffer.allocUnsafe(members.length * spec.key_bytes);
      const values = Buffer.allocUnsafe(puts * value.length);
      const value_lengths = new Uint32Array(members.length);
      const op = new Uint8Array(members.length);
      let value_offset = 0;
      members.forEach((i, j) => {
        op[j] = ops[i]!;
        keys[i]!.copy(key_buffer, j * spec.key_bytes);
        if (ops[i] === Op.PUT) {
          value.copy(values, value_offset);
          value_offset += value.length;
          value_lengths[j] = value.length;
        }
      });
      const frame = codec.encodeRequest({ id: id++ % 1_000_000, op, key_lengths: new Uint32Array(members.length).fill(spec.key_bytes), value_lengths, keys: key_buffer, values, ring_epoch: epoch });
      parts.push({ target, frame });
    });
    return { ops: ops.length, parts };
  });
}

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

interface DriveOptions {
  urls: string[];
  batches: LogicalBatch[];
  lanes: number;
  depth: number;
  /** Stop sending after this long; with null, send every batch exactly once (a load). */
  duration_ms: number | null;
  onStart?: () => void;
}

/** Replies checked per socket: the first, then every CHECK_EVERY-th. */
const CHECK_EVERY = 64;

async function drive(options: DriveOptions): Promise<RunTotals> {
  const totals: RunTotals = { ops: 0, batches: 0, frames: 0, wall_s: 0, client_cpu_s: 0, misses: 0, errors: 0, error_codes: {}, frames_per_url: {} };
  for (const url of options.urls) totals.frames_per_url[url] = 0;
  const lanes = await Promise.all(Array.from({ length: options.lanes }, () => Promise.all(options.urls.map((url) => openSocket(url)))));
  const count = options.batches.length;
  let next_once = 0;
  const once = options.duration_ms === null;
  const cpu_start = process.cpuUsage();
  options.onStart?.();
  const started_ms = performance.now();
  const deadline_ms = options.duration_ms === null ? Infinity : started_ms + options.duration_ms;
  await Promise.all(lanes.map((sockets, lane) => new Promise<void>((resolve, reject) => {
    let inflight = 0;
    let next = Math.floor((lane * count) / options.lanes);
    const fifos: { slot: { remaining: number; ops: number } }[][] = sockets.map(() => []);
    const seen = sockets.map(() => 0);
    const start = (): boolean => {
      let index: number;
      if (once) {
        if (next_once >= count) return false;
        index = next_once++;
      } else {
        if (performance.now() >= deadline_ms) return false;
        index = next++ % count;
      }
      const batch = options.batches[index]!;
      const slot = { remaining: batch.parts.length, ops: batch.ops };
      for (const part of batch.parts) {
        fifos[part.target]!.push({ slot });
        sockets[part.target]!.send(part.frame);
      }
      inflight++;
      return true;
    };
    sockets.forEach((socket, target) => {
      socket.on('error', reject);
      socket.on('message', (data: Buffer) => {
        const n = seen[target]!++;
        totals.frames++;
        totals.frames_per_url[options.urls[target]!]!++;
        if (n % CHECK_EVERY === 0) {
          const response = codec.decodeResponse(data);
          if (!('status' in response)) {
            totals.errors++;
            totals.error_codes[response.code] = (totals.error_codes[response.code] ?? 0) + 1;
          } else {
            for (const status of response.status) {
              if (status === Status.NOT_FOUND) totals.misses++;
              else if (status !== Status.OK) {
                totals.errors++;
                totals.error_codes[String(status)] = (totals.error_codes[String(status)] ?? 0) + 1;
              }
            }
          }
        }
        const { slot } = fifos[target]!.shift()!;
        if (--slot.remaining > 0) return;
        inflight--;
        totals.batches++;
        totals.ops += slot.ops;
        if (!start() && inflight === 0) resolve();
      });
    });
    for (let d = 0; d < options.depth; d++) if (!start()) break;
    if (inflight === 0) resolve();
  })));
  totals.wall_s = (performance.now() - started_ms) / 1000;
  const cpu = process.cpuUsage(cpu_start);
  totals.client_cpu_s = (cpu.user + cpu.system) / 1e6;
  for (const sockets of lanes) for (const socket of sockets) socket.close();
  return totals;
}

/** Routing for direct mode: owner index (into `urls`) of a key, from the view of urls[0]. */
async function ringRoute(urls: string[]): Promise<{ route: (key: Buffer) => number; epoch: number; urls: string[] }> {
  const view = await readRing(urls[0]!);
  const ring = new HashRing(view.nodes);
  const node_urls = ring.nodes.map((node) => node.url);
  const owner_to_target = ring.nodes.map((node) => node_urls.indexOf(node.url));
  return { route: (key) => owner_to_target[ring.ownerIndex(murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED))]!, epoch: view.epoch, urls: node_urls };
}

async function load(command: LoadCommand): Promise<RunTotals> {
  const { route, epoch, urls } = await ringRoute(command.urls);
  const spec: KeySpec = { key_bytes: command.key_bytes, ...(command.prefix ? { prefix: command.prefix } : {}) };
  const ops_list: Uint8Array[] = [];
  const key_list: Uint32Array[] = [];
  for (let start = 0; start < command.keys; start += command.batch_ops) {
    const n = Math.min(command.batch_ops, command.keys - start);
    ops_list.push(new Uint8Array(n).fill(Op.PUT));
    key_list.push(Uint32Array.from({ length: n }, (_, i) => start + i));
  }
  const value = makeTextValue(command.value_bytes, 7);
  const batches = encodeBatches(ops_list, key_list, spec, value, route, urls.length, epoch);
  return drive({ urls, batches, lanes: 1, depth: 4, duration_ms: null });
}

async function run(command: RunCommand): Promise<RunTotals> {
  const spec: KeySpec = { key_bytes: command.key_bytes, ...(command.prefix ? { prefix: command.prefix } : {}) };
  const random = prng(command.seed ^ 0x5bd1e995);
  const read_share = command.workload === 'get' ? 1 : command.workload === 'put' ? 0 : 0.95;
  const ops_list: Uint8Array[] = [];
  const key_list: Uint32Array[] = [];
  for (let b = 0; b < command.batch_count; b++) {
    const ops = new Uint8Array(command.batch_ops);
    const keys = new Uint32Array(command.batch_ops);
    for (let i = 0; i < command.batch_ops; i++) {
      ops[i] = read_share >= 1 || (read_share > 0 && random() < read_share) ? Op.GET : Op.PUT;
      keys[i] = Math.floor(random() * command.keys);
    }
    ops_list.push(ops);
    key_list.push(keys);
  }
  const value = makeTextValue(command.value_bytes, 11);
  let batches: LogicalBatch[];
  let urls: string[];
  if (command.mode === 'direct') {
    const ring = await ringRoute(command.urls);
    urls = ring.urls;
    batches = encodeBatches(ops_list, key_list, spec, value, ring.route, urls.length, ring.epoch);
  } else {
    urls = [command.urls[0]!];
    batches = encodeBatches(ops_list, key_list, spec, value, null, 1, undefined);
  }
  return drive({ urls, batches, lanes: command.lanes, depth: command.depth, duration_ms: command.seconds * 1000, onStart: () => reply({ event: 'start' }) });
}

function reply(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const command = JSON.parse(line) as Command;
    try {
      if (command.cmd === 'quit') break;
      if (command.cmd === 'wait') reply({ ok: true, view: await waitForMembers(command) });
      else if (command.cmd === 'load') reply({ ok: true, totals: await load(command) });
      else if (command.cmd === 'run') reply({ ok: true, totals: await run(command) });
      else reply({ ok: false, error: `unknown command ${JSON.stringify(command)}` });
    } catch (error) {
      reply({ ok: false, error: (error as Error).stack ?? String(error) });
    }
  }
  process.exit(0);
}

// Only when started as the load generator (the test runner or an import must not block on stdin).
if (process.argv[2] === '--loadgen') void main();

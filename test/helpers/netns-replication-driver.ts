/**
 * Runs inside the client network namespace of test/replication-netns.test.ts (started with
 * `ip netns exec`), in one of these modes. Every mode prints JSON lines on stdout, each with
 * the wall-clock times (Date.now(), the same clock as the test process: one machine) at which
 * an op was sent (t0) and answered (t1), so the test can check every acknowledged write and
 * every read afterwards (lost writes, stale reads, acknowledgements after a lease fence).
 *
 *   health <etcd client url> <timeout ms>
 *       exits 0 once etcd's /health answers true, 1 after the timeout.
 *   writer <name> <aware|plain> <keys> <read names, e.g. a,i,m> <url>...
 *       ring-aware (connectCluster over every url) or plain (connect to the first url).
 *       One loop writes `<name><i>`, i < keys, 20 keys a round, value = the round number,
 *       and prints {type:'w', n, r, t0, t1, k:[i...], c:[code...]} per batch; another loop
 *       reads 20 keys a round sampled from the key spaces of the writers named in <read names>
 *       and prints {type:'r', n, t0, t1, k:[key...], c:[code...], v:[value|null...]}.
 *       A plain writer first writes 40 "fence keys" its node is primary of, then reads only
 *       those in eight more lanes, one key per request, and in four more lanes the other
 *       writers' keys its node is primary of (see writer()).
 *       On "stop" on stdin every loop finishes its op in flight; then {type:'done'}.
 *   probe <name> <id> <count> <url>...
 *       reads the view, picks <count> keys whose primary is node <id> and <count> others, waits
 *       for "go" on stdin, then writes all of them (ring-aware) round after round until one
 *       round is acknowledged whole: {type:'w', ...} per round, then {type:'probe-ok', t}.
 *   monitor <url>...
 *       every 50 ms reads each node's view (RING) and status (CLUSTER_STATUS): prints
 *       {type:'view', t, url, epoch, nodes, down, next} when a node's epoch changes and
 *       {type:'serving', t, url, serving} / {type:'controller', t, url, controller} when its etcd
 *       serving gate / controller role changes. Runs until killed.
 *   final <name> <spec> <aware|plain> <url>...
 *       <spec> is `name:count,...` (keys name0..) or `name:k1|k2|...` (those keys); reads every
 *       key through a ring-aware client over <url>... or a plain one connected to the first,
 *       retrying while any answer is not OK or NOT_FOUND (20 s at most), and prints
 *       {type:'r', n:<name>, ...} lines, then {type:'done'}.
 */
import { connect, connectCluster, Op, Status, WireCodec, type BatchOp, type OpResult, type PikvClient } from '../../src/index.js';
import { statusName } from '../../src/protocol/errors.js';
import { etcdHealthy } from '../../src/cluster/etcd/local-server.js';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../../src/routing/murmur3.js';
import { Placement } from '../../src/routing/placement.js';
import { HashRing } from '../../src/routing/ring.js';
import type { ClusterView } from '../../src/routing/view.js';

const [mode, ...args] = process.argv.slice(2);
// `node --test dist/test/` also runs this file, with no arguments: nothing to do then.
if (mode === undefined) process.exit(0);

const ROUND_KEYS = 20;
const REQUEST_TIMEOUT_MS = 3_000;
const codec = new WireCodec();
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const emit = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

interface Batcher {
  batch(ops: readonly BatchOp[]): Promise<OpResult[]>;
  close(): Promise<void>;
}

/** Resolves on the first stdin line containing `word`. */
function onStdin(word: string): Promise<void> {
  return new Promise((resolve) => {
    let text = '';
    process.stdin.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes(word)) resolve();
    });
  });
}

async function timed(client: Batcher, ops: BatchOp[]): Promise<{ t0: number; t1: number; results: OpResult[] }> {
  const t0 = Date.now();
  const results = await client.batch(ops).catch((error: { code?: OpResult['code'] }) => ops.map((): OpResult => ({ code: error.code ?? 'CONNECTION_LOST' })));
  return { t0, t1: Date.now(), results };
}

function valueOf(result: OpResult): string | null {
  return result.code === 'OK' && result.value !== undefined ? Buffer.from(result.value).toString() : null;
}

class Refused extends Error {}

/** One control op (RING, CLUSTER_STATUS); throws Refused with the status's name if it is not OK. */
async function askNode(client: PikvClient, op: number): Promise<unknown> {
  const reply = await client.batchColumns({ op: Uint8Array.of(op), key_lengths: new Uint32Array(1), value_lengths: new Uint32Array(1), keys: new Uint8Array(0), values: new Uint8Array(0) });
  if (reply.status[0] !== Status.OK) throw new Refused(statusName(reply.status[0]!));
  return codec.decodeValue(reply.values);
}

/** The view, from the first of `urls` that answers RING with OK (retrying for up to 10 s). */
async function readView(urls: string[]): Promise<{ url: string; view: ClusterView }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const url of urls) {
      const client = await connect(url, { request_timeout_ms: 2_000, connect_timeout_ms: 2_000 }).catch(() => null);
      if (client === null) continue;
      try {
        return { url, view: (await askNode(client, Op.RING)) as ClusterView };
      } catch {
        // next
      } finally {
        await client.close().catch(() => undefined);
      }
    }
    if (Date.now() > deadline) throw new Error(`no view from ${urls.join(',')}`);
    await delay(100);
  }
}

function placementOf(view: ClusterView): Placement {
  return new Placement(new HashRing(view.nodes), view.replicas ?? 1, new Set(view.down ?? []));
}

function hashOf(key: string): number {
  const bytes = Buffer.from(key);
  return murmur3_x86_32(bytes, 0, bytes.length, KEY_HASH_SEED);
}

async function health(url: string, timeout_ms: number): Promise<void> {
  const deadline = Date.now() + timeout_ms;
  while (!(await etcdHealthy(url))) {
    if (Date.now() > deadline) process.exit(1);
    await delay(50);
  }
  process.exit(0);
}

/** Keys of `names`' key spaces (`<name><i>`, i < keys) whose primary in `view` is node `id`. */
function keysOn(view: ClusterView, id: string, names: string[], keys: number): string[] {
  const placement = placementOf(view);
  const found: string[] = [];
  for (const name of names) for (let i = 0; i < keys; i++) if (placement.primaryOf(hashOf(`${name}${i}`))?.id === id) found.push(`${name}${i}`);
  return found;
}

async function writer(name: string, kind: string, keys: number, read_names: string[], urls: string[]): Promise<void> {
  const client: Batcher = kind === 'aware'
    ? await connectCluster(urls, { request_timeout_ms: REQUEST_TIMEOUT_MS, connect_timeout_ms: 2_000 })
    : await connect(urls[0]!, { request_timeout_ms: REQUEST_TIMEOUT_MS, connect_timeout_ms: 2_000 });
  // A plain client also writes, once, 40 "fence keys" (`<name>f<i>`) whose primary in the view
  // at start is the node it is connected to, and then only reads them, one key per request in
  // eight lanes: nobody writes them again, so the node answers those reads itself (no
  // forwarding, never held behind an uncommitted write) until it stops serving, and their
  // answers show exactly when that is.
  // It also reads, one key per request in four more lanes, the other writers' keys its node is
  // the primary of (in the view at start): a node that went on serving them after its fence
  // would return values the new primary has since overwritten (stale reads).
  let fence: string[] = [];
  let owned: string[] = [];
  if (kind === 'plain') {
    const { view } = await readView([urls[0]!]);
    const self = view.nodes.find((n) => n.url === urls[0])!.id;
    owned = keysOn(view, self, read_names.filter((n) => n !== name), keys);
    const fence_name = `${name}f`;
    fence = keysOn(view, self, [fence_name], 2_000).slice(0, 40);
    for (let round = 1; ; round++) {
      const ops: BatchOp[] = fence.map((key) => ({ op: 'put', key, value: String(round) }));
      const { t0, t1, results } = await timed(client, ops);
      emit({ type: 'w', n: fence_name, r: round, t0, t1, k: fence.map((key) => Number(key.slice(fence_name.length))), c: results.map((r) => r.code) });
      if (results.every((r) => r.code === 'OK')) break;
      if (round >= 50) throw new Error(`fence keys not written: ${JSON.stringify(results.map((r) => r.code))}`);
      await delay(100);
    }
  }
  let running = true;
  void onStdin('stop').then(() => (running = false));
  emit({ type: 'ready', n: name, fence });
  const writes = (async () => {
    for (let round = 1; running; round++) {
      const indices = Array.from({ length: ROUND_KEYS }, (_, i) => (round * 7 + i) % keys);
      const ops: BatchOp[] = indices.map((i) => ({ op: 'put', key: `${name}${i}`, value: String(round) }));
      const { t0, t1, results } = await timed(client, ops);
      emit({ type: 'w', n: name, r: round, t0, t1, k: indices, c: results.map((r) => r.code) });
      await delay(2);
    }
  })();
  const reads = (async () => {
    for (let round = 1; running; round++) {
      const keys_read = Array.from({ length: ROUND_KEYS }, (_, i) => `${read_names[(round + i) % read_names.length]}${(round * 13 + i * 17) % keys}`);
      const { t0, t1, results } = await timed(client, keys_read.map((key) => ({ op: 'get', key })));
      emit({ type: 'r', n: name, t0, t1, k: keys_read, c: results.map((r) => r.code), v: results.map(valueOf) });
      await delay(5);
    }
  })();
  // The lanes have their own connection with a short timeout: a read held behind a write that
  // cannot commit (its copy is across the partition) stalls its lane for 500 ms only.
  const lane_client = fence.length > 0 ? await connect(urls[0]!, { request_timeout_ms: 500, connect_timeout_ms: 2_000 }) : null;
  const lanes = (list: string[], count: number, tag: string): Promise<void[]> => Promise.all(Array.from({ length: list.length > 0 ? count : 0 }, async (_, lane) => {
    for (let round = 0; running; round++) {
      const key = list[(round * count + lane) % list.length]!;
      const { t0, t1, results } = await timed(lane_client!, [{ op: 'get', key }]);
      emit({ type: 'r', n: name, t0, t1, k: [key], c: [results[0]!.code], v: [valueOf(results[0]!)], [tag]: true });
      await delay(2);
    }
  }));
  const fence_reads = lanes(fence, 8, 'fence');
  const owned_reads = lanes(owned, 4, 'owned');
  await Promise.all([writes, reads, fence_reads, owned_reads]);
  emit({ type: 'done', n: name });
  await lane_client?.close().catch(() => undefined);
  await client.close().catch(() => undefined);
  process.exit(0);
}

async function probe(name: string, id: string, count: number, urls: string[]): Promise<void> {
  const client = await connectCluster(urls, { request_timeout_ms: 2_000, connect_timeout_ms: 2_000 });
  const { view } = await readView(urls);
  const placement = placementOf(view);
  const on: string[] = [];
  const off: string[] = [];
  for (let i = 0; on.length < count || off.length < count; i++) {
    const key = `${name}${i}`;
    const list = placement.primaryOf(hashOf(key))?.id === id ? on : off;
    if (list.length < count) list.push(key);
  }
  const keys = [...on, ...off];
  emit({ type: 'ready', n: name, keys });
  await onStdin('go');
  for (let round = 1; ; round++) {
    const ops: BatchOp[] = keys.map((key) => ({ op: 'put', key, value: String(round) }));
    const { t0, t1, results } = await timed(client, ops);
    emit({ type: 'w', n: name, r: round, t0, t1, k: keys.map((key) => Number(key.slice(name.length))), c: results.map((r) => r.code) });
    if (results.every((r) => r.code === 'OK')) {
      emit({ type: 'probe-ok', t: t1, rounds: round });
      break;
    }
    await delay(20);
  }
  await client.close().catch(() => undefined);
  process.exit(0);
}

async function monitor(urls: string[]): Promise<void> {
  const clients = new Map<string, PikvClient>();
  const epochs = new Map<string, number>();
  const serving = new Map<string, boolean>();
  const errors = new Map<string, string>();
  const controller = new Map<string, boolean>();
  const watch = async (url: string): Promise<void> => {
    for (;;) {
      try {
        let client = clients.get(url);
        if (client === undefined || client.failed !== null) {
          client = await connect(url, { request_timeout_ms: 1_000, connect_timeout_ms: 1_000 });
          clients.set(url, client);
        }
        let view: ClusterView;
        try {
          view = (await askNode(client, Op.RING)) as ClusterView;
        } catch (error) {
          if (!(error instanceof Refused)) throw error;
          // A node whose fence ran out answers even RING with a failure (see the test's report).
          if (serving.get(url) !== false) emit({ type: 'serving', t: Date.now(), url, serving: false, via: `RING answered ${error.message}` });
          serving.set(url, false);
          await delay(50);
          continue;
        }
        const t = Date.now();
        if (epochs.get(url) !== view.epoch) {
          epochs.set(url, view.epoch);
          emit({ type: 'view', t, url, epoch: view.epoch, nodes: view.nodes.map((n) => n.id), down: view.down ?? [], next: view.next?.map((n) => n.id) ?? null, next_down: view.next_down ?? null });
        }
        const status = (await askNode(client, Op.CLUSTER_STATUS)) as { etcd: { serving: boolean; controller: boolean } | null };
        const now_serving = status.etcd?.serving === true;
        if (serving.get(url) !== now_serving) {
          serving.set(url, now_serving);
          emit({ type: 'serving', t: Date.now(), url, serving: now_serving });
        }
        const now_controller = status.etcd?.controller === true;
        if (controller.get(url) !== now_controller) {
          controller.set(url, now_controller);
          emit({ type: 'controller', t: Date.now(), url, controller: now_controller });
        }
      } catch (error) {
        const message = (error as Error).message;
        if (errors.get(url) !== message) emit({ type: 'monitor-error', t: Date.now(), url, message });
        errors.set(url, message);
        clients.get(url)?.close().catch(() => undefined);
        clients.delete(url);
      }
      await delay(50);
    }
  };
  await Promise.all(urls.map(watch));
}

async function final(name: string, spec: string, kind: string, urls: string[]): Promise<void> {
  const keys: string[] = [];
  for (const part of spec.split(',')) {
    const [name, what] = part.split(':') as [string, string];
    if (/^\d+$/.test(what)) for (let i = 0; i < Number(what); i++) keys.push(`${name}${i}`);
    else keys.push(...what.split('|'));
  }
  const client: Batcher = kind === 'aware'
    ? await connectCluster(urls, { request_timeout_ms: 5_000, connect_timeout_ms: 2_000 })
    : await connect(urls[0]!, { request_timeout_ms: 5_000, connect_timeout_ms: 2_000 });
  for (let start = 0; start < keys.length; start += 500) {
    const slice = keys.slice(start, start + 500);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { t0, t1, results } = await timed(client, slice.map((key) => ({ op: 'get', key })));
      if (results.every((r) => r.code === 'OK' || r.code === 'NOT_FOUND') || Date.now() > deadline) {
        emit({ type: 'r', n: name, t0, t1, k: slice, c: results.map((r) => r.code), v: results.map(valueOf) });
        break;
      }
      await delay(100);
    }
  }
  emit({ type: 'done', n: name });
  await client.close().catch(() => undefined);
  process.exit(0);
}

switch (mode) {
  case 'health':
    await health(args[0]!, Number(args[1]));
    break;
  case 'writer':
    await writer(args[0]!, args[1]!, Number(args[2]), args[3]!.split(','), args.slice(4));
    break;
  case 'probe':
    await probe(args[0]!, args[1]!, Number(args[2]), args.slice(3));
    break;
  case 'monitor':
    await monitor(args);
    break;
  case 'final':
    await final(args[0]!, args[1]!, args[2]!, args.slice(3));
    break;
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exit(2);
}

/**
 * `npm run bench:compress-values`: what client-side compression (issue #13) buys and costs, with
 * the real client library, against compression off in the same run (docs/PERFORMANCE.md,
 * "Compression on and off").
 *
 * One node (`pikv serve`, 2 workers). With `--link RATE` (root) the node runs in its own network
 * namespace whose link is shaped with tc tbf both ways (bench/lib/cluster-net.ts's Sandbox, as
 * bench:cluster: 100mbit is a Pi 3B's port), and the client in another; without it, both on
 * loopback. For each round, compression mode (on = the client's default compress_min_bytes of
 * 4096, off = 0; the order alternates per round), value kind (bench/lib/corpus.ts: JSON-like,
 * log-like, random bytes) and size, a fresh client process:
 *   - PUTs values of that kind and size over a fixed set of keys (so memory stays bounded),
 *     `--depth` in flight, for `--seconds`; then GETs them back the same way, checking lengths;
 *   - reports values/s for each, and its own CPU per value (process.cpuUsage: the client pays
 *     for compression).
 * Then, once per mode, memory per value: `--memory-keys` fresh keys of a 64 KiB JSON value, the
 * node's bytes_used before and after (its table), divided by the keys; then they are deleted.
 *
 * Medians over `--rounds` with min-max, and on/off ratios. Everything it starts is stopped by
 * PID, and the namespaces are removed, also on errors. Never run it beside another benchmark.
 *
 *   npm run bench:compress-values -- --link 100mbit --sizes 1048576 --rounds 5
 *   npm run bench:compress-values -- --sizes 4096,65536,1048576 --rounds 5     # loopback
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/index.js';
import { CORPUS_KINDS, corpusValue, type CorpusKind } from './lib/corpus.js';
import { CLIENT_HOST, Sandbox, sandboxUnavailable, SUBNET } from './lib/cluster-net.js';
import { PIKV_CLI_PATH } from './lib/servers.js';

const SELF = fileURLToPath(import.meta.url);
const PORT = 7070;
/** Keys each PUT/GET phase cycles over: enough distinct values in flight, bounded memory. */
const KEYS_PER_RUN = 32;
const COMPRESS_ON_MIN_BYTES = 4096;
const MEMORY_VALUE_BYTES = 64 * 1024;

interface Options {
  link: string; sizes: number[]; kinds: CorpusKind[]; rounds: number; seconds: number; depth: number; memory_keys: number;
  /** Set in a child: the one measurement it makes. */
  child: { url: string; compress: boolean; kind: CorpusKind; size: number; memory: boolean } | null;
}

interface ClientResult { put_values_s: number; get_values_s: number; client_cpu_ms_per_value: number }

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      link: { type: 'string' }, sizes: { type: 'string' }, kinds: { type: 'string' }, rounds: { type: 'string' }, seconds: { type: 'string' },
      depth: { type: 'string' }, 'memory-keys': { type: 'string' }, help: { type: 'boolean' },
      // Internal: one measurement, run as a child (in the client namespace with --link).
      client: { type: 'string' }, compress: { type: 'string' }, kind: { type: 'string' }, size: { type: 'string' }, memory: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    console.log('usage: npm run bench:compress-values -- [--link 100mbit] [--sizes 4096,65536,1048576] [--kinds json,log,random] [--rounds 5] [--seconds 2] [--depth 4] [--memory-keys 1000]');
    process.exit(0);
  }
  const list = (text: string | undefined, fallback: string): string[] => (text ?? fallback).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const kinds = list(values.kinds, CORPUS_KINDS.join(',')) as CorpusKind[];
  for (const kind of kinds) if (!CORPUS_KINDS.includes(kind)) throw new Error(`unknown kind ${kind}; one of ${CORPUS_KINDS.join(', ')}`);
  const child = values.client === undefined ? null
    : { url: values.client, compress: values.compress === 'on', kind: (values.kind ?? 'json') as CorpusKind, size: Number(values.size ?? 0), memory: values.memory === true };
  return {
    child,
    link: values.link ?? '', sizes: list(values.sizes, '4096,65536,1048576').map(Number), kinds,
    rounds: Number(values.rounds ?? 5), seconds: Number(values.seconds ?? 2), depth: Number(values.depth ?? 4), memory_keys: Number(values['memory-keys'] ?? 1000),
  };
}

// ---------------------------------------------------------------- the client side (a child process)

/** Runs `op` with `depth` calls in flight until `seconds` pass; returns calls completed per second. */
async function paced(seconds: number, depth: number, op: (i: number) => Promise<void>): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < until) {
      await op(next++);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: depth }, lane));
  return done / ((performance.now() - started) / 1000);
}

async function clientRun(url: string, compress: boolean, kind: CorpusKind, size: number, seconds: number, depth: number): Promise<ClientResult> {
  const kv = await connect(url, { compress_min_bytes: compress ? COMPRESS_ON_MIN_BYTES : 0, request_timeout_ms: 60_000 });
  try {
    const values = Array.from({ length: 8 }, (_, i) => corpusValue(kind, size, i + 1));
    const key = (i: number): string => `cv:${kind}:${size}:${i % KEYS_PER_RUN}`;
    for (let i = 0; i < KEYS_PER_RUN; i++) await kv.put(key(i), values[i % values.length]!);
    const cpu_before = process.cpuUsage();
    const put_values_s = await paced(seconds, depth, async (i) => kv.put(key(i), values[i % values.length]!));
    const get_values_s = await paced(seconds, depth, async (i) => {
      const value = await kv.get(key(i));
      if (value === undefined || value.length !== size) throw new Error(`GET ${key(i)}: ${value?.length ?? 'absent'} bytes, expected ${size}`);
    });
    const cpu = process.cpuUsage(cpu_before);
    const values_done = (put_values_s + get_values_s) * seconds;
    return { put_values_s, get_values_s, client_cpu_ms_per_value: (cpu.user + cpu.system) / 1000 / values_done };
  } finally {
    await kv.close();
  }
}

async function memoryRun(url: string, compress: boolean, keys: number): Promise<{ bytes_per_value: number }> {
  const kv = await connect(url, { compress_min_bytes: compress ? COMPRESS_ON_MIN_BYTES : 0 });
  try {
    const value = corpusValue('json', MEMORY_VALUE_BYTES, 7);
    const used = async (): Promise<number> => Number((await kv.stats())['bytes_used']);
    const before = await used();
    for (let i = 0; i < keys; i += 64) await kv.batch(Array.from({ length: Math.min(64, keys - i) }, (_, j) => ({ op: 'put' as const, key: `mem:${i + j}`, value })));
    const after = await used();
    for (let i = 0; i < keys; i += 256) await kv.batch(Array.from({ length: Math.min(256, keys - i) }, (_, j) => ({ op: 'delete' as const, key: `mem:${i + j}` })));
    return { bytes_per_value: (after - before) / keys };
  } finally {
    await kv.close();
  }
}

// ---------------------------------------------------------------- the driver

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function spread(values: number[]): string {
  return `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
}

function fmt(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(value >= 10 ? 1 : 2);
}

/** Runs this file as a child for one measurement (in the client namespace when there is one) and parses its JSON line. */
function child(prefix: string[], args: string[], pids: Set<number>, quiet = false): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const command = [...prefix, process.execPath, SELF, ...args];
    const proc = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', quiet ? 'ignore' : 'inherit'] });
    pids.add(proc.pid!);
    let out = '';
    proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    proc.on('exit', (code) => {
      pids.delete(proc.pid!);
      if (code !== 0) return reject(new Error(`measurement ${args.join(' ')} exited ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch (error) {
        reject(error as Error);
      }
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForNode(url: string, prefix: string[], pids: Set<number>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      // Quiet: the first probes fail while the node starts.
      await child(prefix, ['--client', url, '--memory', '--compress', 'off', '--size', '0'], pids, true);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`node at ${url} did not answer: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const one = options.child;
  if (one !== null) {
    // Child mode: one measurement, one JSON line on stdout. (--size 0 with --memory: a probe.)
    const result = one.memory
      ? await memoryRun(one.url, one.compress, one.size === 0 ? 1 : options.memory_keys)
      : await clientRun(one.url, one.compress, one.kind, one.size, options.seconds, options.depth);
    console.log(JSON.stringify(result));
    return;
  }

  const pids = new Set<number>();
  let sandbox: Sandbox | null = null;
  let node: ChildProcess | null = null;
  let prefix: string[] = [];
  let url = '';
  const stop = (): void => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    sandbox?.cleanup();
  };
  process.on('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    const serve = ['serve', '--port', String(PORT), '--workers', '2', '--max-memory', '1gb', '--resp-port', 'off'];
    if (options.link !== '') {
      const why = sandboxUnavailable('pkcv');
      if (why !== null) throw new Error(`--link needs network namespaces: ${why}`);
      sandbox = new Sandbox('pkcv');
      sandbox.createBridge();
      sandbox.addHost(sandbox.nodeNs(1), 1, { rate: options.link, burst: '256kb', latency: '5ms' });
      sandbox.addHost(sandbox.client_ns, CLIENT_HOST, { rate: '', burst: '', latency: '' });
      node = spawn('ip', ['netns', 'exec', sandbox.nodeNs(1), process.execPath, PIKV_CLI_PATH, ...serve, '--host', `${SUBNET}.1`], { stdio: 'ignore' });
      prefix = ['ip', 'netns', 'exec', sandbox.client_ns];
      url = `ws://${SUBNET}.1:${PORT}`;
    } else {
      // Loopback: a free port, so a node someone else runs on 7070 is never measured.
      const port = await freePort();
      serve[2] = String(port);
      node = spawn(process.execPath, [PIKV_CLI_PATH, ...serve, '--host', '127.0.0.1'], { stdio: 'ignore' });
      url = `ws://127.0.0.1:${port}`;
    }
    pids.add(node.pid!);
    sandbox?.pids.add(node.pid!);
    await waitForNode(url, prefix, pids);
    console.log(`node at ${url}${options.link !== '' ? `, link ${options.link} both ways` : ', loopback'}; ${options.rounds} rounds x ${options.seconds} s per phase, ${options.depth} in flight`);

    type Key = string;
    const put = new Map<Key, number[]>();
    const get = new Map<Key, number[]>();
    const cpu = new Map<Key, number[]>();
    for (let round = 1; round <= options.rounds; round++) {
      const modes = round % 2 === 1 ? ['on', 'off'] : ['off', 'on'];
      for (const mode of modes) {
        for (const kind of options.kinds) {
          for (const size of options.sizes) {
            const result = (await child(prefix, ['--client', url, '--compress', mode, '--kind', kind, '--size', String(size), '--seconds', String(options.seconds), '--depth', String(options.depth)], pids)) as ClientResult;
            const key = `${kind}|${size}|${mode}`;
            for (const [map, value] of [[put, result.put_values_s], [get, result.get_values_s], [cpu, result.client_cpu_ms_per_value]] as const) {
              if (!map.has(key)) map.set(key, []);
              map.get(key)!.push(value);
            }
          }
        }
      }
      console.log(`round ${round} done`);
    }
    const memory: Record<string, number> = {};
    for (const mode of ['off', 'on']) {
      const result = (await child(prefix, ['--client', url, '--memory', '--compress', mode, '--size', '1', '--memory-keys', String(options.memory_keys)], pids)) as { bytes_per_value: number };
      memory[mode] = result.bytes_per_value;
    }

    console.log(`\n| kind | size | PUT values/s on (min–max) | off (min–max) | on/off | GET values/s on (min–max) | off (min–max) | on/off | client CPU ms/value on / off |`);
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const kind of options.kinds) {
      for (const size of options.sizes) {
        const k = (mode: string): string => `${kind}|${size}|${mode}`;
        const row = (map: Map<Key, number[]>): string => {
          const on = map.get(k('on'))!;
          const off = map.get(k('off'))!;
          return `${fmt(median(on))} (${spread(on)}) | ${fmt(median(off))} (${spread(off)}) | **${(median(on) / median(off)).toFixed(2)}×**`;
        };
        console.log(`| ${kind} | ${size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`} | ${row(put)} | ${row(get)} | ${median(cpu.get(k('on'))!).toFixed(3)} / ${median(cpu.get(k('off'))!).toFixed(3)} |`);
      }
    }
    console.log(`\nmemory per 64 KiB JSON value (node table bytes_used, ${options.memory_keys} keys): off ${fmt(memory['off']!)} B, on ${fmt(memory['on']!)} B: ${(memory['off']! / memory['on']!).toFixed(2)}× smaller`);
  } finally {
    stop();
  }
}

await main();

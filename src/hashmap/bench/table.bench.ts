// Benchmark: HashTable vs Map<string, Buffer>, 16 B keys, 100 B values.
//
//   node dist/src/hashmap/bench/table.bench.js [--keys 1000000]
//   node dist/src/hashmap/bench/table.bench.js --rss table|map [--keys 1000000]
//
// The --rss form only inserts, in a fresh process, and prints the RSS growth:
// in one process the freed memory of earlier rounds blurs RSS deltas.
//
// Each phase runs over all keys once per round; the figure is the median of 3
// rounds. Hashes (murmur3 x86_32) are computed before timing, so the table
// figures are table work only. Map keys are prebuilt strings and each Map put
// copies the value into a new Buffer, as a store must.

import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

import { murmur3 } from '../fixtures/murmur3.js';
import { Prng } from '../fixtures/prng.js';
import { createTableMemory, HashTable, PUT_OK } from '../index.js';

// A callable gc() so RSS deltas are not blurred by the previous round's garbage.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const ROUNDS = 3;
const PHASES = ['insert', 'get hit', 'get miss', 'overwrite same length', 'delete'] as const;
type PhaseName = (typeof PHASES)[number];

function argument(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

function makeKeys(count: number, first: number): { bytes: Uint8Array; hashes: Uint32Array; strings: string[] } {
  const bytes = new Uint8Array(count * KEY_BYTES);
  const hashes = new Uint32Array(count);
  const strings: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const text = `key:${String(first + i).padStart(KEY_BYTES - 4, '0')}`;
    bytes.set(Buffer.from(text, 'latin1'), i * KEY_BYTES);
    hashes[i] = murmur3(bytes, i * KEY_BYTES, KEY_BYTES);
    strings[i] = text;
  }
  return { bytes, hashes, strings };
}

/** JS heap plus off-heap buffers (Buffer contents live outside the heap). */
function heapBytes(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[values.length >> 1]!;
}

function timed(count: number, body: () => void): number {
  const start = performance.now();
  body();
  return count / ((performance.now() - start) / 1000);
}

function main(): void {
  const count = argument('keys', 1_000_000);
  const prng = new Prng(1);
  const hits = makeKeys(count, 0);
  const misses = makeKeys(count, count);
  const value = new Uint8Array(VALUE_BYTES);
  const value_other = new Uint8Array(VALUE_BYTES);
  prng.fill(value, 0, VALUE_BYTES);
  prng.fill(value_other, 0, VALUE_BYTES);
  const out = new Uint8Array(VALUE_BYTES);
  const bytes_capacity = Math.ceil((count * 200 + 64 * 1024 * 1024) / 8) * 8;

  const table_rates = new Map<PhaseName, number[]>(PHASES.map((phase) => [phase, []]));
  const map_rates = new Map<PhaseName, number[]>(PHASES.map((phase) => [phase, []]));
  let checksum = 0;
  let table_bytes_per_key = 0;
  let map_heap_bytes = 0;
  let table_reserved_bytes = 0;

  for (let round = 0; round < ROUNDS; round++) {
    collectGarbage();
    const heap_before = heapBytes();
    const map = new Map<string, Buffer>();
    const { strings } = hits;
    map_rates.get('insert')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) map.set(strings[i]!, Buffer.from(value));
    }));
    if (round === 0) {
      collectGarbage();
      map_heap_bytes = heapBytes() - heap_before;
    }
    map_rates.get('get hit')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) {
        out.set(map.get(strings[i]!)!, 0);
        checksum += out[i % VALUE_BYTES]!;
      }
    }));
    map_rates.get('get miss')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) checksum += map.get(misses.strings[i]!) === undefined ? 0 : 1;
    }));
    map_rates.get('overwrite same length')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) map.set(strings[i]!, Buffer.from(value_other));
    }));
    map_rates.get('delete')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) map.delete(strings[i]!);
    }));
  }

  for (let round = 0; round < ROUNDS; round++) {
    collectGarbage();
    const table = new HashTable(createTableMemory(bytes_capacity));
    const { bytes: hit_bytes, hashes: hit_hashes } = hits;
    table_rates.get('insert')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) {
        if (table.put(hit_hashes[i]!, hit_bytes, i * KEY_BYTES, KEY_BYTES, value, 0, VALUE_BYTES) !== PUT_OK) throw new Error('put');
      }
    }));
    table.step(Number.MAX_SAFE_INTEGER); // a growth may still be migrating; count the settled table
    table_bytes_per_key = table.stats().bytes_used / count;
    table_reserved_bytes = table.stats().bytes_reserved;
    table_rates.get('get hit')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) {
        const ref = table.find(hit_hashes[i]!, hit_bytes, i * KEY_BYTES, KEY_BYTES);
        table.copyValue(ref, out, 0);
        checksum += out[i % VALUE_BYTES]!;
      }
    }));
    table_rates.get('get miss')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) checksum += table.find(misses.hashes[i]!, misses.bytes, i * KEY_BYTES, KEY_BYTES);
    }));
    table_rates.get('overwrite same length')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) table.put(hit_hashes[i]!, hit_bytes, i * KEY_BYTES, KEY_BYTES, value_other, 0, VALUE_BYTES);
    }));
    table_rates.get('delete')!.push(timed(count, () => {
      for (let i = 0; i < count; i++) table.delete(hit_hashes[i]!, hit_bytes, i * KEY_BYTES, KEY_BYTES);
    }));
    if (table.keys !== 0) throw new Error('delete left keys');
  }

  const million = (rate: number) => (rate / 1e6).toFixed(2).padStart(8);
  console.log(`keys ${count}, key ${KEY_BYTES} B, value ${VALUE_BYTES} B, median of ${ROUNDS} rounds (checksum ${checksum % 997})`);
  console.log('| op                    | HashTable M ops/s | Map M ops/s |');
  console.log('|-----------------------|-------------------|-------------|');
  for (const phase of PHASES) {
    console.log(`| ${phase.padEnd(21)} | ${million(median(table_rates.get(phase)!)).padStart(17)} | ${million(median(map_rates.get(phase)!)).padStart(11)} |`);
  }
  console.log(`| bytes_used per key    | ${table_bytes_per_key.toFixed(1).padStart(17)} | ${'-'.padStart(11)} |`);
  const mb = (bytes: number, width: number) => `${(bytes / 1e6).toFixed(0).padStart(width)} MB`;
  console.log(`| memory after insert   | ${mb(table_reserved_bytes, 14)} | ${mb(map_heap_bytes, 8)} |  (table: bytes_reserved; Map: heap + external)`);
  console.log('RSS growth: run with --rss table and --rss map (one process each)');
}

/** Inserts all keys into one implementation and prints the RSS growth. */
function measureRss(implementation: string): void {
  const count = argument('keys', 1_000_000);
  const keys = makeKeys(count, 0);
  const value = new Uint8Array(VALUE_BYTES).fill(1);
  collectGarbage();
  const rss_before = process.memoryUsage().rss;
  let bytes_reserved = 0;
  if (implementation === 'table') {
    const table = new HashTable(createTableMemory(Math.ceil((count * 200 + 64 * 1024 * 1024) / 8) * 8));
    for (let i = 0; i < count; i++) table.put(keys.hashes[i]!, keys.bytes, i * KEY_BYTES, KEY_BYTES, value, 0, VALUE_BYTES);
    bytes_reserved = table.stats().bytes_reserved;
  } else {
    const map = new Map<string, Buffer>();
    for (let i = 0; i < count; i++) map.set(keys.strings[i]!, Buffer.from(value));
    collectGarbage();
    if (map.size !== count) throw new Error('map');
  }
  const rss_growth = process.memoryUsage().rss - rss_before;
  console.log(`${implementation}: ${count} keys, RSS growth ${(rss_growth / 1e6).toFixed(0)} MB` +
    (bytes_reserved > 0 ? `, bytes_reserved ${(bytes_reserved / 1e6).toFixed(0)} MB` : ''));
}

const rss_at = process.argv.indexOf('--rss');
if (rss_at >= 0) measureRss(process.argv[rss_at + 1] ?? 'table');
else main();

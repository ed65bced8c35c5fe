/**
 * Ring balance: how evenly the consistent-hash ring (src/routing/ring.ts) spreads keys.
 *
 *   npm run build && node dist/bench/ring-spread.js [--keys 1000000]
 *
 * Keys are "key:<12 digits>" (the bench key format, 16 bytes) hashed as a node hashes them:
 * murmur3_x86_32(key, KEY_HASH_SEED). Prints, for 2..16 equal nodes named a,b,..., pi1..piN
 * and random ids, the most loaded node's keys over its fair share; the same for replica load
 * (keys whose first 2 distinct clockwise nodes include the node); weighted clusters; the share
 * of keys that move when a node joins or leaves; and lookup and build cost.
 * PIKV_RING_MODULE=<path to another build's dist/src/routing/ring.js> measures that build
 * instead (how the "before" numbers in docs/CLUSTER.md were taken).
 */
import { parseArgs } from 'node:util';
import { KEY_HASH_SEED, murmur3_x86_32 } from '../src/routing/murmur3.js';
import type { HashRing as Ring, RingNode } from '../src/routing/ring.js';
import { makeKey, prng } from './lib/keys.js';

const { values: args } = parseArgs({ options: { keys: { type: 'string', default: '1000000' } } });
const KEY_COUNT = Number(args.keys);
const KEY_BYTES = 16;
const SIZES = Array.from({ length: 15 }, (_, i) => i + 2);

const module_path = process.env['PIKV_RING_MODULE'] ?? '../src/routing/ring.js';
const { HashRing } = (await import(module_path)) as { HashRing: new (nodes: readonly RingNode[]) => Ring };

const hashes = new Uint32Array(KEY_COUNT);
for (let i = 0; i < KEY_COUNT; i++) {
  const key = makeKey(i, KEY_BYTES);
  hashes[i] = murmur3_x86_32(key, 0, key.length, KEY_HASH_SEED);
}

function idFamilies(count: number): Record<string, string[]> {
  const random = prng(0x5eed + count);
  return {
    'a,b,..': Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i)),
    'pi1..': Array.from({ length: count }, (_, i) => `pi${i + 1}`),
    random: Array.from({ length: count }, () => Math.floor(random() * 2 ** 32).toString(36) + Math.floor(random() * 2 ** 32).toString(36)),
  };
}

function ringOf(ids: string[], weights?: number[]): Ring {
  return new HashRing(ids.map((id, i) => ({ id, url: `ws://${id}:7070`, weight: weights?.[i] ?? 1 })));
}

/** Max over nodes of (keys owned / fair keys), fair by weight. */
function ownerSpread(ring: Ring): number {
  const counts = new Float64Array(ring.nodes.length);
  for (const hash of hashes) counts[ring.ownerIndex(hash)]!++;
  const total_weight = ring.nodes.reduce((sum, node) => sum + node.weight, 0);
  return Math.max(...ring.nodes.map((node, i) => counts[i]! / ((KEY_COUNT * node.weight) / total_weight)));
}

/** Max over nodes of (keys it holds as owner or first replica / fair), 2 copies per key. */
function replicaSpread(ring: Ring): number {
  const index_of = new Map(ring.nodes.map((node, i) => [node.id, i]));
  const counts = new Float64Array(ring.nodes.length);
  for (let i = 0; i < KEY_COUNT; i += 4) {
    for (const node of ring.preferenceList(hashes[i]!, 2)) counts[index_of.get(node.id)!]!++;
  }
  const fair = (Math.ceil(KEY_COUNT / 4) * 2) / ring.nodes.length;
  return Math.max(...counts) / fair;
}

function fixed(value: number): string {
  return value.toFixed(3);
}

console.log(`ring balance over ${KEY_COUNT} keys (${module_path})\n`);
console.log('owner load, max/fair, equal weights        replica load (2 copies), max/fair');
console.log(`nodes  ${['a,b,..', 'pi1..', 'random'].map((name) => name.padEnd(8)).join(' ')}    ${['a,b,..', 'pi1..', 'random'].map((name) => name.padEnd(8)).join(' ')}`);
let worst_owner = 0;
let worst_replica = 0;
for (const count of SIZES) {
  const families = Object.values(idFamilies(count));
  const owner = families.map((ids) => ownerSpread(ringOf(ids)));
  const replica = families.map((ids) => replicaSpread(ringOf(ids)));
  worst_owner = Math.max(worst_owner, ...owner);
  worst_replica = Math.max(worst_replica, ...replica);
  console.log(`${String(count).padStart(5)}  ${owner.map((v) => fixed(v).padEnd(8)).join(' ')}    ${replica.map((v) => fixed(v).padEnd(8)).join(' ')}`);
}
console.log(`worst  ${fixed(worst_owner)}                       ${fixed(worst_replica)}\n`);

console.log('weighted, max over nodes of share/(weight/total weight)');
for (const weights of [[1, 2], [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8], [16, 16, 16, 1], [1, 2, 4, 8, 16], Array.from({ length: 16 }, (_, i) => i + 1)]) {
  const ids = weights.map((_, i) => `pi${i + 1}`);
  console.log(`  [${weights.join(',')}]: ${fixed(ownerSpread(ringOf(ids, weights)))}`);
}

console.log('\njoin of the (n+1)th node: keys moved / (1/(n+1)), and keys moved between old nodes');
const join_cells: string[] = [];
for (const count of SIZES) {
  const ids = idFamilies(count)['pi1..']!;
  const before = ringOf(ids.slice(0, count - 1));
  const after = ringOf(ids);
  let moved = 0;
  let moved_elsewhere = 0;
  for (const hash of hashes) {
    const from = before.ownerOf(hash).id;
    const to = after.ownerOf(hash).id;
    if (from === to) continue;
    moved++;
    if (to !== ids[count - 1]) moved_elsewhere++;
  }
  join_cells.push(`${count - 1}->${count}: ${fixed((moved / KEY_COUNT) * count)} (${moved_elsewhere})`);
}
console.log(`  ${join_cells.join('  ')}`);

function nsPerLookup(ring: Ring): number {
  let sink = 0;
  let best_ns = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (const hash of hashes) sink += ring.ownerIndex(hash);
    best_ns = Math.min(best_ns, Number(process.hrtime.bigint() - start) / KEY_COUNT);
  }
  if (sink < 0) console.log(sink);
  return best_ns;
}

function msPerBuild(ids: string[], weights?: number[]): number {
  const rounds = 5;
  const start = process.hrtime.bigint();
  for (let round = 0; round < rounds; round++) ringOf(ids, weights);
  return Number(process.hrtime.bigint() - start) / rounds / 1e6;
}

console.log('\ncost (best of 5 passes over the keys; includes the loop)');
for (const count of [4, 16, 64]) {
  const ids = Array.from({ length: count }, (_, i) => `pi${i + 1}`);
  console.log(`  ${String(count).padStart(2)} nodes: ${nsPerLookup(ringOf(ids)).toFixed(1)} ns/lookup, build ${msPerBuild(ids).toFixed(1)} ms`);
}
const heavy = Array.from({ length: 64 }, (_, i) => `pi${i + 1}`);
console.log(`  64 nodes of weight 16: build ${msPerBuild(heavy, heavy.map(() => 16)).toFixed(0)} ms`);

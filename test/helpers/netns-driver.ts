/**
 * Runs inside the client network namespace of test/cluster-netns.test.ts: writes
 * continuously through the ring-aware client until it reads "stop" on stdin, then reads
 * every key back and prints one JSON line: rounds, failed writes, and keys whose value is
 * not the latest acknowledged one.
 */
import { connectCluster } from '../../src/client/cluster-client.js';

const seeds = process.argv.slice(2);
// `node --test dist/test/` also runs this file, with no arguments: nothing to do then.
if (seeds.length === 0) process.exit(0);
const kv = await connectCluster(seeds, { request_timeout_ms: 10_000 });
const latest = new Map<string, string>();
const uncertain = new Set<string>();
let writing = true;
let rounds = 0;
let failed = 0;
process.stdin.on('data', (chunk: Buffer) => {
  if (chunk.toString().includes('stop')) writing = false;
});
process.stdout.write('writing\n');
while (writing) {
  rounds++;
  const ops = Array.from({ length: 256 }, (_, i) => ({ op: 'put' as const, key: `n${(rounds * 101 + i) % 4000}`, value: `r${rounds}-${i}` }));
  const results = await kv.batch(ops);
  results.forEach((result, i) => {
    const key = ops[i]!.key;
    if (result.code === 'OK') {
      latest.set(key, ops[i]!.value);
      uncertain.delete(key);
    } else {
      failed++;
      uncertain.add(key);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 2));
}
const keys = [...latest.keys()].filter((key) => !uncertain.has(key));
const results = await kv.batch(keys.map((key) => ({ op: 'get' as const, key })));
const wrong = keys.filter((key, i) => results[i]!.code !== 'OK' || Buffer.from(results[i]!.value!).toString() !== latest.get(key));
process.stdout.write(`${JSON.stringify({ rounds, failed, checked: keys.length, wrong: wrong.slice(0, 20), wrong_count: wrong.length })}\n`);
await kv.close();
process.exit(0);

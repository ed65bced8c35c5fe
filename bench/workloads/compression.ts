/**
 * Workload `compression` of `npm run bench` (issue #13): client-side value compression on
 * against off, with the real client library, for JSON-like, log-like and random values of
 * 4 KiB, 64 KiB and 1 MiB on loopback, alternating on and off per round (medians and
 * spreads), plus memory per 64 KiB JSON value. It runs bench/compress-values.ts, which starts
 * its own node, so the bench's shared node and data set are not disturbed. Over a 100 Mbit
 * link: `npm run bench:cluster -- --compression`.
 */
import type { BenchContext } from '../lib/context.js';
import { runCompressValues } from '../lib/compress-values-run.js';

export async function runCompression(ctx: BenchContext): Promise<void> {
  const rounds = ctx.options.quick ? 1 : 5;
  const seconds = Math.min(ctx.options.seconds, 2);
  const output = await runCompressValues(['--sizes', '4096,65536,1048576', '--rounds', String(rounds), '--seconds', String(seconds)], ctx.log);
  ctx.results.notes.push(`Compression on vs off (workload compression: bench/compress-values.ts, loopback, ${rounds} alternating rounds of ${seconds} s; ` +
    `values/s medians with min-max):\n\n${output.table.map((line) => `  ${line}`).join('\n')}\n\n  ${output.memory ?? 'memory: not measured'}`);
}

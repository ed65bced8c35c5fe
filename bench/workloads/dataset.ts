/**
 * The main data set: `keys` records of key_bytes keys ("key:" + zero-padded index, the same
 * keys redis-benchmark's -r uses) and value_bytes printable values, in both servers. The
 * bulk-load workload creates it the measured way; any other workload that needs it and runs
 * without that one gets it from an untimed fill.
 */
import type { BenchContext } from '../lib/context.js';
import { fillBoth } from '../lib/drivers.js';
import { makeTextValue } from '../lib/keys.js';
import type { KeySpec } from '../lib/ycsb.js';

/** Distinct values cycled through the data set (the value of record i is VALUES[i % count]). */
const DISTINCT_VALUES = 97;

export function mainKeys(ctx: BenchContext): KeySpec {
  return { key_bytes: ctx.options.key_bytes };
}

export function recordValue(ctx: BenchContext, index: number): Buffer {
  return makeTextValue(ctx.options.value_bytes, index % DISTINCT_VALUES);
}

export async function ensureDataset(ctx: BenchContext): Promise<void> {
  if (ctx.dataset_loaded) return;
  const started_ms = performance.now();
  const values = Array.from({ length: DISTINCT_VALUES }, (_, i) => recordValue(ctx, i));
  await fillBoth(ctx, ctx.options.keys, mainKeys(ctx), (index) => values[index % DISTINCT_VALUES]!);
  ctx.dataset_loaded = true;
  ctx.log(`  (filled ${ctx.options.keys} records into ${ctx.redis ? 'pikv and Redis' : 'pikv'} in ${((performance.now() - started_ms) / 1000).toFixed(1)} s, untimed)`);
}

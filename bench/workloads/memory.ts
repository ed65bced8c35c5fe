/**
 * Memory per key once the main data set is loaded: pikv's table accounting (STATS bytes_used,
 * per worker) and RSS against Redis's used_memory and RSS, each net of the empty server.
 * Runs right after the load so nothing else has touched the tables.
 */
import { memorySnapshot, type MemorySnapshot } from '../lib/baseline.js';
import type { BenchContext } from '../lib/context.js';
import { ensureDataset } from './dataset.js';

export async function runMemory(ctx: BenchContext, empty: MemorySnapshot): Promise<void> {
  await ensureDataset(ctx);
  const loaded = await memorySnapshot(ctx.pikv, ctx.redis);
  const keys = loaded.pikv_keys;
  const perKey = (after: number, before: number, count: number): number => Math.round(((after - before) / Math.max(count, 1)) * 10) / 10;
  ctx.results.memory = {
    keys,
    pikv: {
      bytes_used: loaded.pikv_bytes_used, bytes_used_empty: empty.pikv_bytes_used, bytes_per_key: perKey(loaded.pikv_bytes_used, empty.pikv_bytes_used, keys),
      rss_bytes: loaded.pikv_rss_bytes, rss_bytes_empty: empty.pikv_rss_bytes, rss_bytes_per_key: perKey(loaded.pikv_rss_bytes, empty.pikv_rss_bytes, keys),
      per_worker: loaded.pikv_per_worker,
    },
  };
  if (ctx.redis !== null && loaded.redis_used_memory !== undefined) {
    const redis_keys = loaded.redis_keys ?? keys;
    ctx.results.memory.redis = {
      used_memory: loaded.redis_used_memory, used_memory_empty: empty.redis_used_memory ?? 0,
      bytes_per_key: perKey(loaded.redis_used_memory, empty.redis_used_memory ?? 0, redis_keys),
      used_memory_rss: loaded.redis_rss_bytes ?? 0, rss_bytes_empty: empty.redis_rss_bytes ?? 0,
      rss_bytes_per_key: perKey(loaded.redis_rss_bytes ?? 0, empty.redis_rss_bytes ?? 0, redis_keys),
    };
  }
  const redis = ctx.results.memory.redis;
  ctx.log(`  pikv ${ctx.results.memory.pikv.bytes_per_key} B/key (table), ${ctx.results.memory.pikv.rss_bytes_per_key} B/key (RSS)` +
    (redis ? `; Redis ${redis.bytes_per_key} B/key (used_memory), ${redis.rss_bytes_per_key} B/key (RSS)` : ''));
}

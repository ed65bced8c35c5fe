/**
 * Memory figures of both servers at one moment: pikv's exact table accounting (STATS) and
 * process RSS, Redis's INFO memory. Taken on the empty servers at start and after loading.
 */
import { connect } from '../../src/index.js';
import { rssBytes } from './proc.js';
import { redisInfo } from './redis-resp.js';
import type { RunningServer } from './servers.js';

export interface MemorySnapshot {
  pikv_keys: number;
  pikv_bytes_used: number;
  pikv_rss_bytes: number;
  pikv_per_worker: { partition: number; keys: number; bytes_used: number; index_slots: number; payload_bytes: number }[];
  redis_keys?: number;
  redis_used_memory?: number;
  redis_rss_bytes?: number;
}

export async function memorySnapshot(pikv: RunningServer, redis: RunningServer | null): Promise<MemorySnapshot> {
  const kv = await connect(pikv.url);
  const stats = await kv.stats();
  await kv.close();
  const per_worker = (stats.per_worker as Record<string, number>[]).map((worker) => ({
    partition: worker.partition!, keys: worker.keys!, bytes_used: worker.bytes_used!, index_slots: worker.index_slots!, payload_bytes: worker.payload_bytes!,
  }));
  const snapshot: MemorySnapshot = {
    pikv_keys: Number(stats.keys), pikv_bytes_used: Number(stats.bytes_used), pikv_rss_bytes: rssBytes(pikv.pid), pikv_per_worker: per_worker,
  };
  if (redis !== null) {
    const memory = await redisInfo(redis.host, redis.port, 'memory');
    const keyspace = await redisInfo(redis.host, redis.port, 'keyspace');
    snapshot.redis_used_memory = Number(memory.used_memory);
    snapshot.redis_rss_bytes = rssBytes(redis.pid);
    snapshot.redis_keys = Number(/keys=(\d+)/.exec(keyspace.db0 ?? '')?.[1] ?? 0);
  }
  return snapshot;
}

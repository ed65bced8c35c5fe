/**
 * Throughput vs concurrent connections, unbatched: every connection has one single-GET
 * request in flight. Redis: redis-benchmark -c N -P 1.
 */
import { compare, type BenchContext } from '../lib/context.js';
import { pikvClient, pikvRaw, redisBench } from '../lib/drivers.js';
import { uniformChooser } from '../lib/zipf.js';
import { makeBatches } from '../lib/ycsb.js';
import { ensureDataset, mainKeys, recordValue } from './dataset.js';

const WORKLOAD = 'connections';
const POOL_REQUESTS = 262_144;

export async function runConnections(ctx: BenchContext): Promise<void> {
  await ensureDataset(ctx);
  const { options } = ctx;
  const keys = mainKeys(ctx);
  const value = recordValue(ctx, 1);
  const batches = makeBatches({ batch_ops: 1, batch_count: Math.min(POOL_REQUESTS, options.keys), read_share: 1, choose: uniformChooser(options.keys, 99), seed: 99 });
  for (const connections of options.connections_sweep) {
    const shape = { batches, keys, value, connections, depth: 1, seconds: options.seconds };
    const params = { op: 'GET', batch_ops: 1, connections, depth: 1, keys: options.keys };
    const label = `GET ×1, ${connections} conns`;
    const raw = await pikvRaw(ctx, { workload: WORKLOAD, label, params }, shape);
    const client = await pikvClient(ctx, { workload: WORKLOAD, label, params }, shape, 'get');
    const redis = await redisBench(ctx, { workload: WORKLOAD, label, params }, {
      test: { kind: 'builtin', name: 'get' }, pipeline: 1, connections, key_count: options.keys, value_bytes: value.length, seconds: options.seconds,
    });
    compare(ctx, WORKLOAD, `${label} (raw)`, raw, redis);
    compare(ctx, WORKLOAD, `${label} (client get())`, client, redis);
  }
}

/**
 * Latency of unbatched GETs on one connection, one request in flight, into HDR histograms:
 * pikv through the client library's get() and through raw frames; Redis through the Node
 * RESP generator (the same client-side path as pikv raw) and redis-benchmark -c 1 -P 1.
 */
import type { BenchContext } from '../lib/context.js';
import { pikvClient, pikvRaw, redisBench, redisResp, type LoadShape } from '../lib/drivers.js';
import { LatencyRecorder } from '../lib/hdr.js';
import { makeBatches } from '../lib/ycsb.js';
import { uniformChooser } from '../lib/zipf.js';
import { ensureDataset, mainKeys, recordValue } from './dataset.js';

const WORKLOAD = 'latency';
const POOL_REQUESTS = 262_144;
const WARMUP_S = 0.3;

export async function runLatency(ctx: BenchContext): Promise<void> {
  await ensureDataset(ctx);
  const { options } = ctx;
  const batches = makeBatches({ batch_ops: 1, batch_count: Math.min(POOL_REQUESTS, options.keys), read_share: 1, choose: uniformChooser(options.keys, 7), seed: 7 });
  const base: LoadShape = { batches, keys: mainKeys(ctx), value: recordValue(ctx, 1), connections: 1, depth: 1, seconds: options.seconds };
  const params = { op: 'GET', batch_ops: 1, connections: 1, depth: 1, keys: options.keys };
  const meta = { workload: WORKLOAD, label: 'GET, 1 conn, unbatched', params };
  const warm = { workload: 'warmup', label: 'warmup', params };
  const withLatency = async (run: (shape: LoadShape) => Promise<unknown>): Promise<void> => {
    await run({ ...base, seconds: WARMUP_S });
    ctx.results.runs.pop(); // the warmup is not a result
    const latency = new LatencyRecorder();
    await run({ ...base, latency });
    const record = ctx.results.runs[ctx.results.runs.length - 1];
    if (record !== undefined) record.latency = latency.summary();
  };
  await withLatency((shape) => pikvClient(ctx, shape.latency ? meta : warm, shape, 'get'));
  await withLatency((shape) => pikvRaw(ctx, shape.latency ? meta : warm, shape));
  if (ctx.redis !== null) {
    await withLatency((shape) => redisResp(ctx, shape.latency ? meta : warm, shape, 'pipeline'));
    await redisBench(ctx, meta, { test: { kind: 'builtin', name: 'get' }, pipeline: 1, connections: 1, key_count: options.keys, value_bytes: base.value.length, seconds: options.seconds });
  }
}

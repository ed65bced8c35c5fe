/**
 * YCSB core workloads A (50/50 read/update), B (95/5) and C (read only) over the main data
 * set, keys uniform and scrambled-Zipfian (θ = 0.99), in batches of ycsb_batch ops. pikv:
 * raw frames and client batchColumns(). Redis: the same ops as a RESP pipeline from Node,
 * plus the redis-benchmark reference (GET and SET at -P ycsb_batch, mixed by the read share).
 */
import { compare, type BenchContext } from '../lib/context.js';
import { pikvClient, pikvRaw, redisBench, redisResp } from '../lib/drivers.js';
import { batchCountFor, makeBatches, YCSB_READ_SHARE } from '../lib/ycsb.js';
import { scrambledZipfianChooser, uniformChooser } from '../lib/zipf.js';
import { ensureDataset, mainKeys, recordValue } from './dataset.js';

const WORKLOAD = 'ycsb';
const POOL_BYTES_MAX = 256 << 20;

export async function runYcsb(ctx: BenchContext): Promise<void> {
  await ensureDataset(ctx);
  const { options } = ctx;
  const keys = mainKeys(ctx);
  const value = recordValue(ctx, 2);
  const batch_ops = options.ycsb_batch;
  const streams = options.connections * options.depth;
  const reference = { pipeline: batch_ops, connections: streams, key_count: options.keys, value_bytes: value.length, seconds: options.seconds };
  const ref_params = { batch_ops, connections: streams, depth: 1, keys: options.keys, distribution: 'uniform' };
  const ref_get = await redisBench(ctx, { workload: WORKLOAD, label: `reference GET ×${batch_ops}`, params: { ...ref_params, op: 'GET' } }, { ...reference, test: { kind: 'builtin', name: 'get' } });
  const ref_set = await redisBench(ctx, { workload: WORKLOAD, label: `reference SET ×${batch_ops}`, params: { ...ref_params, op: 'SET' } }, { ...reference, test: { kind: 'builtin', name: 'set' } });
  const count = batchCountFor(batch_ops, options.keys, keys.key_bytes + value.length, POOL_BYTES_MAX);
  for (const workload of ['A', 'B', 'C']) {
    const read_share = YCSB_READ_SHARE[workload]!;
    for (const distribution of ['uniform', 'zipfian'] as const) {
      const seed = workload.charCodeAt(0) * 31 + (distribution === 'zipfian' ? 1 : 0);
      const choose = distribution === 'zipfian' ? scrambledZipfianChooser(options.keys, seed) : uniformChooser(options.keys, seed);
      const batches = makeBatches({ batch_ops, batch_count: count, read_share, choose, seed });
      const shape = { batches, keys, value, connections: options.connections, depth: options.depth, seconds: options.seconds };
      const params = { ycsb: workload, distribution, batch_ops, connections: options.connections, depth: options.depth, keys: options.keys };
      const label = `YCSB-${workload} ${distribution}`;
      const raw = await pikvRaw(ctx, { workload: WORKLOAD, label, params }, shape);
      const columns = await pikvClient(ctx, { workload: WORKLOAD, label, params }, shape, 'columns');
      const resp = await redisResp(ctx, { workload: WORKLOAD, label, params }, shape, 'pipeline');
      compare(ctx, WORKLOAD, `${label} raw vs RESP pipeline`, raw, resp);
      compare(ctx, WORKLOAD, `${label} batchColumns vs RESP pipeline`, columns, resp);
      if (ref_get !== undefined && ref_set !== undefined && distribution === 'uniform') {
        const mixed_ops_per_s = 1 / (read_share / ref_get.ops_per_s + (1 - read_share) / ref_set.ops_per_s);
        compare(ctx, WORKLOAD, `${label} raw vs redis-benchmark GET/SET mix`, raw, undefined, mixed_ops_per_s,
          `redis-benchmark -P ${batch_ops} -c ${streams} -r ${options.keys}: GET and SET rates mixed ${read_share * 100}/${Math.round((1 - read_share) * 100)}`);
      }
    }
  }
}

/**
 * Throughput vs value size (PUT, then GET of what was put). Each size gets a key space of at
 * most ~256 MiB of values and requests of at most ~1 MiB, so 1 MiB values are one op per
 * request. The keys are the main data set's first ones (redis-benchmark's -r keys), so this
 * runs last: it overwrites their values.
 */
import { Op } from '../../src/index.js';
import { compare, type BenchContext } from '../lib/context.js';
import { fillBoth, pikvRaw, redisBench } from '../lib/drivers.js';
import { makeTextValue } from '../lib/keys.js';
import { uniformChooser } from '../lib/zipf.js';
import { batchCountFor, makeBatches } from '../lib/ycsb.js';
import { mainKeys } from './dataset.js';

const WORKLOAD = 'values';
const KEYSPACE_BYTES_MAX = 256 << 20;
const REQUEST_BYTES_MAX = 1 << 20;
const KEYSPACE_KEYS_MAX = 100_000;
const POOL_BYTES_MAX = 128 << 20;

export async function runValueSize(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  const keys = mainKeys(ctx);
  for (const value_bytes of options.value_sizes) {
    const value = makeTextValue(value_bytes, 5);
    const key_count = Math.max(16, Math.min(options.keys, KEYSPACE_KEYS_MAX, Math.floor(KEYSPACE_BYTES_MAX / value_bytes)));
    const batch_ops = Math.max(1, Math.min(1024, Math.floor(REQUEST_BYTES_MAX / value_bytes)));
    await fillBoth(ctx, key_count, keys, () => value);
    for (const op of [Op.PUT, Op.GET]) {
      const name = op === Op.GET ? 'GET' : 'PUT';
      const count = batchCountFor(batch_ops, key_count * 4, keys.key_bytes + (op === Op.PUT ? value_bytes : 0), POOL_BYTES_MAX);
      const batches = makeBatches({ batch_ops, batch_count: count, read_share: op === Op.GET ? 1 : 0, choose: uniformChooser(key_count, value_bytes + op), seed: value_bytes });
      const params = { op: name, value_bytes, batch_ops, keys: key_count, connections: options.connections, depth: options.depth };
      const label = `${name} ${value_bytes} B ×${batch_ops}`;
      const raw = await pikvRaw(ctx, { workload: WORKLOAD, label, params }, { batches, keys, value, connections: options.connections, depth: options.depth, seconds: options.seconds });
      const redis = await redisBench(ctx, { workload: WORKLOAD, label, params: { ...params, connections: options.connections * options.depth, depth: 1 } }, {
        test: { kind: 'builtin', name: op === Op.GET ? 'get' : 'set' }, pipeline: batch_ops, connections: options.connections * options.depth,
        key_count, value_bytes, seconds: options.seconds,
      });
      compare(ctx, WORKLOAD, label, raw, redis);
    }
  }
}

/**
 * Throughput vs ops per request. pikv: ops per frame (raw frames; client batch() and
 * batchColumns() for GETs). Redis: the same number of ops as pipeline depth
 * (redis-benchmark -P), and as one MGET/MSET (redis-benchmark with a custom command).
 */
import { Op } from '../../src/index.js';
import { compare, type BenchContext } from '../lib/context.js';
import { pikvClient, pikvRaw, redisBench } from '../lib/drivers.js';
import { uniformChooser } from '../lib/zipf.js';
import { batchCountFor, makeBatches } from '../lib/ycsb.js';
import { ensureDataset, mainKeys, recordValue } from './dataset.js';

const WORKLOAD = 'batch';
/** Pre-encoded requests are capped so one sweep point stays within ~256 MiB of client memory. */
const POOL_BYTES_MAX = 256 << 20;
const POOL_REQUESTS_MAX = 262_144;
/** Client batch() builds an object per op; a smaller pool keeps its GC out of the figure. */
const CLIENT_OPS_MAX = 262_144;

function multiArgv(op: number, batch_ops: number, value: Buffer): string[] {
  const argv = [op === Op.GET ? 'MGET' : 'MSET'];
  for (let i = 0; i < batch_ops; i++) {
    argv.push('key:__rand_int__');
    if (op === Op.PUT) argv.push(value.toString('latin1'));
  }
  return argv;
}

export async function runBatchSize(ctx: BenchContext): Promise<void> {
  await ensureDataset(ctx);
  const { options } = ctx;
  const keys = mainKeys(ctx);
  const value = recordValue(ctx, 1);
  const op_bytes = keys.key_bytes + value.length + 16;
  for (const batch_ops of options.batches) {
    for (const op of [Op.GET, Op.PUT]) {
      const name = op === Op.GET ? 'GET' : 'PUT';
      const count = Math.min(POOL_REQUESTS_MAX, batchCountFor(batch_ops, options.keys, op_bytes, POOL_BYTES_MAX));
      const batches = makeBatches({ batch_ops, batch_count: count, read_share: op === Op.GET ? 1 : 0, choose: uniformChooser(options.keys, batch_ops * 7 + op), seed: batch_ops });
      const shape = { batches, keys, value, connections: options.connections, depth: options.depth, seconds: options.seconds };
      const params = { op: name, batch_ops, connections: options.connections, depth: options.depth, keys: options.keys };
      const label = `${name} ×${batch_ops}`;
      const raw = await pikvRaw(ctx, { workload: WORKLOAD, label, params }, shape);
      if (op === Op.GET) {
        const client_count = Math.max(1, Math.min(count, Math.ceil(CLIENT_OPS_MAX / batch_ops)));
        await pikvClient(ctx, { workload: WORKLOAD, label, params }, { ...shape, batches: batches.slice(0, client_count) }, 'batch');
        await pikvClient(ctx, { workload: WORKLOAD, label, params }, shape, 'columns');
      }
      const streams = options.connections * options.depth;
      const spec = { pipeline: batch_ops, connections: streams, key_count: options.keys, value_bytes: value.length, seconds: options.seconds };
      const pipelined = await redisBench(ctx, { workload: WORKLOAD, label, params: { ...params, form: 'pipeline', connections: streams, depth: 1 } },
        { ...spec, test: { kind: 'builtin', name: op === Op.GET ? 'get' : 'set' } });
      const multi = await redisBench(ctx, { workload: WORKLOAD, label, params: { ...params, form: op === Op.GET ? 'MGET' : 'MSET', connections: streams, depth: 1 } },
        { ...spec, pipeline: 1, test: { kind: 'command', argv: multiArgv(op, batch_ops, value), ops_per_request: batch_ops } });
      compare(ctx, WORKLOAD, `${label} vs pipeline`, raw, pipelined);
      compare(ctx, WORKLOAD, `${label} vs ${op === Op.GET ? 'MGET' : 'MSET'}`, raw, multi);
    }
  }
}

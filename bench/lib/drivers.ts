/**
 * One function per way of driving a server, each taking the same neutral op batches
 * (ycsb.ts) so pikv and Redis see identical keys and ops, and each recording its run through
 * measure(). Encoding happens before the clock starts.
 */
import { connect, Op, WireCodec } from '../../src/index.js';
import { ColumnBuilder } from '../../src/client/columns.js';
import { measure, type BenchContext, type RunMeta } from './context.js';
import type { LatencyRecorder } from './hdr.js';
import { runPikvClient, type ClientRequest } from './pikv-client-load.js';
import { runPikvRaw } from './pikv-raw.js';
import { cpuSeconds } from './proc.js';
import { runRedisBenchmark, type RedisBenchmarkSpec } from './redis-benchmark.js';
import { encodeCommand, runRespLoad } from './redis-resp.js';
import type { RunRecord } from './results.js';
import { keyOf, toBatchOps, toColumnBatch, toPikvFrame, toRespMulti, toRespPipeline, type KeySpec, type OpBatch } from './ycsb.js';

export interface LoadShape {
  batches: readonly OpBatch[];
  keys: KeySpec;
  value: Buffer;
  connections: number;
  depth: number;
  seconds: number;
  latency?: LatencyRecorder;
}

function opsOf(batches: readonly OpBatch[]): number[] {
  return batches.map((batch) => batch.ops.length);
}

export async function pikvRaw(ctx: BenchContext, meta: Omit<RunMeta, 'system' | 'driver'>, shape: LoadShape): Promise<RunRecord> {
  const codec = new WireCodec();
  const frames = shape.batches.map((batch, i) => toPikvFrame(codec, batch, shape.keys, shape.value, i));
  const ops_per_frame = opsOf(shape.batches);
  return measure(ctx, ctx.pikv, { ...meta, system: 'pikv', driver: 'pikv-raw' }, () => runPikvRaw({
    url: ctx.pikv.url, connections: shape.connections, depth: shape.depth, frames, ops_per_frame,
    deadline_ms: performance.now() + shape.seconds * 1000,
    ...(shape.latency ? { onRequestDone: (ms: number) => shape.latency!.record(ms) } : {}),
  }));
}

export async function pikvClient(ctx: BenchContext, meta: Omit<RunMeta, 'system' | 'driver'>, shape: LoadShape, mode: 'batch' | 'columns' | 'get'): Promise<RunRecord> {
  const requests: ClientRequest[] = shape.batches.map((batch) => {
    if (mode === 'batch') return { kind: 'batch', ops: toBatchOps(batch, shape.keys, shape.value) };
    if (mode === 'columns') return { kind: 'columns', batch: toColumnBatch(batch, shape.keys, shape.value) };
    if (batch.ops.length !== 1 || batch.ops[0] !== Op.GET) throw new Error('get mode takes single-GET batches');
    return { kind: 'get', key: keyOf(batch.key_indices[0]!, shape.keys) };
  });
  const driver = mode === 'batch' ? 'pikv-client-batch' : mode === 'columns' ? 'pikv-client-columns' : 'pikv-client-get';
  return measure(ctx, ctx.pikv, { ...meta, system: 'pikv', driver }, () => runPikvClient({
    url: ctx.pikv.url, connections: shape.connections, depth: shape.depth, requests,
    deadline_ms: performance.now() + shape.seconds * 1000,
    ...(shape.latency ? { onRequestDone: (ms: number) => shape.latency!.record(ms) } : {}),
  }));
}

/** Redis through the Node RESP generator: a pipeline of GET/SET, or one MGET/MSET per batch. */
export async function redisResp(ctx: BenchContext, meta: Omit<RunMeta, 'system' | 'driver'>, shape: LoadShape, form: 'pipeline' | 'multi'): Promise<RunRecord | undefined> {
  const redis = ctx.redis;
  if (redis === null) return undefined;
  const chunks = shape.batches.map((batch) => (form === 'pipeline' ? toRespPipeline(batch, shape.keys, shape.value) : toRespMulti(batch, shape.keys, shape.value)));
  const ops_per_chunk = opsOf(shape.batches);
  const replies_per_chunk = form === 'pipeline' ? ops_per_chunk : ops_per_chunk.map(() => 1);
  return measure(ctx, redis, { ...meta, system: 'redis', driver: 'redis-resp-node', params: { ...meta.params, form } }, () => runRespLoad({
    host: redis.host, port: redis.port, connections: shape.connections, depth: shape.depth, chunks, ops_per_chunk, replies_per_chunk,
    deadline_ms: performance.now() + shape.seconds * 1000,
    ...(shape.latency ? { onChunkDone: (ms: number) => shape.latency!.record(ms) } : {}),
  }));
}

export async function redisBench(ctx: BenchContext, meta: Omit<RunMeta, 'system' | 'driver'>, spec: Omit<RedisBenchmarkSpec, 'port'>): Promise<RunRecord | undefined> {
  const redis = ctx.redis;
  if (redis === null) return undefined;
  let server_cpu_at_start_s = 0;
  return measure(ctx, redis, { ...meta, system: 'redis', driver: 'redis-benchmark' }, async () => {
    const result = await runRedisBenchmark({ ...spec, port: redis.port }, () => (server_cpu_at_start_s = cpuSeconds(redis.pid)));
    return {
      requests: result.requests, ops: result.ops, misses: 0, errors: 0, wall_s: result.wall_s, client_cpu_s: result.client_cpu_s,
      server_cpu_s: cpuSeconds(redis.pid) - server_cpu_at_start_s, extra: { latency_ms: result.latency_ms },
    };
  });
}

/** Writes keys [0, count) to both servers, untimed (a data set for the reads that follow). */
export async function fillBoth(ctx: BenchContext, count: number, keys: KeySpec, valueFor: (index: number) => Buffer): Promise<void> {
  const chunk_ops = Math.max(1, Math.min(8192, Math.floor((4 << 20) / (keys.key_bytes + valueFor(0).length))));
  const inflight_max = 8;
  const kv = await connect(ctx.pikv.url, { request_timeout_ms: 300_000 });
  const pending: Promise<unknown>[] = [];
  const builder = new ColumnBuilder(chunk_ops);
  for (let start = 0; start < count; start += chunk_ops) {
    for (let i = start; i < Math.min(count, start + chunk_ops); i++) builder.put(keyOf(i, keys), valueFor(i));
    pending.push(kv.batchColumns(builder.build()));
    builder.reset();
    if (pending.length >= inflight_max) await pending.shift();
  }
  await Promise.all(pending);
  await kv.close();
  const redis = ctx.redis;
  if (redis === null) return;
  const chunks: Buffer[] = [];
  const ops: number[] = [];
  for (let start = 0; start < count; start += chunk_ops) {
    const parts: Buffer[] = [];
    for (let i = start; i < Math.min(count, start + chunk_ops); i++) parts.push(encodeCommand(['SET', keyOf(i, keys), valueFor(i)]));
    chunks.push(Buffer.concat(parts));
    ops.push(parts.length);
  }
  // One pass: depth 1 per chunk list, a deadline far away, stopping after the last chunk.
  let sent = 0;
  for (const chunk of chunks) {
    await runRespLoad({ host: redis.host, port: redis.port, connections: 1, depth: 1, chunks: [chunk], ops_per_chunk: [ops[sent]!], replies_per_chunk: [ops[sent]!], deadline_ms: 0 });
    sent++;
  }
}

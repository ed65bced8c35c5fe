/**
 * Bulk load of the main data set from one TSV file into empty servers: `pikv load FILE`
 * against `redis-cli --pipe` fed a RESP file of SET commands made from the same records.
 * Wall time is the whole command, process start-up included, for both. Afterwards both
 * servers hold the data set the other workloads read.
 */
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compare, measure, type BenchContext } from '../lib/context.js';
import { runMeasured } from '../lib/processes.js';
import { encodeCommand } from '../lib/redis-resp.js';
import { PIKV_CLI_PATH } from '../lib/servers.js';
import { keyOf } from '../lib/ycsb.js';
import { mainKeys, recordValue } from './dataset.js';

const WORKLOAD = 'load';
const RECORDS_PER_WRITE = 8192;

async function writeInputs(ctx: BenchContext, dir: string): Promise<{ tsv_path: string; resp_path: string; tsv_bytes: number }> {
  const tsv_path = path.join(dir, 'records.tsv');
  const resp_path = path.join(dir, 'records.resp');
  const tsv = createWriteStream(tsv_path);
  const resp = createWriteStream(resp_path);
  const tab = Buffer.from('\t');
  const newline = Buffer.from('\n');
  let tsv_bytes = 0;
  for (let start = 0; start < ctx.options.keys; start += RECORDS_PER_WRITE) {
    const tsv_parts: Buffer[] = [];
    const resp_parts: Buffer[] = [];
    for (let i = start; i < Math.min(ctx.options.keys, start + RECORDS_PER_WRITE); i++) {
      const key = keyOf(i, mainKeys(ctx));
      const value = recordValue(ctx, i);
      tsv_parts.push(key, tab, value, newline);
      resp_parts.push(encodeCommand(['SET', key, value]));
    }
    const tsv_chunk = Buffer.concat(tsv_parts);
    tsv_bytes += tsv_chunk.length;
    if (!tsv.write(tsv_chunk)) await once(tsv, 'drain');
    if (!resp.write(Buffer.concat(resp_parts))) await once(resp, 'drain');
  }
  tsv.end();
  resp.end();
  await Promise.all([once(tsv, 'finish'), once(resp, 'finish')]);
  return { tsv_path, resp_path, tsv_bytes };
}

export async function runBulkLoad(ctx: BenchContext): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pikv-bench-load-'));
  try {
    const { tsv_path, resp_path, tsv_bytes } = await writeInputs(ctx, dir);
    const params = { records: ctx.options.keys, key_bytes: ctx.options.key_bytes, value_bytes: ctx.options.value_bytes, file_bytes: tsv_bytes };
    const label = `${ctx.options.keys} records`;
    const pikv = await measure(ctx, ctx.pikv, { workload: WORKLOAD, system: 'pikv', driver: 'pikv-load-cli', label, params }, async () => {
      const run = await runMeasured(process.execPath, [PIKV_CLI_PATH, 'load', tsv_path, '--url', ctx.pikv.url]);
      if (run.code !== 0) throw new Error(`pikv load failed (${run.code}): ${run.stderr}`);
      const own_s = Number(/loaded in ([\d.]+) s/.exec(run.stderr)?.[1] ?? NaN);
      return { requests: 0, ops: ctx.options.keys, misses: 0, errors: 0, wall_s: run.wall_s, client_cpu_s: run.cpu_s, extra: { extra: { cli_reported_s: own_s } } };
    });
    let redis;
    if (ctx.redis !== null) {
      const server = ctx.redis;
      redis = await measure(ctx, server, { workload: WORKLOAD, system: 'redis', driver: 'redis-cli-pipe', label, params }, async () => {
        const run = await runMeasured('redis-cli', ['-h', server.host, '-p', String(server.port), '--pipe'], { stdin_path: resp_path });
        const replies = Number(/replies: (\d+)/.exec(run.stdout)?.[1] ?? 0);
        const errors = Number(/errors: (\d+)/.exec(run.stdout)?.[1] ?? 0);
        if (run.code !== 0 || replies !== ctx.options.keys) throw new Error(`redis-cli --pipe failed (${run.code}): ${run.stdout}${run.stderr}`);
        return { requests: 0, ops: replies, misses: 0, errors, wall_s: run.wall_s, client_cpu_s: run.cpu_s };
      });
    }
    compare(ctx, WORKLOAD, label, pikv, redis);
    ctx.dataset_loaded = true;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

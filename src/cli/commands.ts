/**
 * The small client commands: get, put, del, stats. Each opens one connection and closes it.
 */
import { connect, type PikvClient } from '../client/client.js';
import { ColumnBuilder } from '../client/columns.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError, statusName } from '../protocol/errors.js';

interface UrlOptions {
  url: string;
}

interface PutCliOptions extends UrlOptions {
  ttl?: string;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--ttl` as ms: a whole number with a unit (500ms, 10s, 5m, 2h, 7d) or bare seconds. */
export function parseTtl(text: string): number {
  const match = /^([1-9][0-9]{0,12})(ms|s|m|h|d)?$/.exec(text.trim());
  const ms = match === null ? NaN : Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's']!;
  if (!Number.isSafeInteger(ms) || ms < 1) {
    throw new PikvError(ErrorCode.BAD_ARGUMENT, `--ttl must be a whole number with a unit (500ms, 10s, 5m, 2h, 7d) or of seconds, got ${JSON.stringify(text)}`);
  }
  return ms;
}

async function withClient<T>(url: string, work: (client: PikvClient) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

export async function runGet(key: string, options: UrlOptions): Promise<void> {
  const value = await withClient(options.url, (client) => client.get(key));
  if (value === undefined) {
    process.stderr.write(`pikv: key not found: ${key}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(value);
  if (process.stdout.isTTY) process.stdout.write('\n');
}

export async function runPut(key: string, value: string, options: PutCliOptions): Promise<void> {
  const ttl_ms = options.ttl === undefined ? undefined : parseTtl(options.ttl);
  await withClient(options.url, (client) => client.put(key, value, ttl_ms === undefined ? {} : { ttl_ms }));
}

export async function runDel(key: string, options: UrlOptions): Promise<void> {
  const existed = await withClient(options.url, (client) => client.delete(key));
  if (!existed) {
    process.stderr.write(`pikv: key not found: ${key}\n`);
    process.exitCode = 1;
  }
}

/** Sends DEBUG_KILL_WORKER; the node refuses it with UNKNOWN_OP unless it runs with PIKV_TEST_HOOKS=1. */
export async function runKillWorker(index: string, options: UrlOptions): Promise<void> {
  const builder = new ColumnBuilder(1, 64);
  builder.add(Op.DEBUG_KILL_WORKER, index, null);
  const { status } = await withClient(options.url, (client) => client.batchColumns(builder.build()));
  if (status[0] === Status.OK) {
    process.stdout.write(`worker ${index} killed; the node restarts it on the same memory\n`);
    return;
  }
  const code = statusName(status[0]!);
  const hint = code === 'UNKNOWN_OP' ? ' (start the node with PIKV_TEST_HOOKS=1 to allow this)' : '';
  process.stderr.write(`pikv: kill-worker refused: ${code}${hint}\n`);
  process.exitCode = 2;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function runStats(options: UrlOptions & { json?: boolean }): Promise<void> {
  const stats = (await withClient(options.url, (client) => client.stats())) as unknown as StatsView;
  if (options.json) {
    process.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
    return;
  }
  const lines = [
    `node      ${options.url}  up ${stats.uptime_s}s  ${stats.connections} connections  ${stats.workers} workers`,
    `keys      ${stats.keys}`,
    `memory    tables ${mib(stats.bytes_used)} of ${mib(stats.bytes_capacity)}  rss ${mib(stats.memory.rss_bytes)}`,
    `ops       ${stats.ops}`,
    '',
    'worker       keys   bytes_used  bytes_reserved         gets         puts      deletes  restarts',
  ];
  for (const w of stats.per_worker) {
    lines.push(
      `${String(w.partition).padStart(6)} ${String(w.keys).padStart(10)} ${mib(w.bytes_used).padStart(12)} ${mib(w.bytes_reserved).padStart(15)} ` +
        `${String(w.gets).padStart(12)} ${String(w.puts).padStart(12)} ${String(w.deletes).padStart(12)} ${String(w.restarts).padStart(9)}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

interface StatsView {
  uptime_s: number;
  connections: number;
  workers: number;
  keys: number;
  bytes_used: number;
  bytes_capacity: number;
  ops: number;
  memory: { rss_bytes: number };
  per_worker: { partition: number; keys: number; bytes_used: number; bytes_reserved: number; gets: number; puts: number; deletes: number; restarts: number }[];
}

/**
 * `pikv load FILE`: streams records into a node in pipelined batches.
 *
 * Records go straight into columnar batches (ColumnBuilder + batchColumns), with no object
 * per record on the way out or back. Up to --inflight batches of --batch records are
 * outstanding at once. A malformed line is reported with its number; without --skip-bad the
 * load sends everything before it, waits for it to be acknowledged, and stops (exit 1). Ops
 * the server rejects (e.g. KEY_TOO_LARGE, OUT_OF_MEMORY) are counted and the first few
 * reported with their line numbers, so nothing is lost silently.
 */
import { SingleBar } from 'cli-progress';
import { statSync } from 'node:fs';
import { connect, type ColumnBatch, type ColumnResults, type PikvClient } from '../client/client.js';
import { ColumnBuilder } from '../client/columns.js';
import { Status } from '../protocol/constants.js';
import { statusName } from '../protocol/errors.js';
import { bytesRead, formatFromPath, isBadRecord, openInput, readRecords, type RecordFormat } from './records.js';

interface LoadOptions {
  url: string;
  format?: RecordFormat;
  skipBad?: boolean;
  batch: string;
  inflight: string;
  progress: boolean;
  /** Values of at least this many bytes are compressed in the client's pool (0 off); the client library's compress_min_bytes. */
  compressMinBytes?: string;
}

/**
 * Where the batches stand in line: a batch is sent only after the one before it was, though
 * their values are compressed at the same time, so a key written twice in a file ends with the
 * later value.
 */
interface SendOrder {
  /** Resolves once the last batch queued behind a compression has been handed to the client. */
  previous_sent: Promise<void>;
  /** Batches waiting for that; while there are any, the next batch waits too. */
  unsent: number;
}

/** An owned copy of a built batch: the builder's memory is reused while the copy's values are in the pool. */
function copyColumns(batch: ColumnBatch): ColumnBatch {
  return {
    op: batch.op.slice(), key_lengths: batch.key_lengths.slice(), value_lengths: batch.value_lengths.slice(),
    keys: Buffer.from(batch.keys), values: Buffer.from(batch.values),
  };
}

/** How many rejected ops are printed one by one before only counting. */
const FAILURES_SHOWN_MAX = 10;

interface LoadTotals {
  loaded: number;
  failed: number;
  skipped: number;
  failures_shown: number;
}

function positiveInteger(text: string, name: string, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new Error(`--${name} must be a whole number from 1 to ${max}, got ${text}`);
  return value;
}

async function sendBatch(client: PikvClient, builder: ColumnBuilder, lines: Int32Array, totals: LoadTotals, compress_min_bytes: number, order: SendOrder): Promise<void> {
  const count = builder.count;
  const first_lines = lines.slice(0, count);
  const built = builder.build();
  const compress = compress_min_bytes > 0 && built.value_lengths.some((length) => length >= compress_min_bytes);
  let sent: Promise<ColumnResults>;
  if (!compress && order.unsent === 0) {
    // batchColumns encodes the frame before it returns, so the builder may be reused at once.
    sent = client.batchColumns(built);
  } else {
    const owned = copyColumns(built);
    const ready = compress ? client.compressColumns(owned) : Promise.resolve(owned);
    let answer: Promise<ColumnResults> | null = null;
    order.unsent++;
    const handed = Promise.all([order.previous_sent, ready]).then(([, batch]) => {
      order.unsent--;
      answer = client.batchColumns(batch);
    });
    order.previous_sent = handed.catch(() => undefined);
    sent = handed.then(() => answer!);
  }
  builder.reset();
  const { status } = await sent;
  for (let i = 0; i < count; i++) {
    if (status[i] === Status.OK) {
      totals.loaded++;
      continue;
    }
    totals.failed++;
    if (totals.failures_shown++ < FAILURES_SHOWN_MAX) process.stderr.write(`pikv load: line ${first_lines[i]}: rejected by the server: ${statusName(status[i]!)}\n`);
  }
}

export async function runLoad(path: string, options: LoadOptions): Promise<void> {
  const format = options.format ?? formatFromPath(path);
  if (format === null) throw new Error(`cannot tell the format of ${path} from its extension; pass --format tsv|csv|jsonl`);
  const batch_size = positiveInteger(options.batch, 'batch', 65_536);
  const inflight_max = positiveInteger(options.inflight, 'inflight', 64);
  const total_bytes = path === '-' ? 0 : statSync(path).size;
  const input = openInput(path);
  const compress_min_bytes = Number(options.compressMinBytes ?? '4096');
  if (!Number.isSafeInteger(compress_min_bytes) || compress_min_bytes < 0) throw new Error(`--compress-min-bytes must be a whole number >= 0, got ${String(options.compressMinBytes)}`);
  const client = await connect(options.url, { compress_min_bytes });
  const order: SendOrder = { previous_sent: Promise.resolve(), unsent: 0 };
  const show_bar = options.progress && process.stderr.isTTY === true;
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | {records} records | {rate} records/s | {eta_formatted} left',
    stream: process.stderr,
    hideCursor: true,
  });
  const totals: LoadTotals = { loaded: 0, failed: 0, skipped: 0, failures_shown: 0 };
  const started_ms = performance.now();
  const pending = new Set<Promise<void>>();
  const builder = new ColumnBuilder(batch_size);
  const lines = new Int32Array(batch_size);
  let stopped_at: { line: number; reason: string } | null = null;
  let records = 0;
  const rate = (): number => Math.round(records / Math.max((performance.now() - started_ms) / 1000, 0.001));
  if (show_bar) bar.start(Math.max(total_bytes, 1), 0, { records: 0, rate: 0 });

  const submit = async (): Promise<void> => {
    if (builder.count === 0) return;
    const tracked = sendBatch(client, builder, lines, totals, compress_min_bytes, order).finally(() => pending.delete(tracked));
    // Marked handled here; a failure still surfaces through Promise.race or Promise.all below.
    tracked.catch(() => {});
    pending.add(tracked);
    if (pending.size >= inflight_max) await Promise.race(pending);
    if (show_bar) bar.update(total_bytes > 0 ? bytesRead(input) : 0, { records, rate: rate() });
  };

  try {
    reading: for await (const items of readRecords(input, format, options.skipBad === true)) {
      for (const item of items) {
        if (isBadRecord(item)) {
          process.stderr.write(`pikv load: line ${item.line}: ${item.reason}\n`);
          if (options.skipBad) {
            totals.skipped++;
            continue;
          }
          stopped_at = item;
          break reading;
        }
        lines[builder.count] = item.line;
        builder.put(item.key, item.value);
        records++;
        if (builder.full) await submit();
      }
    }
    await submit();
    await Promise.all(pending);
  } finally {
    if (show_bar) {
      bar.update(total_bytes, { records, rate: rate() });
      bar.stop();
    }
    input.destroy();
    await client.close();
  }

  const seconds = (performance.now() - started_ms) / 1000;
  const loaded_rate = Math.round(totals.loaded / Math.max(seconds, 0.001));
  process.stderr.write(
    `pikv load: ${totals.loaded} records loaded in ${seconds.toFixed(2)} s (${loaded_rate} records/s)` +
      `${totals.skipped > 0 ? `, ${totals.skipped} bad lines skipped` : ''}${totals.failed > 0 ? `, ${totals.failed} rejected by the server` : ''}\n`,
  );
  if (stopped_at !== null) {
    process.stderr.write(`pikv load: stopped before line ${stopped_at.line}; everything before it was loaded (use --skip-bad to skip bad lines)\n`);
    process.exitCode = 1;
  } else if (totals.failed > 0) {
    process.exitCode = 1;
  }
}

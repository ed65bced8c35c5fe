/**
 * `pikv load FILE`: streams records into a node in pipelined batches.
 *
 * Up to --inflight batches of --batch records are outstanding at once. A malformed line is
 * reported with its number; without --skip-bad the load sends everything before it, waits
 * for it to be acknowledged, and stops (exit 1). Ops the server rejects (e.g. KEY_TOO_LARGE,
 * OUT_OF_MEMORY) are counted and the first few reported with their line numbers, so nothing
 * is lost silently.
 */
import { SingleBar } from 'cli-progress';
import { statSync } from 'node:fs';
import { connect, type PikvClient } from '../client/client.js';
import type { BatchOp } from '../client/ops.js';
import { bytesRead, formatFromPath, isBadRecord, openInput, readRecords, type RecordFormat } from './records.js';

interface LoadOptions {
  url: string;
  format?: RecordFormat;
  skipBad?: boolean;
  batch: string;
  inflight: string;
  progress: boolean;
}

/** How many rejected ops are printed one by one before only counting. */
const FAILURES_SHOWN_MAX = 10;

interface LoadTotals {
  loaded: number;
  failed: number;
  skipped: number;
  failures_shown: number;
}

function positiveInteger(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a whole number of at least 1, got ${text}`);
  return value;
}

async function sendBatch(client: PikvClient, ops: BatchOp[], lines: number[], totals: LoadTotals): Promise<void> {
  const results = await client.batch(ops);
  for (let i = 0; i < results.length; i++) {
    const code = results[i]!.code;
    if (code === 'OK') {
      totals.loaded++;
      continue;
    }
    totals.failed++;
    if (totals.failures_shown++ < FAILURES_SHOWN_MAX) process.stderr.write(`pikv load: line ${lines[i]}: rejected by the server: ${code}\n`);
  }
}

export async function runLoad(path: string, options: LoadOptions): Promise<void> {
  const format = options.format ?? formatFromPath(path);
  if (format === null) throw new Error(`cannot tell the format of ${path} from its extension; pass --format tsv|csv|jsonl`);
  const batch_size = positiveInteger(options.batch, 'batch');
  const inflight_max = positiveInteger(options.inflight, 'inflight');
  const total_bytes = path === '-' ? 0 : statSync(path).size;
  const input = openInput(path);
  const client = await connect(options.url);
  const show_bar = options.progress && process.stderr.isTTY === true;
  const bar = new SingleBar({
    format: ' {bar} {percentage}% | {records} records | {rate} records/s | {eta_formatted} left',
    stream: process.stderr,
    hideCursor: true,
  });
  const totals: LoadTotals = { loaded: 0, failed: 0, skipped: 0, failures_shown: 0 };
  const started_ms = performance.now();
  const pending = new Set<Promise<void>>();
  let stopped_at: { line: number; reason: string } | null = null;
  let records = 0;
  if (show_bar) bar.start(Math.max(total_bytes, 1), 0, { records: 0, rate: 0 });

  let ops: BatchOp[] = [];
  let lines: number[] = [];
  const submit = async (): Promise<void> => {
    if (ops.length === 0) return;
    const sent = sendBatch(client, ops, lines, totals);
    ops = [];
    lines = [];
    const tracked = sent.finally(() => pending.delete(tracked));
    // Marked handled here; the failure still surfaces through Promise.race or Promise.all below.
    tracked.catch(() => {});
    pending.add(tracked);
    if (pending.size >= inflight_max) await Promise.race(pending);
    if (show_bar) {
      const seconds = (performance.now() - started_ms) / 1000;
      bar.update(total_bytes > 0 ? bytesRead(input) : 0, { records, rate: Math.round(records / Math.max(seconds, 0.001)) });
    }
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
        ops.push({ op: 'put', key: item.key, value: item.value });
        lines.push(item.line);
        records++;
        if (ops.length >= batch_size) await submit();
      }
    }
    await submit();
    await Promise.all(pending);
  } finally {
    if (show_bar) {
      bar.update(total_bytes, { records, rate: Math.round(records / Math.max((performance.now() - started_ms) / 1000, 0.001)) });
      bar.stop();
    }
    input.destroy();
    await client.close();
  }

  const seconds = (performance.now() - started_ms) / 1000;
  const rate = Math.round(totals.loaded / Math.max(seconds, 0.001));
  process.stderr.write(
    `pikv load: ${totals.loaded} records loaded in ${seconds.toFixed(2)} s (${rate} records/s)` +
      `${totals.skipped > 0 ? `, ${totals.skipped} bad lines skipped` : ''}${totals.failed > 0 ? `, ${totals.failed} rejected by the server` : ''}\n`,
  );
  if (stopped_at !== null) {
    process.stderr.write(`pikv load: stopped before line ${stopped_at.line}; everything before it was loaded (use --skip-bad to skip bad lines)\n`);
    process.exitCode = 1;
  } else if (totals.failed > 0) {
    process.exitCode = 1;
  }
}

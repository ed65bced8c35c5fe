/**
 * Streaming readers for the files `pikv load` accepts. Each yields records with the line they
 * came from, or a BadRecord naming the line and what is wrong with it. Nothing is read ahead
 * of what the consumer asks for, so files larger than memory stream through.
 *
 * - tsv:   key TAB value; the value is the rest of the line, tabs included.
 * - csv:   RFC 4180, exactly two columns: key,value.
 * - jsonl: one object per line: {"key": "...", "value": "..."}.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';

export type RecordFormat = 'tsv' | 'csv' | 'jsonl';

export interface KeyValueRecord {
  line: number;
  key: string;
  value: string;
}

export interface BadRecord {
  line: number;
  reason: string;
}

export type ReadItem = KeyValueRecord | BadRecord;

export function isBadRecord(item: ReadItem): item is BadRecord {
  return (item as BadRecord).reason !== undefined;
}

export function formatFromPath(path: string): RecordFormat | null {
  const lower = path.toLowerCase();
  if (lower.endsWith('.tsv') || lower.endsWith('.tab')) return 'tsv';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return null;
}

/** Opens `path` (or standard input for "-") with a large read buffer. */
export function openInput(path: string): Readable {
  if (path === '-') return process.stdin;
  return createReadStream(path, { highWaterMark: 1024 * 1024 });
}

export function bytesRead(input: Readable): number {
  return (input as ReadStream).bytesRead ?? 0;
}

async function* readLines(input: Readable, parseLine: (text: string, line: number) => ReadItem): AsyncGenerator<ReadItem> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.length === 0) continue;
    yield parseLine(text, line);
  }
}

function parseTsvLine(text: string, line: number): ReadItem {
  const tab = text.indexOf('\t');
  if (tab < 0) return { line, reason: 'no TAB between key and value' };
  return { line, key: text.slice(0, tab), value: text.slice(tab + 1) };
}

function parseJsonLine(text: string, line: number): ReadItem {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { line, reason: `not JSON: ${(error as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object') return { line, reason: 'not a JSON object' };
  const { key, value } = parsed as { key?: unknown; value?: unknown };
  if (typeof key !== 'string') return { line, reason: '"key" must be a string' };
  if (typeof value !== 'string') return { line, reason: '"value" must be a string' };
  return { line, key, value };
}

async function* readCsv(input: Readable, skip_bad: boolean): AsyncGenerator<ReadItem> {
  const bad: BadRecord[] = [];
  const parser = parseCsv({
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: skip_bad,
  });
  parser.on('skip', (error: Error & { lines?: number }) => bad.push({ line: error.lines ?? 0, reason: error.message }));
  input.pipe(parser);
  try {
    for await (const entry of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      while (bad.length > 0) yield bad.shift()!;
      const { record, info } = entry;
      if (record.length !== 2) yield { line: info.lines, reason: `expected 2 columns (key,value), found ${record.length}` };
      else yield { line: info.lines, key: record[0]!, value: record[1]! };
    }
  } catch (error) {
    const lines = (error as { lines?: number }).lines ?? 0;
    yield { line: lines, reason: (error as Error).message };
    return;
  }
  while (bad.length > 0) yield bad.shift()!;
}

export function readRecords(input: Readable, format: RecordFormat, skip_bad: boolean): AsyncGenerator<ReadItem> {
  if (format === 'csv') return readCsv(input, skip_bad);
  return readLines(input, format === 'tsv' ? parseTsvLine : parseJsonLine);
}

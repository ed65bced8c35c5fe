/**
 * Streaming readers for the files `pikv load` accepts. They yield records in chunks (one
 * array per chunk of input read), each record with the line it came from, or a BadRecord
 * naming the line and what is wrong with it. Nothing is read ahead of what the consumer asks
 * for, so files larger than memory stream through.
 *
 * - tsv:   key TAB value; the value is the rest of the line, tabs included. Keys and values
 *          stay raw bytes (no UTF-8 decoding), which is what makes a 1M-line load fast.
 * - csv:   RFC 4180, exactly two columns: key,value.
 * - jsonl: one object per line: {"key": "...", "value": "..."}.
 * Lines may end in LF or CRLF; empty lines are skipped.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';

export type RecordFormat = 'tsv' | 'csv' | 'jsonl';

export interface KeyValueRecord {
  line: number;
  key: string | Uint8Array;
  value: string | Uint8Array;
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

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const TAB = 0x09;
/** A line longer than this is reported as bad instead of being buffered without bound. */
export const LINE_BYTES_MAX = 64 * 1024 * 1024;

type LineParser = (bytes: Buffer, start: number, end: number, line: number) => ReadItem;

function parseTsvLine(bytes: Buffer, start: number, end: number, line: number): ReadItem {
  const tab = bytes.indexOf(TAB, start);
  if (tab < 0 || tab >= end) return { line, reason: 'no TAB between key and value' };
  return { line, key: bytes.subarray(start, tab), value: bytes.subarray(tab + 1, end) };
}

function parseJsonLine(bytes: Buffer, start: number, end: number, line: number): ReadItem {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8', start, end));
  } catch (error) {
    return { line, reason: `not JSON: ${(error as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object') return { line, reason: 'not a JSON object' };
  const { key, value } = parsed as { key?: unknown; value?: unknown };
  if (typeof key !== 'string') return { line, reason: '"key" must be a string' };
  if (typeof value !== 'string') return { line, reason: '"value" must be a string' };
  return { line, key, value };
}

/** Splits the input into lines on raw bytes and parses each complete line. */
async function* readLines(input: Readable, parseLine: LineParser): AsyncGenerator<ReadItem[]> {
  let carry: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    const bytes = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    const items: ReadItem[] = [];
    let start = 0;
    for (let newline = bytes.indexOf(NEWLINE, start); newline >= 0; newline = bytes.indexOf(NEWLINE, start)) {
      line++;
      const end = newline > start && bytes[newline - 1] === CARRIAGE_RETURN ? newline - 1 : newline;
      if (end > start) items.push(parseLine(bytes, start, end, line));
      start = newline + 1;
    }
    carry = bytes.subarray(start);
    if (carry.length > LINE_BYTES_MAX) {
      items.push({ line: line + 1, reason: `line is longer than ${LINE_BYTES_MAX} bytes` });
      yield items;
      return;
    }
    if (items.length > 0) yield items;
  }
  if (carry.length > 0) {
    const end = carry[carry.length - 1] === CARRIAGE_RETURN ? carry.length - 1 : carry.length;
    if (end > 0) yield [parseLine(carry, 0, end, line + 1)];
  }
}

async function* readCsv(input: Readable, skip_bad: boolean): AsyncGenerator<ReadItem[]> {
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
      const items: ReadItem[] = bad.splice(0);
      const { record, info } = entry;
      if (record.length !== 2) items.push({ line: info.lines, reason: `expected 2 columns (key,value), found ${record.length}` });
      else items.push({ line: info.lines, key: record[0]!, value: record[1]! });
      yield items;
    }
  } catch (error) {
    const lines = (error as { lines?: number }).lines ?? 0;
    yield [{ line: lines, reason: (error as Error).message }];
    return;
  }
  if (bad.length > 0) yield bad.splice(0);
}

export function readRecords(input: Readable, format: RecordFormat, skip_bad: boolean): AsyncGenerator<ReadItem[]> {
  if (format === 'csv') return readCsv(input, skip_bad);
  return readLines(input, format === 'tsv' ? parseTsvLine : parseJsonLine);
}

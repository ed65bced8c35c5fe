/**
 * The JSON form of POST /v1/batch (docs/PROTOCOL.md, "HTTP"): a body of
 *
 *   {"ops": [{"op": "get", "key": "k"}, {"op": "put", "key": "k", "value": "v"}, {"op": "del", "key": "k"}]}
 *
 * becomes one RequestBatch for the dispatcher, and its answer the JSON
 *
 *   {"results": [{"code": "OK", "value": "v"}, {"code": "OK"}, {"code": "NOT_FOUND"}]}
 *
 * Keys and values are text (their UTF-8 bytes), or any bytes as `key_base64` / `value_base64`.
 * A GET's value comes back as `value` when it is UTF-8 text without control characters other
 * than tab, CR and LF (so its JSON is at most twice its size), else as `value_base64`; a
 * request with `"value_encoding": "base64"` gets every value as `value_base64`. Key and value
 * limits fail single ops, as in every other protocol; only a malformed body fails the request.
 */
import { isUtf8 } from 'node:buffer';
import type { RequestBatch } from '../../protocol/codec.js';
import { Op } from '../../protocol/constants.js';
import { defaultMessage, ErrorCode, statusName, type ErrorCodeName } from '../../protocol/errors.js';
import type { PendingRequest } from '../../engine/pending-request.js';

export class BatchBodyError extends Error {
  readonly code: ErrorCodeName;
  constructor(code: ErrorCodeName, message: string) {
    super(message);
    this.code = code;
  }
}

export interface JsonBatch {
  batch: RequestBatch;
  gets: number;
  /** Every GET value as value_base64, whatever its bytes. */
  base64_values: boolean;
}

const OP_NAMES: Readonly<Record<string, number>> = { get: Op.GET, put: Op.PUT, del: Op.DELETE, delete: Op.DELETE };
const OP_FIELDS = new Set(['op', 'key', 'key_base64', 'value', 'value_base64']);
const BODY_FIELDS = new Set(['ops', 'value_encoding']);
/** Standard base64 (RFC 4648 section 4), padding optional; Buffer.from alone would skip bad characters silently. */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function fail(message: string): never {
  throw new BatchBodyError(ErrorCode.BAD_REQUEST, message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The bytes of a text or base64 field pair (`key` / `key_base64`); exactly one must be given. */
function bytesOf(op: Record<string, unknown>, name: string, index: number): Buffer {
  const text = op[name];
  const base64 = op[`${name}_base64`];
  if (text !== undefined && base64 !== undefined) fail(`ops[${index}]: give ${name} or ${name}_base64, not both`);
  if (text !== undefined) {
    if (typeof text !== 'string') fail(`ops[${index}].${name} must be a string`);
    return Buffer.from(text, 'utf8');
  }
  if (base64 === undefined) fail(`ops[${index}] needs ${name} (text) or ${name}_base64`);
  if (typeof base64 !== 'string' || !BASE64.test(base64) || base64.replace(/=+$/, '').length % 4 === 1) {
    fail(`ops[${index}].${name}_base64 must be standard base64`);
  }
  return Buffer.from(base64, 'base64');
}

/** Structural characters ({ [ , :) one op may have: an object of at most 3 fields. */
const TOKENS_PER_OP_MAX = 8;
/** The body's own: the outer object, "ops" and "value_encoding". */
const TOKENS_OUTSIDE_OPS_MAX = 8;

/**
 * Counts JSON's structural characters outside strings, and refuses a body with more than a
 * valid batch of `ops_max` ops can have, before JSON.parse sees it. A batch body may be as
 * large as frame_bytes_max (64 MiB), and JSON.parse turns each `{}` (2 bytes) into an object of
 * ~50 bytes: `[{},{},...]` would cost a node over 1 GiB. A valid batch has at most one array and
 * a few tokens per op, so what is parsed stays in proportion to batch_ops_max.
 */
function checkShape(body: Buffer, ops_max: number): void {
  const tokens_max = TOKENS_OUTSIDE_OPS_MAX + TOKENS_PER_OP_MAX * ops_max;
  let tokens = 0;
  let arrays = 0;
  let in_string = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (in_string) {
      if (byte === 0x5c) i++; // a backslash escapes the next character, a quote among them
      else if (byte === 0x22) in_string = false;
      continue;
    }
    if (byte === 0x22) in_string = true;
    else if (byte === 0x5b) arrays++;
    else if (byte === 0x7b || byte === 0x2c || byte === 0x3a) tokens++;
  }
  if (arrays > 1) fail('the body may hold one array, "ops"');
  if (tokens > tokens_max) throw new BatchBodyError(ErrorCode.TOO_MANY_OPS, `the body has more than the ${ops_max} ops batch_ops_max allows (or is not a batch)`);
}

/** Parses a JSON batch body; throws BatchBodyError (BAD_REQUEST, TOO_MANY_OPS) for a body that cannot be run. */
export function parseJsonBatch(body: Buffer, id: number, ops_max: number): JsonBatch {
  checkShape(body, ops_max);
  let text: string;
  try {
    // Strict: replacing invalid bytes with U+FFFD would store other keys and values than sent.
    text = UTF8.decode(body);
  } catch {
    fail('the body is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(`the body is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed) || !Array.isArray(parsed['ops'])) fail('the body must be a JSON object with an "ops" array');
  for (const name of Object.keys(parsed)) if (!BODY_FIELDS.has(name)) fail(`unknown field ${JSON.stringify(name.slice(0, 50))} (fields: ops, value_encoding)`);
  const encoding = parsed['value_encoding'];
  if (encoding !== undefined && encoding !== 'base64' && encoding !== 'auto') fail('value_encoding must be "base64" or "auto"');
  const ops = parsed['ops'] as unknown[];
  if (ops.length > ops_max) throw new BatchBodyError(ErrorCode.TOO_MANY_OPS, `the batch has ${ops.length} ops; the limit is ${ops_max} (batch_ops_max)`);

  const count = ops.length;
  const op_codes = new Uint8Array(count);
  const key_lengths = new Uint32Array(count);
  const value_lengths = new Uint32Array(count);
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  let gets = 0;
  for (let i = 0; i < count; i++) {
    const op = ops[i];
    if (!isObject(op)) fail(`ops[${i}] must be an object`);
    for (const name of Object.keys(op)) if (!OP_FIELDS.has(name)) fail(`ops[${i}]: unknown field ${JSON.stringify(name.slice(0, 50))}`);
    const code = typeof op['op'] === 'string' ? OP_NAMES[op['op']] : undefined;
    if (code === undefined) fail(`ops[${i}].op must be "get", "put" or "del"`);
    const key = bytesOf(op, 'key', i);
    op_codes[i] = code;
    key_lengths[i] = key.length;
    keys.push(key);
    if (code === Op.PUT) {
      const value = bytesOf(op, 'value', i);
      value_lengths[i] = value.length;
      values.push(value);
    } else if (op['value'] !== undefined || op['value_base64'] !== undefined) {
      fail(`ops[${i}]: only a put takes a value`);
    }
    if (code === Op.GET) gets++;
  }
  return {
    batch: { id, op: op_codes, key_lengths, value_lengths, keys: Buffer.concat(keys), values: Buffer.concat(values) },
    gets,
    base64_values: encoding === 'base64',
  };
}

/** True if `value` reads back exactly as a JSON string at most twice its size. */
function isPlainText(value: Buffer): boolean {
  for (let i = 0; i < value.length; i++) {
    const byte = value[i]!;
    if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  return isUtf8(value);
}

/**
 * The JSON answer: one result per op, in order, for the request's ops `ops` (a GET that found
 * an empty value shows "value": "", so it cannot be taken for a PUT's OK). After
 * request.limitValues().
 */
export function renderJsonResults(request: PendingRequest, ops: Uint8Array, base64_values: boolean): Buffer {
  const parts: string[] = [];
  let scratch = Buffer.allocUnsafe(0);
  for (let i = 0; i < request.op_count; i++) {
    const code = statusName(request.status[i]!);
    if (code === 'OK' && ops[i] === Op.GET) {
      const length = request.value_length[i]!;
      if (scratch.length < length) scratch = Buffer.allocUnsafe(Math.max(length, scratch.length * 2));
      request.copyValue(i, scratch, 0);
      const value = scratch.subarray(0, length);
      parts.push(!base64_values && isPlainText(value)
        ? `{"code":"OK","value":${JSON.stringify(value.toString('utf8'))}}`
        : `{"code":"OK","value_base64":"${value.toString('base64')}"}`);
    } else if (code === 'OK' || code === ErrorCode.NOT_FOUND) {
      parts.push(`{"code":"${code}"}`);
    } else {
      parts.push(`{"code":"${code}","message":${JSON.stringify(defaultMessage(code))}}`);
    }
  }
  return Buffer.from(`{"results":[${parts.join(',')}]}\n`);
}

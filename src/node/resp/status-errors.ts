/**
 * pikv's per-op statuses as RESP error replies (docs/RESP.md, "Errors").
 *
 * Every error names pikv's stable code right after the error kind, so code can branch on it
 * as it would on PikvError.code: `-ERR KEY_TOO_LARGE ...`. The kind is what Redis clients
 * know: OOM for OUT_OF_MEMORY (Redis's maxmemory error), TRYAGAIN for the retryable codes
 * (errors.ts RETRYABLE_CODES: not applied, or for WORKER_RESTARTED and NODE_DOWN maybe
 * applied; safe to send again), ERR for the rest.
 */
import { defaultMessage, RETRYABLE_CODES, statusName, type ErrorCodeName } from '../../protocol/errors.js';
import { ErrorCode } from '../../protocol/errors.js';

/** The node limits an error message may quote. */
export interface ErrorLimits {
  key_bytes_max: number;
  value_bytes_max: number;
  response_bytes_max: number;
  batch_ops_max: number;
}

/** The Redis error kind a pikv code is sent with. */
export function errorKind(code: ErrorCodeName): string {
  if (code === ErrorCode.OUT_OF_MEMORY) return 'OOM';
  if (RETRYABLE_CODES.has(code)) return 'TRYAGAIN';
  return 'ERR';
}

/** The text of an error reply (without the leading '-') for a pikv code. */
export function codeErrorText(code: ErrorCodeName, limits: ErrorLimits, detail = ''): string {
  return `${errorKind(code)} ${code} ${detail === '' ? defaultMessage(code) : detail}${limitNote(code, limits)}`;
}

/** The text of an error reply for a per-op status byte that is not OK or NOT_FOUND. */
export function statusErrorText(status: number, limits: ErrorLimits): string {
  const name = statusName(status);
  return codeErrorText(name === 'OK' ? ErrorCode.INTERNAL : name, limits);
}

function limitNote(code: ErrorCodeName, limits: ErrorLimits): string {
  switch (code) {
    case ErrorCode.KEY_TOO_LARGE: return ` (key_bytes_max is ${limits.key_bytes_max})`;
    case ErrorCode.VALUE_TOO_LARGE: return ` (value_bytes_max is ${limits.value_bytes_max})`;
    case ErrorCode.RESPONSE_TOO_LARGE: return ` (response_bytes_max is ${limits.response_bytes_max} per socket read's replies)`;
    case ErrorCode.TOO_MANY_OPS: return ` (batch_ops_max is ${limits.batch_ops_max})`;
    default: return '';
  }
}

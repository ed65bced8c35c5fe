/**
 * On an etcd member board, `pikv etcd-form` (src/cli/etcd-form.ts) writes its state to a small
 * JSON file: waiting and why ("waiting for etcd formation: saw 2 of 3 members ..."), starting,
 * or running. The node shows it in its summary, so the dashboard says why the cluster is not
 * there yet. Read on each summary (once a second at most per viewer): a few hundred bytes.
 * Anything unreadable or malformed is shown as such, never thrown.
 */
import { closeSync, openSync, readSync } from 'node:fs';

export interface FormationNote {
  state: string;
  reason: string;
  updated_ms: number;
}

/** More than the driver ever writes; a larger file is cut here, and then fails to parse. */
const FILE_BYTES_MAX = 8 * 1024;
const REASON_CHARS_MAX = 500;

export function readFormationNote(path: string): FormationNote | null {
  if (path === '') return null;
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(FILE_BYTES_MAX);
      text = buffer.subarray(0, readSync(fd, buffer, 0, FILE_BYTES_MAX, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { state: 'unknown', reason: code === 'ENOENT' ? 'etcd formation has not reported yet' : `cannot read ${path}: ${code ?? (error as Error).message}`, updated_ms: 0 };
  }
  try {
    const value = JSON.parse(text) as Record<string, unknown>;
    const state = typeof value['state'] === 'string' ? value['state'].slice(0, 32) : 'unknown';
    const reason = typeof value['reason'] === 'string' ? value['reason'].slice(0, REASON_CHARS_MAX) : '';
    const updated_ms = typeof value['updated_ms'] === 'number' && Number.isFinite(value['updated_ms']) ? value['updated_ms'] : 0;
    return { state, reason, updated_ms };
  } catch {
    return { state: 'unknown', reason: `${path} is not valid JSON`, updated_ms: 0 };
  }
}

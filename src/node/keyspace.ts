/**
 * The whole store's keys, for the RESP commands that list, count or clear them (SCAN, KEYS,
 * DBSIZE, FLUSHALL): pages come from the cluster's KeyScan (every key once, from its primary),
 * and FLUSHALL deletes what it lists through the dispatcher, as a client's DELs would go, so
 * each delete is logged, routed to the key's primary and replicated like any other.
 */
import type { KeyPage, KeyScan } from '../cluster/key-scan.js';
import type { RequestBatch } from '../protocol/codec.js';
import { Op, Status } from '../protocol/constants.js';
import { ErrorCode, PikvError, statusName } from '../protocol/errors.js';
import type { PendingRequest, RequestDone } from '../engine/pending-request.js';

/** Keys FLUSHALL lists and deletes per round. */
const FLUSH_PAGE_KEYS = 1000;

export interface KeyspaceHost {
  readonly keys: KeyScan;
  submit(batch: RequestBatch, frame_bytes: number, done: RequestDone): PendingRequest;
}

export class Keyspace {
  constructor(private readonly host: KeyspaceHost) {}

  /** One SCAN page from `cursor` (key-scan.ts parseScanCursor). */
  page(cursor: bigint, count: number): Promise<KeyPage> {
    return this.host.keys.page(cursor, count);
  }

  /** Keys in the whole store, each once. */
  count(): Promise<number> {
    return this.host.keys.count();
  }

  /**
   * Deletes every key one full scan lists, page by page; resolves how many it deleted. Not
   * atomic: a key written while it runs may survive (docs/RESP.md, FLUSHALL).
   */
  async flush(): Promise<number> {
    let deleted = 0;
    let cursor = 0n;
    for (;;) {
      const page = await this.host.keys.page(cursor, FLUSH_PAGE_KEYS);
      if (page.keys.length > 0) deleted += await this.deleteKeys(page.keys);
      if (page.cursor === '0') return deleted;
      cursor = BigInt(page.cursor);
    }
  }

  private deleteKeys(keys: Uint8Array[]): Promise<number> {
    const count = keys.length;
    const key_lengths = new Uint32Array(count);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      key_lengths[i] = keys[i]!.length;
      bytes += keys[i]!.length;
    }
    const joined = new Uint8Array(bytes);
    let offset = 0;
    for (const key of keys) {
      joined.set(key, offset);
      offset += key.length;
    }
    const batch: RequestBatch = { id: 0, op: new Uint8Array(count).fill(Op.DELETE), key_lengths, value_lengths: new Uint32Array(count), keys: joined, values: new Uint8Array(0) };
    return new Promise((resolve, reject) => {
      this.host.submit(batch, bytes, (request) => {
        let deleted = 0;
        for (let i = 0; i < count; i++) {
          const status = request.status[i]!;
          if (status === Status.OK) deleted++;
          else if (status !== Status.NOT_FOUND) {
            const name = statusName(status);
            reject(new PikvError(name === 'OK' ? ErrorCode.INTERNAL : name, `FLUSHALL: a delete failed with ${name}`));
            return;
          }
        }
        resolve(deleted);
      });
    });
  }
}

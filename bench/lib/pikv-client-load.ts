/**
 * Load through the pikv client library, the way an application uses it: batch() with an
 * object per op, or batchColumns() with pre-built columns. Op lists are built before the
 * clock starts, so the run measures the library and the server, not key formatting.
 */
import { connect, Status, type BatchOp, type ColumnBatch } from '../../src/index.js';
import type { LoadTotals } from './redis-resp.js';

export type ClientRequest = { kind: 'batch'; ops: BatchOp[] } | { kind: 'columns'; batch: ColumnBatch } | { kind: 'get'; key: Buffer };

export interface PikvClientOptions {
  url: string;
  connections: number;
  /** Calls in flight per connection. */
  depth: number;
  requests: readonly ClientRequest[];
  deadline_ms: number;
  onRequestDone?: (elapsed_ms: number) => void;
}

function opCount(request: ClientRequest): number {
  if (request.kind === 'batch') return request.ops.length;
  if (request.kind === 'columns') return request.batch.op.length;
  return 1;
}

export async function runPikvClient(options: PikvClientOptions): Promise<LoadTotals> {
  const totals: LoadTotals = { requests: 0, ops: 0, misses: 0, errors: 0 };
  const stride = Math.max(1, Math.floor(options.requests.length / (options.connections * options.depth)));
  const connections = Array.from({ length: options.connections }, async (_, c) => {
    const kv = await connect(options.url, { request_timeout_ms: 120_000 });
    const loop = async (lane: number): Promise<void> => {
      let next = (c * options.depth + lane) * stride;
      while (performance.now() < options.deadline_ms) {
        const request = options.requests[next++ % options.requests.length]!;
        const started_ms = performance.now();
        if (request.kind === 'batch') {
          const results = await kv.batch(request.ops);
          for (const result of results) if (result.code !== 'OK') totals.misses++;
        } else if (request.kind === 'columns') {
          const { status } = await kv.batchColumns(request.batch);
          for (let i = 0; i < status.length; i++) if (status[i] !== Status.OK) totals.misses++;
        } else if ((await kv.get(request.key)) === undefined) {
          totals.misses++;
        }
        options.onRequestDone?.(performance.now() - started_ms);
        totals.requests++;
        totals.ops += opCount(request);
      }
    };
    await Promise.all(Array.from({ length: options.depth }, (_, lane) => loop(lane)));
    await kv.close();
  });
  await Promise.all(connections);
  return totals;
}

/**
 * Answers of the read-only routes that show the node (routes.ts: metrics, asset, summary,
 * cluster, events), from the node's Observe (src/node/observe/observe.ts). They run no op
 * through the dispatcher and change nothing.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCode } from '../../protocol/errors.js';
import { PROMETHEUS_CONTENT_TYPE } from '../metrics/prometheus-text.js';
import type { Observe } from '../observe/observe.js';
import { codeReply, sendBody, type ErrorReply } from './replies.js';
import type { Route } from './routes.js';

export type ObserveRoute = Extract<Route, { kind: 'metrics' | 'asset' | 'summary' | 'cluster' | 'events' }>;

const JSON_TYPE = 'application/json; charset=utf-8';
/**
 * The dashboard loads only its own files and talks only to its own node; no page may frame it
 * (clickjacking). uPlot sets element styles from script, which 'self' alone would not allow.
 */
const PAGE_POLICY = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export interface ObserveAnswer {
  /** Bytes handed to the response (they count as unwritten until it finishes), or an error to send. */
  sent?: number;
  refusal?: ErrorReply;
  /** The answer comes later (cluster): `sent` is reported through the callback. */
  pending?: Promise<number>;
  /** A stream that stays open (events): not counted as answer bytes; the stream bounds itself. */
  streaming?: boolean;
}

export function answerObserve(route: ObserveRoute, observe: Observe, res: ServerResponse): ObserveAnswer {
  switch (route.kind) {
    case 'metrics':
      return { sent: sendBody(res, 200, PROMETHEUS_CONTENT_TYPE, Buffer.from(observe.metricsText())) };
    case 'asset': {
      const asset = observe.asset(route.name);
      if (asset === null) return { refusal: { status: 404, code: ErrorCode.UNKNOWN_ROUTE, message: `no dashboard file ${JSON.stringify(route.name.slice(0, 100))}` } };
      if (route.name === 'index.html') res.setHeader('content-security-policy', PAGE_POLICY);
      return { sent: sendBody(res, 200, asset.content_type, asset.body) };
    }
    case 'summary':
      return { sent: sendBody(res, 200, JSON_TYPE, Buffer.from(`${JSON.stringify(observe.summary(route.history))}\n`)) };
    case 'cluster':
      return { pending: observe.cluster(route.history).then((summary) => sendBody(res, 200, JSON_TYPE, Buffer.from(`${JSON.stringify(summary)}\n`))) };
    case 'events':
      if (!observe.subscribe(res)) return { refusal: codeReply(ErrorCode.TOO_MANY_CONNECTIONS, 'too many dashboard event streams are open on this node; retry later') };
      return { streaming: true };
  }
}

/**
 * Everything a node shows about itself, in one place for the HTTP front end: /metrics text,
 * its summary, the cluster's summary, the dashboard's event stream and files. Built by the
 * server (server.ts) from its own parts; started and stopped with it.
 */
import type { ServerResponse } from 'node:http';
import type { ClusterStatus } from '../../cluster/cluster-status.js';
import { NodeSampler } from '../metrics/node-sampler.js';
import { renderMetrics, type MetricsSource } from '../metrics/render-metrics.js';
import type { RequestMetrics } from '../metrics/request-metrics.js';
import type { NodeStats } from '../stats.js';
import type { Partition } from '../../engine/partition.js';
import type { ConnectionProtocol } from '../request-budget.js';
import { assetOf, type Asset } from './assets.js';
import { ClusterSummaries, type ClusterSummary } from './cluster-summary.js';
import { EventStream } from './event-stream.js';
import { nodeSummary, type NodeSummary } from './node-summary.js';
import { readFormationNote } from './formation-note.js';

/** What Observe reads from the node (PikvServer). */
export interface ObservedNode {
  stats(): NodeStats;
  readonly partitions: readonly Partition[];
  connectionsByProtocol(): Record<ConnectionProtocol, number>;
  clusterStatus(): ClusterStatus;
  readonly shutting_down: boolean;
  log(message: string): void;
}

export class Observe {
  readonly sampler: NodeSampler;
  private readonly node: ObservedNode;
  private readonly metrics: RequestMetrics | null;
  private readonly summaries: ClusterSummaries;
  private readonly events: EventStream;
  private readonly formation_status_file: string;

  constructor(node: ObservedNode, metrics: RequestMetrics | null, settings: { client_token: string; tls_ca: string; formation_status_file?: string }) {
    this.node = node;
    this.formation_status_file = settings.formation_status_file ?? '';
    this.metrics = metrics;
    this.sampler = new NodeSampler(metrics, {
      opsTotal: () => metrics?.client_ops ?? node.stats().ops,
      keys: () => {
        let keys = 0;
        for (const partition of node.partitions) keys += partition.table.keys;
        return keys;
      },
      bytesUsed: () => {
        let bytes = 0;
        for (const partition of node.partitions) bytes += partition.table.stats().bytes_used;
        return bytes;
      },
    });
    this.summaries = new ClusterSummaries({
      clusterStatus: () => node.clusterStatus(),
      summary: (with_history) => this.summary(with_history),
      client_token: settings.client_token,
      tls_ca: settings.tls_ca,
    });
    this.events = new EventStream(this.summaries, (message) => node.log(message));
  }

  start(): void {
    this.sampler.start();
  }

  stop(): void {
    this.events.close();
    this.sampler.stop();
  }

  metricsText(): string {
    const node = this.node;
    const source: MetricsSource = {
      stats: () => node.stats(),
      partitions: node.partitions,
      connectionsByProtocol: () => node.connectionsByProtocol(),
      clusterStatus: () => node.clusterStatus(),
      request_metrics: this.metrics,
      sampler: this.sampler,
    };
    return renderMetrics(source);
  }

  summary(with_history: boolean): NodeSummary {
    const node = this.node;
    return nodeSummary({
      stats: () => node.stats(),
      clusterStatus: () => node.clusterStatus(),
      sampler: this.sampler,
      metrics_enabled: this.metrics !== null,
      shutting_down: node.shutting_down,
      formation: () => readFormationNote(this.formation_status_file),
    }, with_history);
  }

  cluster(with_history: boolean): Promise<ClusterSummary> {
    return this.summaries.get(with_history);
  }

  /** Starts an event stream on `res`; false when there are too many already. */
  subscribe(res: ServerResponse): boolean {
    return this.events.subscribe(res);
  }

  asset(name: string): Asset | null {
    return assetOf(name);
  }
}

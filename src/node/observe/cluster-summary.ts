/**
 * The whole cluster as one node sees it (GET /v1/cluster, the dashboard's SSE stream and
 * `pikv top`): its own summary, each other member's summary fetched from that member's
 * GET /v1/summary, and the ring drawn as RING_SECTORS sectors with the replica set of each.
 *
 * Why the node fetches and not the browser: a page may only read its own origin (the node
 * sends no CORS headers, request-guard.ts), and a phone on the LAN can reach one board as
 * easily as all of them. Fetches run at most once per CACHE_MS however many viewers there
 * are, each bounded by FETCH_TIMEOUT_MS and SUMMARY_BYTES_MAX. A member that does not answer
 * is shown down, with the reason.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ClusterStatus } from '../../cluster/cluster-status.js';
import { HashRing, RING_SLOTS } from '../../routing/ring.js';
import type { ClusterView } from '../../routing/view.js';
import type { NodeSummary } from './node-summary.js';

/** Sectors the ring is drawn with; each shows the replica set of its middle slot. */
export const RING_SECTORS = 256;
const CACHE_MS = 900;
const FETCH_TIMEOUT_MS = 800;
/** A summary with 10 minutes of history is ~80 KB. */
const SUMMARY_BYTES_MAX = 1024 * 1024;

export interface RingPicture {
  epoch: number;
  replicas: number;
  /** owners[sector]: node ids, primary first. */
  owners: string[][];
}

export interface ClusterSummary {
  t_ms: number;
  /** The node that answered. */
  from: string;
  epoch: number;
  /** Members of the view, joining nodes (view.next) and those marked down. */
  members: string[];
  joining: string[];
  marked_down: string[];
  ring: RingPicture | null;
  nodes: NodeSummary[];
}

export interface ClusterSource {
  clusterStatus(): ClusterStatus;
  summary(with_history: boolean): NodeSummary;
  /** Sent as Authorization: Bearer to the other members ('' for none). */
  readonly client_token: string;
  /** PEM CA for https:// members ('' for none). */
  readonly tls_ca: string;
}

export class ClusterSummaries {
  private readonly source: ClusterSource;
  /** The last build with and without history: however many pages or pipelined requests ask, members are asked at most once per CACHE_MS. */
  private readonly cached: ({ at_ms: number; value: Promise<ClusterSummary> } | null)[] = [null, null];
  private ring: RingPicture | null = null;
  private ring_key = '';

  constructor(source: ClusterSource) {
    this.source = source;
  }

  /** The cluster now; with_history asks every member for its 10 minutes of samples too. */
  get(with_history = false): Promise<ClusterSummary> {
    const now_ms = Date.now();
    const slot = with_history ? 1 : 0;
    const cached = this.cached[slot];
    if (cached !== null && cached !== undefined && now_ms - cached.at_ms < CACHE_MS) return cached.value;
    const value = this.build(with_history);
    this.cached[slot] = { at_ms: now_ms, value };
    return value;
  }

  private async build(with_history: boolean): Promise<ClusterSummary> {
    const status = this.source.clusterStatus();
    const view = status.view;
    const self = this.source.summary(with_history);
    const marked_down = view.down ?? [];
    const joining = (view.next ?? []).filter((n) => !view.nodes.some((m) => m.id === n.id));
    const others = [...view.nodes, ...joining].filter((n) => n.id !== self.node_id);
    const nodes = await Promise.all(others.map(async (node): Promise<NodeSummary> => {
      const peer = status.peers.find((p) => p.id === node.id);
      try {
        const summary = await fetchSummary(node.url, with_history, this.source.client_token, this.source.tls_ca);
        if (marked_down.includes(node.id)) return { ...summary, state: 'down', reason: 'marked down in the view' };
        return summary;
      } catch (error) {
        const reason = marked_down.includes(node.id) ? 'marked down in the view' : `no answer: ${(error as Error).message}`;
        return downNode(node.id, node.url, status.epoch, peer?.up === true ? `${reason} (its peer link is up)` : reason);
      }
    }));
    return {
      t_ms: Date.now(),
      from: self.node_id,
      epoch: status.epoch,
      members: view.nodes.map((n) => n.id),
      joining: joining.map((n) => n.id),
      marked_down,
      ring: this.ringOf(view),
      nodes: [self, ...nodes].sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : 0)),
    };
  }

  /** The ring's sectors, rebuilt only when the view changes (building a ring takes a few ms). */
  private ringOf(view: ClusterView): RingPicture | null {
    if (view.nodes.length === 0) return null;
    const replicas = Math.max(1, view.replicas ?? 1);
    const key = `${view.epoch}|${replicas}|${view.nodes.map((n) => `${n.id}:${n.weight}`).join(',')}`;
    if (key === this.ring_key) return this.ring;
    const ring = new HashRing(view.nodes);
    const slots_per_sector = RING_SLOTS / RING_SECTORS;
    const owners: string[][] = [];
    for (let sector = 0; sector < RING_SECTORS; sector++) {
      const slot = sector * slots_per_sector + slots_per_sector / 2;
      // A slot's hashes are slot << (32 - RING_SLOT_BITS); the preference list takes any hash in it.
      const hash = (slot * (2 ** 32 / RING_SLOTS)) >>> 0;
      owners.push(ring.preferenceList(hash, replicas).map((n) => n.id));
    }
    this.ring = { epoch: view.epoch, replicas, owners };
    this.ring_key = key;
    return this.ring;
  }
}

function downNode(node_id: string, url: string, epoch: number, reason: string): NodeSummary {
  return {
    node_id, url, state: 'down', reason, epoch, uptime_s: 0, sample: null, keys: 0, bytes_used: 0, bytes_capacity: 0, rss_bytes: 0,
    worker_restarts: 0, metrics_enabled: false, power_profile: '', ops_per_joule: null, watts: null, progress: [],
  };
}

/** GET <node>/v1/summary, from its ws:// or wss:// URL. */
export function fetchSummary(ws_url: string, with_history: boolean, client_token: string, tls_ca: string): Promise<NodeSummary> {
  const url = new URL(`${ws_url.replace(/^ws/, 'http')}/v1/summary${with_history ? '?history=1' : ''}`);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (client_token !== '') headers['authorization'] = `Bearer ${client_token}`;
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > SUMMARY_BYTES_MAX) {
          req.destroy(new Error(`summary over ${SUMMARY_BYTES_MAX} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode ?? 0}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as NodeSummary);
        } catch (error) {
          reject(error as Error);
        }
      });
      res.on('error', reject);
    };
    const options = { headers, timeout: FETCH_TIMEOUT_MS, agent: false as const };
    const req = url.protocol === 'https:'
      ? httpsRequest(url, tls_ca === '' ? options : { ...options, ca: tls_ca }, onResponse)
      : httpRequest(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timed out after ${FETCH_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * `--etcd auto`: find this cluster's etcd on the LAN, trusting nothing found until it proves
 * itself (docs/CLUSTER.md, "Finding each other on the LAN").
 *
 * 1. Browse `_pikv._tcp` (mdns.ts) and keep the etcd URLs advertised by nodes whose `cluster`
 *    is ours. A name on the LAN is a claim anyone can make, so that only picks candidates.
 * 2. Ask each candidate endpoint, alone, for `/pikv/<cluster>/view` and check its HMAC with the
 *    cluster secret (signed-view.ts). An endpoint is used only if its view verifies: a wrong
 *    secret, another cluster's view, no view at all, or no answer leaves it unused. Each is
 *    checked on its own, so a hostile record that lists a good endpoint beside its own etcd
 *    does not slip its etcd in.
 * 3. The verified endpoints must all be one etcd cluster: a key written (under a 10 s lease)
 *    through the first is read through each other one (etcd reads are linearizable, so one
 *    cluster always shows it). etcd's `cluster_id` is not proof: two etcds configured alike
 *    (same member names, peer URLs and token) get the same id, and the test found exactly
 *    that. If two etcd clusters both hold a valid view of ours (a restored backup, a copy),
 *    this cannot tell which is live: it waits and says so, rather than risk a node taking
 *    leases from the wrong one.
 *
 * It returns once step 3 holds, after browsing at least `settle_ms` so that every advertiser
 * that answers promptly is weighed, and keeps trying (every `recheck_ms`) until then or until
 * `timeout_ms` (0: for ever) has passed.
 */
import { randomBytes } from 'node:crypto';
import { createEtcdClient } from '../etcd/client.js';
import { ClusterKeys } from '../etcd/keys.js';
import { verifyView } from '../etcd/signed-view.js';
import { checkView } from '../../routing/view.js';
import { Browse, type MdnsOptions } from './mdns.js';
import type { Discovered } from './txt.js';

export interface FindEtcdOptions extends MdnsOptions {
  cluster: string;
  secret: string;
  /** Browse at least this long before deciding (default 2000). */
  settle_ms?: number;
  /** Between rounds of checks (default 1000). */
  recheck_ms?: number;
  /** Give up after this long; 0 waits for ever (default 0). */
  timeout_ms?: number;
  /** Deadline of each etcd read (default 2000). */
  request_timeout_ms?: number;
}

/** What one candidate endpoint turned out to be. */
export type EndpointVerdict =
  | { endpoint: string; outcome: 'verified'; etcd_cluster_id: string; epoch: number }
  | { endpoint: string; outcome: 'no-view' | 'bad-view' | 'unreachable'; detail: string };

export class DiscoveryError extends Error {
  readonly code = 'DISCOVERY_TIMEOUT';
}

/** Reads and verifies the cluster's view at one endpoint. Never throws. */
export async function verifyEndpoint(endpoint: string, cluster: string, secret: string, request_timeout_ms = 2_000): Promise<EndpointVerdict> {
  const client = createEtcdClient({ hosts: [endpoint], request_timeout_ms });
  try {
    const key = Buffer.from(new ClusterKeys(cluster).view);
    let response;
    try {
      response = await client.kv.range({ key });
    } catch (error) {
      return { endpoint, outcome: 'unreachable', detail: (error as Error).message.split('\n')[0]!.slice(0, 200) };
    }
    const kv = response.kvs[0];
    if (kv === undefined) return { endpoint, outcome: 'no-view', detail: `no view of cluster "${cluster}" there` };
    try {
      const view = verifyView(cluster, kv.value, secret, checkView);
      return { endpoint, outcome: 'verified', etcd_cluster_id: response.header.cluster_id, epoch: view.epoch };
    } catch (error) {
      return { endpoint, outcome: 'bad-view', detail: (error as Error).message };
    }
  } finally {
    client.close();
  }
}

/** Endpoints checked per round: a LAN flooded with advertisements must not make a node open thousands of etcd connections. */
export const CANDIDATES_MAX = 16;

/**
 * True if a key written through `a` is read through `b`, i.e. both are one etcd cluster. The
 * key (`/pikv/<cluster>/discovery/<random>`) lives under a 10 s lease, revoked at once, so it
 * leaves nothing behind even if this process dies. Any failure counts as "not shown the same".
 */
export async function sameEtcdCluster(a: string, b: string, cluster: string, request_timeout_ms = 2_000): Promise<boolean> {
  if (a === b) return true;
  const writer = createEtcdClient({ hosts: [a], request_timeout_ms });
  const reader = createEtcdClient({ hosts: [b], request_timeout_ms });
  const nonce = randomBytes(16).toString('hex');
  const key = Buffer.from(`${new ClusterKeys(cluster).prefix}discovery/${nonce}`);
  let lease: string | null = null;
  try {
    lease = (await writer.leaseClient.leaseGrant({ TTL: 10 })).ID;
    await writer.kv.put({ key, value: Buffer.from(nonce), lease });
    const read = await reader.kv.range({ key });
    return read.kvs[0]?.value.toString() === nonce;
  } catch {
    return false;
  } finally {
    if (lease !== null) await writer.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
    writer.close();
    reader.close();
  }
}

/** The etcd endpoints advertised by nodes of `cluster`, each once, in a stable order, at most CANDIDATES_MAX. */
export function candidateEndpoints(nodes: Discovered[], cluster: string): string[] {
  const endpoints = new Set<string>();
  for (const node of nodes) if (node.cluster === cluster) for (const endpoint of node.etcd) endpoints.add(endpoint);
  return [...endpoints].sort().slice(0, CANDIDATES_MAX);
}

/**
 * The decision from a round of verdicts: the endpoints to use, or why there are none yet.
 * `same_as_first` says, for each verified endpoint after the first, whether it showed the first
 * one's probe key (sameEtcdCluster). Pure, so the rule "one etcd cluster or nothing" is tested
 * on its own.
 */
export function decide(verdicts: EndpointVerdict[], same_as_first: ReadonlyMap<string, boolean> = new Map()): { endpoints: string[] } | { waiting: string } {
  const verified = verdicts.filter((v): v is Extract<EndpointVerdict, { outcome: 'verified' }> => v.outcome === 'verified');
  if (verified.length > 0) {
    const others = verified.slice(1).filter((v) => same_as_first.get(v.endpoint) !== true).map((v) => v.endpoint);
    if (others.length === 0) return { endpoints: verified.map((v) => v.endpoint) };
    const with_first = verified.filter((v) => !others.includes(v.endpoint)).map((v) => v.endpoint);
    return { waiting: `cannot tell which etcd is this cluster's: ${with_first.join(',')} and ${others.join(',')} are not one etcd cluster, and both hold a view signed with the cluster secret; waiting (give --etcd URLs to choose)` };
  }
  if (verdicts.length === 0) return { waiting: 'no pikv node of this cluster advertising etcd endpoints has answered yet' };
  const ignored = verdicts.flatMap((v) => (v.outcome === 'verified' ? [] : [`${v.endpoint} ignored (${v.detail})`]));
  return { waiting: `no etcd endpoint found on the LAN passed the check: ${ignored.join('; ')}` };
}

export async function findEtcd(options: FindEtcdOptions): Promise<string[]> {
  const settle_ms = options.settle_ms ?? 2_000;
  const recheck_ms = options.recheck_ms ?? 1_000;
  const timeout_ms = options.timeout_ms ?? 0;
  const started_ms = Date.now();
  options.log(`discovery: looking for cluster "${options.cluster}"'s etcd on the LAN (mDNS _pikv._tcp); endpoints found are used only if the view stored there passes the HMAC check with the cluster secret`);
  const browse = new Browse(options);
  let last_said = '';
  try {
    await new Promise((resolve) => setTimeout(resolve, settle_ms));
    for (;;) {
      const candidates = candidateEndpoints(browse.nodes(), options.cluster);
      const verdicts = await Promise.all(candidates.map((endpoint) => verifyEndpoint(endpoint, options.cluster, options.secret, options.request_timeout_ms)));
      const verified = verdicts.flatMap((v) => (v.outcome === 'verified' ? [v.endpoint] : []));
      const same_as_first = new Map(await Promise.all(verified.slice(1).map(async (endpoint) =>
        [endpoint, await sameEtcdCluster(verified[0]!, endpoint, options.cluster, options.request_timeout_ms)] as const)));
      const decision = decide(verdicts, same_as_first);
      if ('endpoints' in decision) {
        const epochs = verdicts.flatMap((v) => (v.outcome === 'verified' ? [v.epoch] : []));
        const ignored = verdicts.flatMap((v) => (v.outcome === 'verified' ? [] : [`${v.endpoint} (${v.detail})`]));
        options.log(`discovery: using etcd ${decision.endpoints.join(',')} (its view of "${options.cluster}" passed the HMAC check, epoch ${Math.max(...epochs)})${ignored.length > 0 ? `; ignored ${ignored.join('; ')}` : ''}`);
        return decision.endpoints;
      }
      if (decision.waiting !== last_said) options.log(`discovery: ${decision.waiting}`);
      last_said = decision.waiting;
      if (timeout_ms > 0 && Date.now() - started_ms > timeout_ms) throw new DiscoveryError(`no trusted etcd for cluster "${options.cluster}" found within ${timeout_ms} ms: ${decision.waiting}`);
      await new Promise((resolve) => setTimeout(resolve, recheck_ms));
    }
  } finally {
    await browse.stop();
  }
}

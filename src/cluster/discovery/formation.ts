/**
 * First formation of the etcd cluster from identical cards (docs/CLUSTER.md, "Forming the etcd
 * cluster by mDNS"). Pure: what an etcd member board says on the LAN (`_pikv-etcd._tcp`), the
 * proof that it knows the cluster secret, and the one decision "given what I see: form, or
 * wait and say why". The network side is formation-mdns.ts, the process that runs etcd is
 * src/cli/etcd-form.ts.
 *
 * Safety argument (why two etcd clusters do not form), in short: a board starts etcd as a new
 * member only (a) when it sees exactly `expected` verified forming members of its cluster,
 * itself included, no running member and no etcd already holding a valid view, and then with
 * the list of exactly those boards sorted by name; or (b) when every running member it sees
 * claims one and the same list, and that list names it. With exactly `expected` boards marked
 * as members, (a) can only ever produce one list (all of them), so every member starts with
 * the same --initial-cluster and token: one cluster. A board whose data dir holds a member
 * never decides again (it restarts that member as it is).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { field } from './txt.js';

/** DNS-SD service type without the underscore bonjour-service adds: `_pikv-etcd._tcp`. */
export const FORMATION_SERVICE_TYPE = 'pikv-etcd';
/** Domain-separation prefix of the proof (and its version). */
const PROOF_CONTEXT = 'pikv-etcd-member-1';
/** etcd clusters of 1, 3 or 5 members: an even count tolerates no more failures than one fewer. */
export const FORMATION_MEMBER_COUNTS = [1, 3, 5] as const;
/** Claims remembered per browse; a LAN flooded with them cannot grow memory without bound. */
export const CLAIMS_MAX = 64;

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const CLUSTER_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const PEER_URL_PATTERN = /^http:\/\/[0-9.]{7,15}:\d{1,5}$/;
const TXT_STRING_BYTES_MAX = 255;

export type MemberState = 'forming' | 'running';

export interface InitialMember {
  name: string;
  peer_url: string;
}

/** What one etcd member board says about itself. */
export interface MemberClaim {
  cluster: string;
  /** etcd member name (the board's node id). */
  name: string;
  /** http://<board address>:2380 */
  peer_url: string;
  /** http://<board address>:2379 */
  client_url: string;
  state: MemberState;
  /** With state 'running': the --initial-cluster it started with. Empty when forming. */
  initial_cluster: InitialMember[];
  /** Unix seconds when signed (covered by the proof; informational unless a max age is set). */
  time_s: number;
}

export class FormationError extends Error {
  readonly code = 'BAD_FORMATION_CLAIM';
}

export function formatInitialCluster(members: readonly InitialMember[]): string {
  return members.map((member) => `${member.name}=${member.peer_url}`).join(',');
}

export function parseInitialCluster(text: string): InitialMember[] | null {
  if (text === '') return [];
  const members: InitialMember[] = [];
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    const name = part.slice(0, at);
    const peer_url = part.slice(at + 1);
    if (at <= 0 || !NAME_PATTERN.test(name) || !PEER_URL_PATTERN.test(peer_url)) return null;
    members.push({ name, peer_url });
  }
  return members;
}

/** The bytes the proof covers: every field, each on its own line, after a fixed context. */
function proofText(claim: MemberClaim): string {
  return [PROOF_CONTEXT, claim.cluster, claim.name, claim.peer_url, claim.client_url, claim.state, formatInitialCluster(claim.initial_cluster), String(claim.time_s)].join('\n');
}

export function signClaim(claim: MemberClaim, secret: string): string {
  return createHmac('sha256', secret).update(proofText(claim)).digest('base64url');
}

export function verifyClaim(claim: MemberClaim, proof: string, secret: string): boolean {
  const expected = Buffer.from(signClaim(claim, secret));
  const given = Buffer.from(proof);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The TXT record of a claim, with its proof. Throws FormationError for a claim that cannot be advertised. */
export function encodeClaimTxt(claim: MemberClaim, secret: string): Record<string, string> {
  if (!CLUSTER_PATTERN.test(claim.cluster)) throw new FormationError(`cluster name ${JSON.stringify(claim.cluster)} cannot be advertised`);
  if (!NAME_PATTERN.test(claim.name)) throw new FormationError(`member name ${JSON.stringify(claim.name)} cannot be advertised (1..64 of A-Z a-z 0-9 . _ -)`);
  if (!PEER_URL_PATTERN.test(claim.peer_url) || !PEER_URL_PATTERN.test(claim.client_url)) throw new FormationError(`peer and client URLs must be http://<IPv4>:<port>, got ${claim.peer_url} and ${claim.client_url}`);
  const txt: Record<string, string> = {
    cluster: claim.cluster, name: claim.name, peer: claim.peer_url, client: claim.client_url, state: claim.state,
    ic: formatInitialCluster(claim.initial_cluster), t: String(claim.time_s), proof: signClaim(claim, secret),
  };
  for (const [key, value] of Object.entries(txt)) {
    if (key.length + 1 + Buffer.byteLength(value) > TXT_STRING_BYTES_MAX) throw new FormationError(`TXT value ${key} is too long to advertise (${value.length} bytes)`);
  }
  return txt;
}


export type DecodedClaim = { claim: MemberClaim; proof: string };

/** A TXT record read back; null when it is not a well-formed claim (the proof is checked by verifyClaim). */
export function decodeClaimTxt(txt: unknown): DecodedClaim | null {
  if (txt === null || typeof txt !== 'object') return null;
  const record = txt as Record<string, unknown>;
  const state = field(record, 'state');
  const initial_cluster = parseInitialCluster(field(record, 'ic'));
  const time_s = Number(field(record, 't'));
  const claim: MemberClaim = {
    cluster: field(record, 'cluster'), name: field(record, 'name'), peer_url: field(record, 'peer'), client_url: field(record, 'client'),
    state: state as MemberState, initial_cluster: initial_cluster ?? [], time_s,
  };
  const proof = field(record, 'proof');
  if (!CLUSTER_PATTERN.test(claim.cluster) || !NAME_PATTERN.test(claim.name) || !PEER_URL_PATTERN.test(claim.peer_url) || !PEER_URL_PATTERN.test(claim.client_url)) return null;
  if ((state !== 'forming' && state !== 'running') || initial_cluster === null || !Number.isSafeInteger(time_s) || time_s < 0 || !/^[A-Za-z0-9_-]{43}$/.test(proof)) return null;
  if ((state === 'running') !== (initial_cluster.length > 0)) return null;
  return { claim, proof };
}

/**
 * --initial-cluster-token: from the cluster name and the exact member list, so boards that
 * somehow computed different lists make etcd clusters that refuse each other's peers.
 */
export function formationToken(cluster: string, members: readonly InitialMember[]): string {
  const digest = createHash('sha256').update(`${cluster}\n${formatInitialCluster(members)}`).digest('hex').slice(0, 16);
  return `pikv-${cluster}-${digest}`;
}

export interface FormationInput {
  /** This board's own claim (state 'forming': a board with a data dir does not ask). */
  self: MemberClaim;
  /** How many members the etcd cluster has (etcd_members: 1, 3 or 5). */
  expected: number;
  /** Claims of other boards whose proof verified and whose cluster is ours. */
  seen: readonly MemberClaim[];
  /** etcd endpoints advertised on the LAN (by pikv nodes) that hold a view of our cluster passing the HMAC check. */
  existing_etcd: readonly string[];
}

export type FormationDecision =
  | { action: 'form'; initial_cluster: InitialMember[]; token: string; why: string }
  | { action: 'wait'; reason: string };

const sameMember = (a: InitialMember, b: InitialMember): boolean => a.name === b.name && a.peer_url === b.peer_url;

/** The decision. Pure and deterministic; every board that sees the same claims decides the same. */
export function decideFormation(input: FormationInput): FormationDecision {
  const { self, expected } = input;
  if (!(FORMATION_MEMBER_COUNTS as readonly number[]).includes(expected)) return { action: 'wait', reason: `etcd_members must be 1, 3 or 5, not ${expected}` };
  const claims = [self, ...input.seen.filter((claim) => claim.cluster === self.cluster)];

  // Conflicting claims: one name at two peer URLs, or one peer URL under two names. Someone is
  // misconfigured (two cards with one node id) or lying; any list made now could be wrong.
  const by_name = new Map<string, string>();
  const by_peer = new Map<string, string>();
  for (const claim of claims) {
    const peer = by_name.get(claim.name);
    if (peer !== undefined && peer !== claim.peer_url) return { action: 'wait', reason: `conflicting claims: member "${claim.name}" is claimed at ${peer} and at ${claim.peer_url} (two cards with one node id?)` };
    const name = by_peer.get(claim.peer_url);
    if (name !== undefined && name !== claim.name) return { action: 'wait', reason: `conflicting claims: ${claim.peer_url} is claimed by "${name}" and by "${claim.name}"` };
    by_name.set(claim.name, claim.peer_url);
    by_peer.set(claim.peer_url, claim.name);
  }

  // An etcd cluster that already runs decides: join it only as one of its founders.
  const running = claims.filter((claim) => claim.state === 'running');
  const lists = [...new Set(running.map((claim) => formatInitialCluster(claim.initial_cluster)))];
  if (lists.length > 1) return { action: 'wait', reason: `conflicting claims: running etcd members started with different member lists (${lists.join(' | ')}); not joining either` };
  if (lists.length === 1) {
    const list = running[0]!.initial_cluster;
    if (list.some((member) => sameMember(member, self))) {
      return { action: 'form', initial_cluster: list, token: formationToken(self.cluster, list), why: `the etcd cluster ${formatInitialCluster(list)} already started (seen from ${running.map((c) => c.name).join(', ')}) and lists this board: starting as one of its founders` };
    }
    return { action: 'wait', reason: `an etcd cluster of "${self.cluster}" already runs (${formatInitialCluster(list)}) without this board; not forming a second. Add this board with etcdctl member add (pi-image/README.md)` };
  }
  if (input.existing_etcd.length > 0) {
    return { action: 'wait', reason: `etcd at ${input.existing_etcd.join(',')} already holds a valid view of "${self.cluster}"; not forming a second etcd cluster. Add this board with etcdctl member add (pi-image/README.md)` };
  }

  const forming = claims.filter((claim) => claim.state === 'forming');
  const names = forming.map((claim) => claim.name).sort();
  if (forming.length < expected) return { action: 'wait', reason: `waiting for etcd formation: saw ${forming.length} of ${expected} members (${names.join(', ')})` };
  if (forming.length > expected) return { action: 'wait', reason: `waiting for etcd formation: ${forming.length} boards claim to be etcd members of "${self.cluster}" (${names.join(', ')}), expected ${expected}: fix etcd_member on the extra card` };
  const list = forming.map(({ name, peer_url }) => ({ name, peer_url })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { action: 'form', initial_cluster: list, token: formationToken(self.cluster, list), why: `saw ${expected} of ${expected} members (${names.join(', ')})` };
}

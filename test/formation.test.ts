/**
 * The etcd formation decision and the member claim's proof (src/cluster/discovery/formation.ts):
 * form only with exactly the expected verified members, the same list and token everywhere;
 * wait, saying why, for fewer, more, conflicting claims, a running cluster without us, or an
 * etcd already holding a valid view.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decideFormation, decodeClaimTxt, encodeClaimTxt, formationToken, parseInitialCluster, verifyClaim,
  type FormationDecision, type MemberClaim,
} from '../src/cluster/discovery/formation.js';

const SECRET = 'formation-test-secret';
function claim(name: string, host: number, extra: Partial<MemberClaim> = {}): MemberClaim {
  return { cluster: 'pikv', name, peer_url: `http://10.0.0.${host}:2380`, client_url: `http://10.0.0.${host}:2379`, state: 'forming', initial_cluster: [], time_s: 1_800_000_000, ...extra };
}
const a = claim('a', 1);
const b = claim('b', 2);
const c = claim('c', 3);
const d = claim('d', 4);
const reasonOf = (decision: FormationDecision): string => (decision.action === 'wait' ? decision.reason : `formed: ${decision.why}`);

describe('etcd formation decision', () => {
  it('forms with exactly the expected members, the same sorted list and token on every board', () => {
    const decisions = [
      decideFormation({ self: c, expected: 3, seen: [a, b], existing_etcd: [] }),
      decideFormation({ self: a, expected: 3, seen: [c, b], existing_etcd: [] }),
      decideFormation({ self: b, expected: 3, seen: [a, c], existing_etcd: [] }),
    ];
    for (const decision of decisions) {
      assert.equal(decision.action, 'form', reasonOf(decision));
      assert.ok(decision.action === 'form');
      assert.deepEqual(decision.initial_cluster.map((m) => m.name), ['a', 'b', 'c']);
      assert.equal(decision.initial_cluster[1]!.peer_url, 'http://10.0.0.2:2380');
    }
    const tokens = new Set(decisions.map((decision) => (decision.action === 'form' ? decision.token : '')));
    assert.equal(tokens.size, 1);
    assert.match([...tokens][0]!, /^pikv-pikv-[0-9a-f]{16}$/);
    assert.notEqual(formationToken('pikv', [a, b, c]), formationToken('pikv', [a, b, d]), 'another list makes another token');
    assert.notEqual(formationToken('pikv', [a, b, c]), formationToken('other', [a, b, c]), 'another cluster makes another token');
  });

  it('one member: forms alone at once', () => {
    const decision = decideFormation({ self: a, expected: 1, seen: [], existing_etcd: [] });
    assert.equal(decision.action, 'form', reasonOf(decision));
  });

  it('waits with 2 of 3, and says who it saw', () => {
    const decision = decideFormation({ self: a, expected: 3, seen: [b], existing_etcd: [] });
    assert.equal(decision.action, 'wait');
    assert.equal(reasonOf(decision), 'waiting for etcd formation: saw 2 of 3 members (a, b)');
  });

  it('waits when more boards claim membership than expected', () => {
    const decision = decideFormation({ self: a, expected: 3, seen: [b, c, d], existing_etcd: [] });
    assert.equal(decision.action, 'wait');
    assert.match(reasonOf(decision), /4 boards claim to be etcd members of "pikv" \(a, b, c, d\), expected 3: fix etcd_member/);
  });

  it('ignores claims of another cluster', () => {
    const decision = decideFormation({ self: a, expected: 3, seen: [b, claim('x', 9, { cluster: 'other' })], existing_etcd: [] });
    assert.match(reasonOf(decision), /saw 2 of 3/);
  });

  it('waits on conflicting claims: one name at two addresses, one address under two names', () => {
    const twin = claim('b', 7);
    assert.match(reasonOf(decideFormation({ self: a, expected: 3, seen: [b, twin], existing_etcd: [] })), /conflicting claims: member "b" is claimed at http:\/\/10\.0\.0\.2:2380 and at http:\/\/10\.0\.0\.7:2380/);
    const same_place = claim('z', 2);
    assert.match(reasonOf(decideFormation({ self: a, expected: 3, seen: [b, same_place], existing_etcd: [] })), /conflicting claims: http:\/\/10\.0\.0\.2:2380 is claimed by "b" and by "z"/);
    assert.match(reasonOf(decideFormation({ self: a, expected: 3, seen: [claim('a', 8), c], existing_etcd: [] })), /member "a" is claimed at/, 'another board claiming our own name');
  });

  it('a founder that boots late starts with the running list that names it; a board it does not name waits', () => {
    const list = parseInitialCluster('a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380')!;
    const running_a = claim('a', 1, { state: 'running', initial_cluster: list });
    const late = decideFormation({ self: c, expected: 3, seen: [running_a], existing_etcd: ['http://10.0.0.1:2379'] });
    assert.equal(late.action, 'form', reasonOf(late));
    assert.ok(late.action === 'form');
    assert.deepEqual(late.initial_cluster, list);
    assert.equal(late.token, formationToken('pikv', list), 'the same token the founders used');
    const outsider = decideFormation({ self: d, expected: 3, seen: [running_a, b, c], existing_etcd: [] });
    assert.equal(outsider.action, 'wait');
    assert.match(reasonOf(outsider), /already runs \(a=.*\) without this board; not forming a second/);
    const moved = decideFormation({ self: claim('c', 9), expected: 3, seen: [running_a], existing_etcd: [] });
    assert.equal(moved.action, 'wait', 'same name at another address is not the founder the list names');
  });

  it('two running lists: joins neither', () => {
    const one = claim('a', 1, { state: 'running', initial_cluster: parseInitialCluster('a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380')! });
    const two = claim('d', 4, { state: 'running', initial_cluster: parseInitialCluster('b=http://10.0.0.2:2380,c=http://10.0.0.3:2380,d=http://10.0.0.4:2380')! });
    assert.match(reasonOf(decideFormation({ self: b, expected: 3, seen: [one, two], existing_etcd: [] })), /different member lists/);
  });

  it('an etcd already holding a valid view: never forms a second, even with exactly the expected boards', () => {
    const decision = decideFormation({ self: a, expected: 3, seen: [b, c], existing_etcd: ['http://10.0.0.50:2379'] });
    assert.equal(decision.action, 'wait');
    assert.match(reasonOf(decision), /etcd at http:\/\/10\.0\.0\.50:2379 already holds a valid view of "pikv"; not forming a second/);
  });

  it('refuses member counts other than 1, 3, 5', () => {
    assert.match(reasonOf(decideFormation({ self: a, expected: 2, seen: [b], existing_etcd: [] })), /etcd_members must be 1, 3 or 5/);
  });
});

describe('etcd member claim on the LAN', () => {
  it('round-trips through TXT and verifies with the secret only', () => {
    const running = claim('a', 1, { state: 'running', initial_cluster: [a, b, c].map(({ name, peer_url }) => ({ name, peer_url })) });
    for (const original of [a, running]) {
      const txt = encodeClaimTxt(original, SECRET);
      const decoded = decodeClaimTxt(txt);
      assert.ok(decoded !== null);
      assert.deepEqual(decoded.claim, original);
      assert.equal(verifyClaim(decoded.claim, decoded.proof, SECRET), true);
      assert.equal(verifyClaim(decoded.claim, decoded.proof, 'another-secret'), false, 'wrong secret');
    }
    // Any field changed after signing breaks the proof.
    const txt = encodeClaimTxt(a, SECRET);
    for (const [key, value] of [['peer', 'http://10.0.0.66:2380'], ['name', 'evil'], ['cluster', 'other'], ['t', '1800000001'], ['client', 'http://10.0.0.66:2379']] as const) {
      const decoded = decodeClaimTxt({ ...txt, [key]: value });
      assert.ok(decoded !== null, key);
      assert.equal(verifyClaim(decoded.claim, decoded.proof, SECRET), false, `${key} changed`);
    }
  });

  it('rejects malformed records', () => {
    const txt = encodeClaimTxt(a, SECRET);
    assert.equal(decodeClaimTxt(null), null);
    assert.equal(decodeClaimTxt({ ...txt, state: 'leader' }), null);
    assert.equal(decodeClaimTxt({ ...txt, state: 'running' }), null, 'running without a list');
    assert.equal(decodeClaimTxt({ ...txt, ic: 'a=http://10.0.0.1:2380' }), null, 'forming with a list');
    assert.equal(decodeClaimTxt({ ...txt, peer: 'http://pi1.local:2380' }), null, 'names are not addresses');
    assert.equal(decodeClaimTxt({ ...txt, proof: 'short' }), null);
    assert.equal(decodeClaimTxt({ ...txt, t: '-1' }), null);
    assert.throws(() => encodeClaimTxt(claim('bad name', 1), SECRET), /cannot be advertised/);
  });
});

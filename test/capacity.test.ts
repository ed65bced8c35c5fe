/**
 * The controller's capacity estimate (src/cluster/capacity.ts): a change whose copies would
 * overfill a node is refused up front (docs/REPLICATION.md), from the memory figures nodes
 * report; nodes without figures are not judged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { overfills, type NodeMemoryReport } from '../src/cluster/capacity.js';
import type { ClusterView } from '../src/routing/view.js';

const MIB = 1024 * 1024;
const node = (id: string) => ({ id, url: `ws://127.0.0.1:1/${id}`, weight: 1 });
const three: ClusterView = { epoch: 5, nodes: [node('a'), node('b'), node('c')], replicas: 1 };

function memory(used_mib: number, capacity_mib: number, ids = ['a', 'b', 'c']): Map<string, NodeMemoryReport> {
  return new Map(ids.map((id) => [id, { bytes_used: used_mib * MIB, bytes_capacity: capacity_mib * MIB }]));
}

describe('capacity check', () => {
  it('lets set-replicas 2 through when twice the data fits, and refuses it when it does not', () => {
    const to_two: ClusterView = { ...three, epoch: 6, next: three.nodes, next_replicas: 2 };
    assert.equal(overfills(three, to_two, memory(40, 100)), null, '2 x 40 MiB fits in 100 MiB (90%)');
    const problem = overfills(three, to_two, memory(60, 100));
    assert.match(problem ?? '', /would hold about 12\d MiB of its 100 MiB/);
  });

  it('refuses a leave when the survivors cannot take the leaving node\'s share', () => {
    const leave: ClusterView = { ...three, epoch: 6, next: [node('a'), node('b')] };
    assert.equal(overfills(three, leave, memory(50, 100)), null, '1.5 x 50 MiB = 75 MiB fits');
    assert.notEqual(overfills(three, leave, memory(70, 100)), null, '1.5 x 70 MiB = 105 MiB does not');
  });

  it('judges a joining node by its registered capacity, and does not judge nodes without figures', () => {
    const join: ClusterView = { ...three, epoch: 6, next: [...three.nodes, node('d')] };
    const reports = memory(80, 100);
    reports.set('d', { bytes_used: 0, bytes_capacity: 10 * MIB });
    assert.match(overfills(three, join, reports) ?? '', /^d would hold/);
    reports.delete('d');
    assert.equal(overfills(three, join, reports), null);
    assert.equal(overfills(three, { ...three, epoch: 6, next: three.nodes, next_replicas: 3 }, new Map()), null);
  });
});

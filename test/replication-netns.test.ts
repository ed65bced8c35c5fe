/**
 * A real network partition of an etcd-mode, replicated cluster (issue #10: "A node that is
 * cut off from etcd stops acknowledging within its lease TTL. This is tested with a real
 * partition in network namespaces: the isolated side's writes fail, and nothing it
 * acknowledged is lost").
 *
 * Every process runs in a network namespace this test creates (names `pr<pid>-*`, addresses
 * 10.204.<x>.0/24 that exist only inside them, veth pairs into a bridge in its own namespace):
 * etcd, three `pikv serve --etcd --replicas 2 --lease-ttl-ms 2000` nodes, and a client
 * namespace with the clients (test/helpers/netns-replication-driver.ts): a ring-aware writer
 * over all nodes, a plain writer connected to the node that will be isolated, a plain writer
 * connected to a node that stays in the majority, and a probe. Each writer also reads the
 * others' keys, so a stale read on either side is seen; the plain writers also read, one key
 * per request, keys their node is the primary of, which the node answers without forwarding,
 * so those answers show when it stops serving. Every op's send and answer times are printed
 * by the clients and checked here. A monitor reads every node's view and status every 50 ms.
 *
 * The partition: iptables in the isolated node's namespace drops every packet it receives
 * except from loopback and the client namespace, and etcd's and the other nodes' namespaces
 * drop every packet from it. So the node is cut off from etcd and from its peers in both
 * directions (packets vanish: connects hang, nothing is refused), while clients still reach it,
 * as clients of a real cluster may stay on the wrong side of a partition. That is what makes its
 * behaviour observable: it must stop answering OK within its lease TTL (the fence), and answer
 * CLUSTER_UNAVAILABLE (or fail NODE_DOWN / time out) until the partition heals. (Were the
 * clients cut off from it too, every op through it would just time out, whatever it did.)
 *
 * Checked: (1) no op through the isolated node is answered OK later than cut + lease TTL +
 * slack (until the heal), and ops through it fail meanwhile with CLUSTER_UNAVAILABLE, NODE_DOWN
 * or TIMEOUT; (2) a majority node's view (the monitor, and `pikv cluster status --json`) marks
 * it down, and a ring-aware client over the majority has writes of every primary's keys, the
 * isolated node's included, acknowledged again within 5 s; (3) after the heal the node comes
 * back (copied back, or removed and joined again): a settled view of all three nodes, none
 * down; (4) every acknowledged write reads back through the majority at the end (ring-aware,
 * and plain through the other majority node), and no read during the run (any client, either
 * side) returned a value older than one acknowledged before the read was sent, nor one never
 * written or refused (unknown-outcome writes count as possible, as in lost-write-checker.ts).
 * Timings are printed: cut -> last OK through the isolated node, -> marked down, -> writes of
 * every primary acknowledged again; heal -> settled.
 *
 * Skips with a message where `ip netns`, iptables or etcd is unavailable (.ci/run installs
 * them). PIKV_TEST_LOGS=<prefix> writes every process's output to <prefix>-netns-<name>.log
 * (node logs stamped with ms since the test file started) and the clients' op records to
 * <prefix>-netns-<name>.jsonl.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { CLI_PATH } from './helpers/server-process.js';
import { etcdMissing } from './helpers/etcd.js';
import { netnsUnavailable, NetnsWorld, type NetnsProc } from './helpers/netns-world.js';

const DRIVER = fileURLToPath(new URL('./helpers/netns-replication-driver.js', import.meta.url));
const TAG = `pr${process.pid % 100000}`;
const SUBNET = `10.204.${process.pid % 250}`;
const CLIENT_NS = `${TAG}-cl`;
const ETCD_NS = `${TAG}-etcd`;
const CLIENT_HOST = 100;
const ETCD_HOST = 200;
const ETCD_URL = `http://${SUBNET}.${ETCD_HOST}:2379`;
const PORT = 7070;
const SECRET = 'netns-replication-secret';
/** 2 s, as the other fault tests: 1 s leases were lost by healthy nodes on a loaded 2-core box. */
const LEASE_TTL_MS = 2000;
/** Scheduling and delivery slack on top of the lease TTL for "stops acknowledging". */
const FENCE_SLACK_MS = 250;
const NODES = ['n1', 'n2', 'n3'] as const;
const ISOLATED = 'n1';
const MAJORITY = NODES.filter((id) => id !== ISOLATED);
const WRITER_KEYS = 300;
/** A write answered with one of these may or may not have been applied (docs/PROTOCOL.md). */
const UNKNOWN_OUTCOME = new Set(['NODE_DOWN', 'TIMEOUT', 'CONNECTION_LOST', 'WORKER_RESTARTED']);
/** Clock slack between processes for "acknowledged before the read was sent" (same machine, Date.now()). */
const CLOCK_EPS_MS = 2;
const LOGS = process.env['PIKV_TEST_LOGS'];

const hostOf = (id: string): number => NODES.indexOf(id as (typeof NODES)[number]) + 1;
const urlOf = (id: string): string => `ws://${SUBNET}.${hostOf(id)}:${PORT}`;
const nsOf = (id: string): string => `${TAG}-${id}`;

function iptables(ns: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args], { stdio: 'pipe' });
}

/** Null if this machine can run the test; else why not. */
function unavailable(): string | null {
  const iptablesProblem = (probe: string): string | null => {
    try {
      iptables(probe, '-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT');
    } catch (error) {
      return `iptables does not work in a network namespace here (${(error as Error).message.split('\n')[0]}); apt-get install iptables (.ci/run installs it)`;
    }
    return null;
  };
  return netnsUnavailable(TAG, iptablesProblem) ?? etcdMissing();
}

// ---- processes in namespaces ----

/** A process in a namespace; a driver's JSON lines on stdout go to `events`, not `text`. */
interface Proc extends NetnsProc {
  /** Parsed JSON lines of stdout (drivers). */
  events: Record<string, unknown>[];
}

const world = new NetnsWorld(TAG, SUBNET);
const procs: Proc[] = [];
const T0 = Date.now();
/** Log lines as kept: prefixed with ms since the test file started (the summary prints the cut's). */
const stamp = (text: string): string => text.replace(/^(?=.)/gm, `[${Date.now() - T0}] `);

/** Output handling for a process of this test: JSON lines of stdout to `events`, the rest stamped to `text`. */
function eventsAndText(): { events: Record<string, unknown>[]; output: (chunk: string, stream: 'stdout' | 'stderr') => string } {
  const events: Record<string, unknown>[] = [];
  let pending = '';
  const output = (chunk: string, stream: 'stdout' | 'stderr'): string => {
    if (stream === 'stderr') return stamp(chunk);
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    let text = '';
    for (const line of lines) {
      try {
        if (line.startsWith('{')) {
          events.push(JSON.parse(line) as Record<string, unknown>);
          continue;
        }
      } catch { /* a log line */ }
      text += stamp(`${line}\n`);
    }
    return text;
  };
  return { events, output };
}

function inNamespace(ns: string, name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const { events, output } = eventsAndText();
  const proc: Proc = Object.assign(world.spawn(ns, name, command, args, { env, stdin: 'pipe', output }), { events });
  procs.push(proc);
  return proc;
}

function driver(name: string, args: string[]): Proc {
  return inNamespace(CLIENT_NS, name, process.execPath, [DRIVER, ...args]);
}

/** Runs the pikv CLI in the client namespace to completion. */
async function cli(name: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const proc = inNamespace(CLIENT_NS, name, process.execPath, [CLI_PATH, ...args], { ...process.env, PIKV_CLUSTER_SECRET: SECRET });
  let out = '';
  proc.child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await proc.exited;
  return { code: proc.child.exitCode, out };
}

function startNode(id: string): Proc {
  const host = `${SUBNET}.${hostOf(id)}`;
  // The cluster secret travels in the environment (pikv refuses it on the command line).
  return inNamespace(nsOf(id), id, process.execPath, [CLI_PATH, 'serve', '--host', host, '--port', String(PORT), '--advertise', `ws://${host}:${PORT}`,
    '--node-id', id, '--etcd', ETCD_URL, '--replicas', '2', '--lease-ttl-ms', String(LEASE_TTL_MS), '--controller-tick-ms', '50',
    '--down-grace-ms', '600000', '--workers', '2', '--max-memory', '128mb'], { ...process.env, PIKV_CLUSTER_SECRET: SECRET });
}

function startEtcd(): Proc {
  const { events, output } = eventsAndText();
  const spawn = { stdin: 'pipe' as const, output };
  const proc: Proc = Object.assign(world.startEtcd(ETCD_NS, 'etcd', ETCD_URL, 'pikv-netns-etcd-', { auto_compaction_retention_revisions: 1000, spawn }), { events });
  procs.push(proc);
  return proc;
}

// ---- the partition ----

/**
 * A shell in each namespace whose filter the partition changes, started before the cut: the
 * cut is then one iptables-restore per namespace, run at the same moment, without the cost of
 * starting `ip netns exec` four times (hundreds of ms on a busy machine).
 */
const shells = new Map<string, Proc>();
let shell_commands = 0;

function startShells(): void {
  for (const ns of [nsOf(ISOLATED), ETCD_NS, ...MAJORITY.map(nsOf)]) shells.set(ns, inNamespace(ns, `sh-${ns}`, 'sh', []));
}

/** Loads `rules` (iptables-restore format, filter table) into namespace `ns`, replacing what it had there. */
async function iptablesRestore(ns: string, rules: string[]): Promise<void> {
  const shell = shells.get(ns)!;
  const marker = `restored-${++shell_commands}`;
  shell.child.stdin!.write(`iptables-restore -w <<'RULES'\n${['*filter', ...rules, 'COMMIT'].join('\n')}\nRULES\necho "${marker} $?"\n`);
  const rc = await shell.waitFor(`${marker}`, () => new RegExp(`${marker} (\\d+)`).exec(shell.text)?.[1], 10_000);
  if (rc !== '0') throw new Error(`iptables-restore in ${ns} failed:\n${shell.text.slice(-2000)}`);
}

/** The partition, loaded into the four namespaces at once. */
async function cut(): Promise<void> {
  const isolated = `${SUBNET}.${hostOf(ISOLATED)}`;
  await Promise.all([
    // The isolated node hears only itself and the clients...
    iptablesRestore(nsOf(ISOLATED), ['-A INPUT -i lo -j ACCEPT', `-A INPUT -s ${SUBNET}.${CLIENT_HOST} -j ACCEPT`, '-A INPUT -j DROP']),
    // ...and etcd and its peers never hear it (its keep-alives must not reach etcd).
    ...[ETCD_NS, ...MAJORITY.map(nsOf)].map((ns) => iptablesRestore(ns, [`-A INPUT -s ${isolated} -j DROP`])),
  ]);
}

async function heal(): Promise<void> {
  await Promise.all([nsOf(ISOLATED), ETCD_NS, ...MAJORITY.map(nsOf)].map((ns) => iptablesRestore(ns, [])));
}

// ---- the history check ----

interface WriteEvent { type: 'w'; n: string; r: number; t0: number; t1: number; k: number[]; c: string[] }
interface ReadEvent { type: 'r'; n: string; t0: number; t1: number; k: string[]; c: string[]; v: (string | null)[] }
interface Attempt { v: number; t0: number; t1: number; code: string }
interface Anomaly { kind: 'lost' | 'stale' | 'impossible'; key: string; by: string; read: number; acked_before: number; t0: number; why: string }

class History {
  /** Per key, every write attempt, in version order (one writer per key, one write at a time). */
  readonly writes = new Map<string, Attempt[]>();
  readonly reads: { key: string; by: string; t0: number; t1: number; code: string; value: string | null }[] = [];

  addWriter(events: Record<string, unknown>[]): void {
    for (const event of events) {
      if (event['type'] === 'w') {
        const w = event as unknown as WriteEvent;
        w.k.forEach((index, i) => {
          const key = `${w.n}${index}`;
          let list = this.writes.get(key);
          if (list === undefined) this.writes.set(key, (list = []));
          list.push({ v: w.r, t0: w.t0, t1: w.t1, code: w.c[i]! });
        });
      } else if (event['type'] === 'r') {
        const r = event as unknown as ReadEvent;
        r.k.forEach((key, i) => this.reads.push({ key, by: r.n, t0: r.t0, t1: r.t1, code: r.c[i]!, value: r.v[i]! }));
      }
    }
  }

  acked(): number {
    let count = 0;
    for (const list of this.writes.values()) for (const a of list) if (a.code === 'OK') count++;
    return count;
  }

  /**
   * Every OK or NOT_FOUND read must return a version that was attempted (not refused, not sent
   * after the read was answered), and no older than the newest version acknowledged before the
   * read was sent, unless that older version's outcome was unknown (it may land late).
   */
  check(): { anomalies: Anomaly[]; reads_checked: number; late_landings: number } {
    const anomalies: Anomaly[] = [];
    let reads_checked = 0;
    let late_landings = 0;
    for (const read of this.reads) {
      if (read.code !== 'OK' && read.code !== 'NOT_FOUND') continue;
      reads_checked++;
      const list = this.writes.get(read.key) ?? [];
      const version = read.code === 'OK' ? Number(read.value) : 0;
      let acked_before = 0;
      for (const a of list) if (a.code === 'OK' && a.t1 < read.t0 - CLOCK_EPS_MS && a.v > acked_before) acked_before = a.v;
      const base = { key: read.key, by: read.by, read: version, acked_before, t0: read.t0 };
      if (version > 0) {
        const written = list.find((a) => a.v === version);
        if (written === undefined) {
          anomalies.push({ ...base, kind: 'impossible', why: 'a value never written' });
          continue;
        }
        if (written.code !== 'OK' && !UNKNOWN_OUTCOME.has(written.code)) {
          anomalies.push({ ...base, kind: 'impossible', why: `a write refused with ${written.code}` });
          continue;
        }
        if (written.t0 > read.t1 + CLOCK_EPS_MS) {
          anomalies.push({ ...base, kind: 'impossible', why: 'a write sent after the read was answered' });
          continue;
        }
        if (version < acked_before && UNKNOWN_OUTCOME.has(written.code)) {
          late_landings++; // landed late: possible (docs/MEMBERSHIP.md, "Unknown outcomes may land late")
          continue;
        }
      }
      if (version < acked_before) anomalies.push({ ...base, kind: read.by.startsWith('final') ? 'lost' : 'stale', why: `read ${version} after ${acked_before} was acknowledged` });
    }
    return { anomalies, reads_checked, late_landings };
  }
}

// ---- the test ----

interface ViewEvent { type: 'view'; t: number; url: string; epoch: number; nodes: string[]; down: string[]; next: string[] | null; next_down: string[] | null }
interface ClusterStatus { view: { epoch: number; down?: string[] }; nodes: { id: string; status: { etcd: unknown } | null }[] }

/** `epoch[nodes->next down ... next_down ...]@ms` for a log line. */
const describeView = (cut_at: number) => (v: ViewEvent): string =>
  `${v.epoch}[${v.nodes.join(',')}${v.next ? `->${v.next.join(',')}` : ''}${v.down.length ? ` down ${v.down.join(',')}` : ''}${v.next_down ? ` next_down ${v.next_down.join(',') || '-'}` : ''}]@${v.t - cut_at}`;

const skip = unavailable();

function dumpLogs(): void {
  if (LOGS === undefined) return;
  for (const proc of procs) {
    writeFileSync(`${LOGS}-netns-${proc.name}.log`, proc.text);
    if (proc.events.length > 0) writeFileSync(`${LOGS}-netns-${proc.name}.jsonl`, proc.events.map((e) => JSON.stringify(e)).join('\n'));
  }
}

describe('replication across a real network partition (etcd mode, N=2)', { skip: skip ?? false }, () => {
  after(() => world.cleanUp());

  it('the isolated node stops acknowledging within its lease, the majority fails over, it rejoins, and no acknowledged write is lost', { timeout: 90_000 }, async () => {
    const started = Date.now();
    try {
      // ---- network: a bridge, one namespace per process group ----
      world.addBridge();
      world.addNamespace(CLIENT_NS, CLIENT_HOST);
      world.addNamespace(ETCD_NS, ETCD_HOST);
      for (const id of NODES) world.addNamespace(nsOf(id), hostOf(id));

      const etcd = startEtcd();
      const healthy = driver('etcd-health', ['health', ETCD_URL, '15000']);
      await healthy.exited;
      assert.equal(healthy.child.exitCode, 0, `etcd did not become healthy at ${ETCD_URL}:\n${etcd.text.slice(-3000)}`);

      // Every node's view, serving gate and controller role, as the client namespace sees them.
      const monitor = driver('monitor', ['monitor', ...NODES.map(urlOf)]);
      const views = (id: string): ViewEvent[] => monitor.events.filter((e) => e['type'] === 'view' && e['url'] === urlOf(id)) as unknown as ViewEvent[];
      const latest = (id: string): ViewEvent | undefined => views(id).at(-1);
      const settled = (id: string, ids: readonly string[]): boolean => {
        const view = latest(id);
        return view !== undefined && view.next === null && view.down.length === 0 && [...view.nodes].sort().join() === [...ids].sort().join();
      };
      const allSettled = (): boolean => NODES.every((id) => settled(id, NODES));

      for (const [i, id] of NODES.entries()) {
        startNode(id);
        const members = NODES.slice(0, i + 1);
        await monitor.waitFor(`a settled view of ${members.join(',')}`, () => settled(NODES[0], members), 30_000);
      }
      await monitor.waitFor('every node on the settled view', allSettled, 15_000);
      console.log(`# cluster of ${NODES.join(',')} up in ${Date.now() - started} ms; isolating ${ISOLATED}`);

      // ---- writers in the client namespace ----
      const readNames = 'a,i,m';
      const aware = driver('writer-a', ['writer', 'a', 'aware', String(WRITER_KEYS), readNames, ...NODES.map(urlOf)]);
      const via_isolated = driver('writer-i', ['writer', 'i', 'plain', String(WRITER_KEYS), readNames, urlOf(ISOLATED)]);
      const via_majority = driver('writer-m', ['writer', 'm', 'plain', String(WRITER_KEYS), readNames, urlOf(MAJORITY[0]!)]);
      const writers = [aware, via_isolated, via_majority];
      const probe = driver('probe', ['probe', 'q', ISOLATED, '20', ...MAJORITY.map(urlOf)]);
      for (const w of [...writers, probe]) await w.waitFor('ready', () => w.events.some((e) => e['type'] === 'ready'), 15_000);
      const ackedBy = (w: Proc, after_ms = 0): number => w.events.filter((e) => e['type'] === 'w' && (e['t1'] as number) > after_ms)
        .reduce((sum, e) => sum + (e['c'] as string[]).filter((c) => c === 'OK').length, 0);
      for (const w of writers) await w.waitFor('acknowledged writes before the cut', () => ackedBy(w) >= 400, 15_000);
      startShells();
      await Promise.all([...shells.keys()].map((ns) => iptablesRestore(ns, [])));
      // A healthy node can lose a 1 s lease on an overloaded machine: cut only a settled cluster.
      await monitor.waitFor('a settled view of all three nodes right before the cut', allSettled, 15_000);
      const controllerAt = (): string => NODES.filter((id) => (monitor.events.filter((e) => e['type'] === 'controller' && e['url'] === urlOf(id)).at(-1)?.['controller']) === true).join(',') || 'none seen';
      const controller_before = controllerAt();

      // ---- the partition ----
      const cut_started = Date.now();
      await cut();
      const cut_at = Date.now();
      probe.child.stdin!.write('go\n');
      console.log(`# partition at [${cut_at - T0}] (log time): ${ISOLATED} (controller: ${controller_before}) cut off from etcd and its peers (iptables-restore in 4 namespaces took ${cut_at - cut_started} ms)`);

      // (2) The majority marks it down and takes writes of every key again.
      const down_view = await monitor.waitFor(`${ISOLATED} marked down in ${MAJORITY[0]}'s view`,
        () => views(MAJORITY[0]!).find((v) => v.t >= cut_started && v.down.includes(ISOLATED)), 15_000);
      const probe_ok = await probe.waitFor('probe writes of every primary acknowledged', () => probe.events.find((e) => e['type'] === 'probe-ok'), 20_000);
      // The same seen through the CLI operators use, on both sides.
      const [status_majority, status_isolated] = await Promise.all([
        cli('status-majority', ['cluster', 'status', '--json', '--url', urlOf(MAJORITY[0]!)]),
        cli('status-isolated', ['cluster', 'status', '--json', '--url', urlOf(ISOLATED)]),
      ]);
      assert.equal(status_majority.code, 0, status_majority.out);
      const majority_status = JSON.parse(status_majority.out) as ClusterStatus;
      assert.ok(majority_status.view.down?.includes(ISOLATED), `pikv cluster status on ${MAJORITY[0]}: ${status_majority.out}`);
      // Let the partition last well past the lease, so that late acknowledgements would show.
      const hold_until = cut_at + LEASE_TTL_MS + 4_000;
      if (Date.now() < hold_until) await new Promise((resolve) => setTimeout(resolve, hold_until - Date.now()));
      await monitor.waitFor('writes through the majority after the failover', () => ackedBy(aware, down_view.t) > 0 && ackedBy(via_majority, down_view.t) > 0, 10_000);

      // (3) Heal: the isolated node comes back (copied back or removed and joined again).
      const heal_at = Date.now();
      await heal();
      console.log(`# healed at [${heal_at - T0}], ${heal_at - cut_at} ms after the cut`);
      await monitor.waitFor('a settled view of all three nodes, none down, on every node', () => allSettled() && latest(ISOLATED)!.epoch > down_view.epoch, 40_000);
      const settled_at = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1_000));

      // (4) Stop the writers; read every key back through the majority (ring-aware, and plain via the other majority node).
      for (const w of writers) w.child.stdin!.write('stop\n');
      for (const w of writers) await w.waitFor('done', () => w.events.some((e) => e['type'] === 'done'), 15_000);
      const listed = (w: Proc, field: string, prefix: string): string => `${prefix}:${(w.events.find((e) => e['type'] === 'ready')![field] as string[]).join('|')}`;
      const spec = [`a:${WRITER_KEYS}`, `i:${WRITER_KEYS}`, `m:${WRITER_KEYS}`, listed(probe, 'keys', 'q'), listed(via_isolated, 'fence', 'if'), listed(via_majority, 'fence', 'mf')].join(',');
      const finals = [
        driver('final', ['final', 'final', spec, 'aware', ...MAJORITY.map(urlOf)]),
        driver('final-plain', ['final', 'final-plain', spec, 'plain', urlOf(MAJORITY[1]!)]),
      ];
      for (const f of finals) await f.waitFor('final reads', () => f.events.some((e) => e['type'] === 'done'), 30_000);

      // ---- checks ----
      const history = new History();
      for (const p of [...writers, probe, ...finals]) history.addWriter(p.events);

      // (1) Through the isolated node: nothing answered OK later than its lease allows, until the heal.
      const fence_bound = cut_at + LEASE_TTL_MS + FENCE_SLACK_MS;
      const through_isolated = via_isolated.events.filter((e) => e['type'] === 'w' || e['type'] === 'r') as unknown as ((WriteEvent | ReadEvent) & { fence?: boolean })[];
      let last_ok = 0;
      let last_fence_ok = 0;
      let fence_reads_ok = 0;
      const late: string[] = [];
      const codes_after = new Map<string, number>();
      for (const e of through_isolated) {
        if (e.t0 >= heal_at) continue;
        e.c.forEach((code, i) => {
          if (code === 'OK' && e.fence === true) fence_reads_ok++;
          if (code === 'OK' && e.t1 >= cut_started) last_ok = Math.max(last_ok, e.t1);
          if (code === 'OK' && e.t1 >= cut_started && e.fence === true) last_fence_ok = Math.max(last_fence_ok, e.t1);
          if (code === 'OK' && e.t1 > fence_bound) late.push(`${e.type === 'w' ? `put i${e.k[i]}=${e.r}` : `get ${e.k[i]}`} sent +${e.t0 - cut_at} ms, answered OK +${e.t1 - cut_at} ms`);
          if (e.t0 > fence_bound) codes_after.set(code, (codes_after.get(code) ?? 0) + 1);
        });
      }
      const { anomalies, reads_checked, late_landings } = history.check();
      const final_reads = history.reads.filter((r) => r.by.startsWith('final'));
      const final_failed = final_reads.filter((r) => r.code !== 'OK' && r.code !== 'NOT_FOUND');
      const majority_down = views(MAJORITY[0]!).filter((v) => v.down.some((id) => id !== ISOLATED));

      const since = (t: number | undefined): string => (t === undefined || t === 0 ? 'not seen' : `${t - cut_at} ms`);
      const unserving = monitor.events.find((e) => e['type'] === 'serving' && e['url'] === urlOf(ISOLATED) && e['serving'] === false && (e['t'] as number) >= cut_started);
      const elected = monitor.events.find((e) => e['type'] === 'controller' && e['controller'] === true && e['url'] !== urlOf(ISOLATED) && (e['t'] as number) >= cut_started);
      const codes = (w: Proc): string => {
        const counts = new Map<string, number>();
        for (const e of w.events) if (e['type'] === 'w' || e['type'] === 'r') for (const c of e['c'] as string[]) counts.set(`${e['type'] === 'w' ? 'put' : 'get'} ${c}`, (counts.get(`${e['type'] === 'w' ? 'put' : 'get'} ${c}`) ?? 0) + 1);
        return JSON.stringify(Object.fromEntries(counts));
      };
      const etcdOf = (status: ClusterStatus | null): string => JSON.stringify(status?.nodes.find((n) => n.id === ISOLATED)?.status?.etcd ?? null);
      console.log(`# cut -> last OK answered through ${ISOLATED}: ${since(last_ok)} (of a fence-key read: ${since(last_fence_ok)}); lease TTL ${LEASE_TTL_MS} ms, asserted bound ${LEASE_TTL_MS + FENCE_SLACK_MS} ms`);
      console.log(`# cut -> ${ISOLATED}'s CLUSTER_STATUS says etcd.serving=false: ${since(unserving?.['t'] as number | undefined)}`);
      console.log(`# cut -> ${ISOLATED} marked down in ${MAJORITY[0]}'s view (epoch ${down_view.epoch}): ${down_view.t - cut_at} ms; a majority node is controller: ${since(elected?.['t'] as number | undefined)}`);
      console.log(`# cut -> writes of every primary (${ISOLATED}'s included) acknowledged through the majority: ${(probe_ok['t'] as number) - cut_at} ms`);
      console.log(`# heal -> settled view of ${NODES.join(',')} on every node: ${settled_at - heal_at} ms`);
      console.log(`# views on ${MAJORITY[0]} (ms from the cut): ${views(MAJORITY[0]!).filter((v) => v.epoch > 0).map(describeView(cut_at)).join(' ')}`);
      console.log(`# pikv cluster status --json during the partition: via ${MAJORITY[0]}: epoch ${majority_status.view.epoch}, down ${JSON.stringify(majority_status.view.down)}, ${ISOLATED}'s etcd ${etcdOf(majority_status)}; via ${ISOLATED}: ${status_isolated.code === 0 ? `${ISOLATED}'s etcd ${etcdOf(JSON.parse(status_isolated.out) as ClusterStatus)}` : `exit ${status_isolated.code}: ${status_isolated.out.trim().split('\n')[0]}`}`);
      console.log(`# through ${ISOLATED} after the bound, before the heal: ${JSON.stringify(Object.fromEntries(codes_after))}`);
      for (const w of [...writers, probe]) console.log(`# ${w.name}: ${codes(w)}`);
      for (const a of anomalies.slice(0, 10)) console.log(`# anomaly: ${a.kind} ${a.key} read by ${a.by} at ${a.t0 - cut_at} ms from the cut: ${a.why}`);
      if (majority_down.length > 0) console.log(`# note: a majority node was marked down too (lost its lease: an overloaded machine?): ${majority_down.map(describeView(cut_at)).join(' ')}`);
      console.log(`# ${history.acked()} writes acknowledged, ${reads_checked} reads checked (${final_reads.length} final), ${anomalies.length} anomalies, ${late_landings} reads of an unknown-outcome write that landed after a newer acknowledged one; test took ${Date.now() - started} ms`);

      assert.deepEqual(late, [], `${ISOLATED} answered OK after cut + lease TTL + ${FENCE_SLACK_MS} ms:\n${late.slice(0, 20).join('\n')}`);
      assert.ok(fence_reads_ok > 100, `only ${fence_reads_ok} fence-key reads through ${ISOLATED} answered OK`);
      const after_total = [...codes_after.values()].reduce((a, b) => a + b, 0);
      assert.ok(after_total > 100, `only ${after_total} ops were sent through ${ISOLATED} during the partition`);
      for (const code of codes_after.keys()) assert.ok(code === 'CLUSTER_UNAVAILABLE' || code === 'NODE_DOWN' || code === 'TIMEOUT', `through ${ISOLATED} during the partition: ${code}`);
      assert.ok(unserving !== undefined, `${ISOLATED} never reported its serving gate closed`);
      assert.ok((probe_ok['t'] as number) - cut_at < 5_000, `writes through the majority took ${(probe_ok['t'] as number) - cut_at} ms to succeed again`);
      for (const w of [aware, via_majority]) assert.ok(ackedBy(w, down_view.t) > 0, `${w.name} acknowledged nothing after the failover`);
      assert.equal(final_failed.length, 0, `final reads failed: ${JSON.stringify(final_failed.slice(0, 5))}`);
      assert.ok(final_reads.length >= 2 * 3 * WRITER_KEYS, `only ${final_reads.length} final reads`);
      assert.deepEqual(anomalies.slice(0, 20), [], `${anomalies.length} lost writes or stale reads (lost: ${anomalies.filter((a) => a.kind === 'lost').length}, stale: ${anomalies.filter((a) => a.kind === 'stale').length}, impossible: ${anomalies.filter((a) => a.kind === 'impossible').length})`);
    } catch (error) {
      dumpLogs();
      for (const id of NODES) {
        const node = procs.find((p) => p.name === id);
        if (node !== undefined) console.log(`# ---- ${id} log (tail; [ms since the test file started]) ----\n${node.text.slice(-4000).replace(/^/gm, '# ')}`);
      }
      throw error;
    }
    dumpLogs();
  });
});

if (skip !== null) console.log(`# replication-netns: skipped: ${skip}`);

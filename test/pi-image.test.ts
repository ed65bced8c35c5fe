/**
 * The Pi image without the slow part: the card-file schema (pi-image/config.ts), what the Pi
 * runs with it (pi-image/card.ts), and a tiny synthetic image (fake firmware, a fake aarch64
 * `node`, but the real stage and assemble steps, config and units) read back by the structural
 * verifier (pi-image/verify.ts), once whole and once broken. The full build and boot test is
 * `npm run image:e2e` (pi-image/README.md).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { etcdConfigYaml, etcdFormArgs, FORMATION_STATUS_FILE, pikvServeArgs } from '../pi-image/card.js';
import { checkCardConfig, checkCardText, CLUSTER_NAME_PATTERN, FIELDS, type CardConfig } from '../pi-image/config.js';
import { missingTools, verifyImage, type Finding } from '../pi-image/verify.js';
import { checkClusterName } from '../src/cluster/etcd/keys.js';
import { ETCD_BINARY, etcdMissing } from './helpers/etcd.js';
import { Etcd3 } from 'etcd3';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const card_js = join(repo, 'dist/pi-image/card.js');
const verify_js = join(repo, 'dist/pi-image/verify.js');
const ASSEMBLE_TOOLS = ['mkfs.vfat', 'mcopy', 'mke2fs', 'sfdisk'];
const EM_AARCH64 = 183;
const EM_X86_64 = 62;
const CLUSTER_CARD = {
  hostname: 'pi2', node_id: 'pi2', advertise: 'ws://10.0.0.12:7070', cluster_secret: 'sixteen-chars-or-more',
  peers: [{ id: 'pi1', url: 'ws://10.0.0.11:7070' }, { id: 'pi2', url: 'ws://10.0.0.12:7070' }],
};

/** pikv against etcd on a board that only runs pikv (three other boards run etcd). */
const ETCD_CARD = {
  hostname: 'pi4', node_id: 'pi4', advertise: 'ws://10.0.0.14:7070', cluster_secret: 'sixteen-chars-or-more', cluster_name: 'shop',
  etcd: ['http://10.0.0.11:2379', 'http://10.0.0.12:2379', 'http://10.0.0.13:2379'],
};
const INITIAL_CLUSTER = 'pi1=http://10.0.0.11:2380,pi2=http://10.0.0.12:2380,pi3=http://10.0.0.13:2380';
/** One of the three etcd member boards. */
const ETCD_MEMBER_CARD = { ...ETCD_CARD, hostname: 'pi1', node_id: 'pi1', advertise: 'ws://10.0.0.11:7070', etcd_member: true, etcd_initial_cluster: INITIAL_CLUSTER };
/** A member board whose etcd forms by mDNS: no member addresses on the card. */
const FORMATION_CARD = { ...without(ETCD_CARD, 'etcd'), hostname: 'pi1', node_id: 'pi1', advertise: 'ws://10.0.0.11:7070', etcd: 'auto', etcd_member: true };

/** A card without some fields (JSON has no undefined: a spread `{ x: undefined }` is not "absent"). */
function without(card: Record<string, unknown>, ...names: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(card).filter(([name]) => !names.includes(name)));
}

function configOf(value: unknown): CardConfig {
  const result = checkCardConfig(value);
  assert.ok(result.ok, JSON.stringify(result));
  return result.config;
}

function errorsOf(value: unknown): string[] {
  const result = checkCardConfig(value);
  return result.ok ? [] : result.errors;
}

describe('pikv.json schema', () => {
  it('accepts the default file of every new card', () => {
    const result = checkCardText(readFileSync(join(repo, 'pi-image/files/pikv.json'), 'utf8'));
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.config.hostname, 'pikv');
    assert.deepEqual(result.config.serve, { host: '0.0.0.0', port: 7070, data_dir: '/var/lib/pikv' });
  });

  it('turns a cluster card into pikv serve settings', () => {
    const result = checkCardConfig({ ...CLUSTER_CARD, max_memory: '512mb', ssh_authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@laptop'] });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.config.serve['node_id'], 'pi2');
    assert.equal(result.config.serve['max_memory'], '512mb');
    assert.deepEqual(result.config.ssh_authorized_keys, ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB me@laptop']);
    // A card of the previous image (gossip peers) means what it meant: no etcd, secret in the settings.
    assert.equal(result.config.etcd, null);
    assert.equal(result.config.serve['cluster_secret'], CLUSTER_CARD.cluster_secret);
    assert.deepEqual(pikvServeArgs(result.config, '/run/pikv/serve.json', '/run/pikv/cluster-secret'), ['serve', '--config', '/run/pikv/serve.json']);
  });

  it('turns an etcd card into pikv serve flags, with the secret only in a file', () => {
    const config = configOf(ETCD_CARD);
    assert.deepEqual(config.serve, { host: '0.0.0.0', port: 7070, data_dir: '/var/lib/pikv' });
    assert.equal(config.etcd?.member, null);
    const args = pikvServeArgs(config, '/run/pikv/serve.json', '/run/pikv/cluster-secret');
    assert.deepEqual(args, ['serve', '--config', '/run/pikv/serve.json', '--node-id', 'pi4', '--advertise', 'ws://10.0.0.14:7070',
      '--etcd', 'http://10.0.0.11:2379,http://10.0.0.12:2379,http://10.0.0.13:2379', '--cluster-name', 'shop', '--cluster-secret-file', '/run/pikv/cluster-secret']);
    assert.ok(!args.join(' ').includes(ETCD_CARD.cluster_secret));
    assert.deepEqual(pikvServeArgs(configOf({ ...ETCD_CARD, weight: 2 }), 's', 'f').slice(-2), ['--weight', '2']);
    assert.equal(configOf(without(ETCD_CARD, 'cluster_name')).etcd?.cluster_name, 'pikv');
  });

  it('"etcd": "auto" on a pikv-only board hands pikv --etcd auto; on a member board etcd forms by mDNS', () => {
    const args = pikvServeArgs(configOf({ ...ETCD_CARD, etcd: 'auto' }), '/run/pikv/serve.json', '/run/pikv/cluster-secret');
    assert.deepEqual(args.slice(args.indexOf('--etcd'), args.indexOf('--etcd') + 4), ['--etcd', 'auto', '--cluster-name', 'shop']);
    assert.ok(!args.includes('--formation-status-file'));
    const formation = configOf(FORMATION_CARD).etcd!;
    assert.deepEqual(formation.formation, { members: 3 });
    assert.equal(formation.member, null);
    const member_args = pikvServeArgs(configOf(FORMATION_CARD), '/run/pikv/serve.json', '/run/pikv/cluster-secret');
    assert.deepEqual(member_args.slice(member_args.indexOf('--etcd'), member_args.indexOf('--etcd') + 2), ['--etcd', 'http://10.0.0.11:2379'], 'pikv uses its own board\'s member');
    assert.deepEqual(member_args.slice(-2), ['--formation-status-file', FORMATION_STATUS_FILE]);
    const form = etcdFormArgs(formation, '/run/pikv-etcd-form/cluster-secret', '/run/pikv-etcd-form/formation.json');
    const flag = (name: string): string | undefined => form[form.indexOf(name) + 1];
    assert.deepEqual([form[0], flag('--name'), flag('--cluster-name'), flag('--members'), flag('--address'), flag('--data-dir'), flag('--cluster-secret-file')],
      ['etcd-form', 'pi1', 'shop', '3', '10.0.0.11', '/var/lib/etcd/pikv', '/run/pikv-etcd-form/cluster-secret']);
    assert.ok(!form.join(' ').includes(ETCD_CARD.cluster_secret));
    assert.equal(configOf({ ...FORMATION_CARD, etcd_members: 5 }).etcd?.formation?.members, 5);
    assert.ok(errorsOf({ ...FORMATION_CARD, etcd_members: 2 }).some((error) => /^etcd_members: an etcd cluster needs 1, 3 or 5 members, got 2/.test(error)));
    assert.ok(errorsOf({ ...FORMATION_CARD, etcd_initial_cluster: INITIAL_CLUSTER }).some((error) => /^etcd_initial_cluster: not used with "etcd": "auto"/.test(error)));
    assert.ok(errorsOf({ ...ETCD_CARD, etcd: 'auto', etcd_members: 3 }).some((error) => /^etcd_members: only used with "etcd_member": true/.test(error)));
    assert.ok(errorsOf({ ...ETCD_MEMBER_CARD, etcd_members: 3 }).some((error) => /^etcd_members: only used with "etcd": "auto"/.test(error)));
    assert.ok(errorsOf({ ...FORMATION_CARD, advertise: 'ws://pi1.local:7070' }).some((error) => /^advertise: on an etcd member board with "etcd": "auto" it must be "auto" or ws:\/\/<this board's IPv4 address>/.test(error)));
    assert.ok(errorsOf({ ...ETCD_CARD, etcd: 'elsewhere' }).some((error) => /^etcd: .*or "auto"/.test(error)), errorsOf({ ...ETCD_CARD, etcd: 'elsewhere' }).join(' | '));
  });

  it('identical cards: node_id, the secret and etcd_member are all a board needs (no address typed anywhere)', () => {
    const card = { node_id: 'pi1', cluster_secret: 'sixteen-chars-or-more', etcd_member: true };
    const member = configOf(card);
    assert.equal(member.hostname, 'pi1', 'the hostname is the node id, so the dashboard is at pi1.local');
    assert.deepEqual(member.etcd?.endpoints, ['auto']);
    assert.deepEqual(member.etcd?.formation, { members: 3 });
    assert.equal(member.etcd?.advertise, 'auto');
    const only_pikv = configOf({ node_id: 'pi4', cluster_secret: 'sixteen-chars-or-more' });
    assert.equal(only_pikv.hostname, 'pi4');
    assert.equal(only_pikv.etcd?.formation, null);
    const args = pikvServeArgs(only_pikv, '/run/pikv/serve.json', '/run/pikv/cluster-secret');
    assert.deepEqual(args.slice(args.indexOf('--advertise'), args.indexOf('--advertise') + 4), ['--advertise', 'auto', '--etcd', 'auto']);
    // Gossip cards keep their membership; advertise auto reaches pikv serve through its settings.
    const gossip = configOf(without(CLUSTER_CARD, 'advertise', 'hostname'));
    assert.equal(gossip.etcd, null);
    assert.equal(gossip.serve['advertise'], 'auto');
    assert.equal(configOf({ node_id: 'Pi_1', cluster_secret: 'sixteen-chars-or-more' }).hostname, 'pikv', 'a node id that is no hostname leaves the default');
  });

  it('describes the etcd member of a member board, listening on its own LAN address', () => {
    const member = configOf(ETCD_MEMBER_CARD).etcd?.member;
    assert.deepEqual(member, {
      name: 'pi1', initial_cluster_state: 'new', address: '10.0.0.11', peer_url: 'http://10.0.0.11:2380', client_url: 'http://10.0.0.11:2379',
      initial_cluster: [{ name: 'pi1', peer_url: 'http://10.0.0.11:2380' }, { name: 'pi2', peer_url: 'http://10.0.0.12:2380' }, { name: 'pi3', peer_url: 'http://10.0.0.13:2380' }],
    });
    const yaml = etcdConfigYaml(configOf(ETCD_MEMBER_CARD).etcd!);
    for (const line of ['name: "pi1"', 'data-dir: "/var/lib/etcd/pikv"', `initial-cluster: "${INITIAL_CLUSTER}"`, 'initial-cluster-state: "new"', 'initial-cluster-token: "pikv-shop"',
      'listen-peer-urls: "http://10.0.0.11:2380"', 'listen-client-urls: "http://10.0.0.11:2379,http://127.0.0.1:2379"', 'advertise-client-urls: "http://10.0.0.11:2379"',
      'auto-compaction-mode: "revision"', 'auto-compaction-retention: "1000"', 'election-timeout: 2000', 'heartbeat-interval: 200', 'quota-backend-bytes: 1073741824']) {
      assert.ok(yaml.split('\n').some((text) => text === line || text.startsWith(`${line}  #`)), `${line} in\n${yaml}`);
    }
    // etcd_name names the member when it differs from node_id; a replacement joins an existing cluster.
    const renamed = configOf({ ...ETCD_MEMBER_CARD, etcd_name: 'etcd-a', etcd_initial_cluster: INITIAL_CLUSTER.replace('pi1=', 'etcd-a='), etcd_initial_cluster_state: 'existing' });
    assert.equal(renamed.etcd?.member?.name, 'etcd-a');
    assert.equal(renamed.etcd?.member?.initial_cluster_state, 'existing');
    // A one-member etcd (a test cluster, the qemu release check) is allowed.
    assert.ok(configOf({ ...ETCD_MEMBER_CARD, etcd: ['http://10.0.0.11:2379'], etcd_initial_cluster: 'pi1=http://10.0.0.11:2380' }).etcd?.member);
  });

  it('reports every etcd mistake, each naming its field', () => {
    const expect = (card: Record<string, unknown>, patterns: RegExp[]): void => {
      const errors = errorsOf(card);
      for (const pattern of patterns) assert.ok(errors.some((error) => pattern.test(error)), `${pattern} in ${errors.join(' | ')}`);
      assert.equal(errors.length, patterns.length, errors.join(' | '));
    };
    expect({ ...ETCD_CARD, etcd: ['https://10.0.0.11:2379', 'http://10.0.0.12', 'http://10.0.0.13:2379/v3', 'etcd1:2379'] }, [
      /^etcd: "https:\/\/10\.0\.0\.11:2379": must start with http:\/\//, /^etcd: "http:\/\/10\.0\.0\.12": needs an explicit port/,
      /^etcd: "http:\/\/10\.0\.0\.13:2379\/v3": must be only http:\/\/host:port/, /^etcd: "etcd1:2379": (not a URL|must start with http)/]);
    expect({ ...ETCD_CARD, etcd: [] }, [/^etcd: expected the client URL of every etcd member/]);
    expect({ ...ETCD_CARD, etcd: ['http://10.0.0.11:2379', 'http://10.0.0.11:2379'] }, [/^etcd: 10\.0\.0\.11:2379 is listed twice/]);
    expect({ ...ETCD_CARD, peers: CLUSTER_CARD.peers, join: ['ws://10.0.0.11:7070'] }, [/^peers: not used with "etcd"/, /^join: not used with "etcd"/, /^join and peers/]);
    expect({ ...ETCD_CARD, cluster_name: 'shop/eu' }, [/^cluster_name: expected 1\.\.64/]);
    expect({ ...CLUSTER_CARD, cluster_name: 'shop' }, [/^cluster_name: only used with "etcd"/]);
    expect({ ...CLUSTER_CARD, etcd_member: true }, [/^etcd_member: a member board runs pikv against etcd too/]);
    expect({ ...ETCD_CARD, etcd_initial_cluster: INITIAL_CLUSTER }, [/^etcd_initial_cluster: only used with "etcd_member": true/]);
    expect({ ...ETCD_CARD, etcd_member: 'yes' }, [/^etcd_member: expected true or false/]);
    expect(without(ETCD_MEMBER_CARD, 'etcd_initial_cluster'), [/^etcd_initial_cluster: needed with "etcd_member": true/]);
    expect({ ...ETCD_MEMBER_CARD, etcd_initial_cluster: 'pi1=http://10.0.0.11:2380,pi2=http://10.0.0.12:2380' }, [/^etcd_initial_cluster: lists 2 members; an etcd cluster needs 1, 3 or 5/]);
    expect({ ...ETCD_MEMBER_CARD, etcd_initial_cluster: 'pi2=http://10.0.0.12:2380' }, [/^etcd_initial_cluster: must list this board's member "pi1".*it lists pi2/]);
    expect({ ...ETCD_MEMBER_CARD, etcd_initial_cluster: 'pi1=http://pi1.lan:2380,pi2=http://10.0.0.12:2380,pi2=http://10.0.0.13:2380' }, [
      /^etcd_initial_cluster: pi1=http:\/\/pi1\.lan:2380: the host must be an IP address/, /^etcd_initial_cluster: lists pi2 twice/]);
    expect({ ...ETCD_MEMBER_CARD, etcd_initial_cluster: 'pi1=10.0.0.11:2380,pi2=http://10.0.0.12:2380,pi3=http://10.0.0.12:2380,broken' }, [
      /^etcd_initial_cluster: pi1=10\.0\.0\.11:2380: (not a URL|must start with http)/, /^etcd_initial_cluster: 10\.0\.0\.12:2380 is given to two members/,
      /^etcd_initial_cluster: "broken" is not name=http/]);
    expect({ ...ETCD_MEMBER_CARD, etcd_initial_cluster_state: 'old' }, [/^etcd_initial_cluster_state: expected "new" or "existing"/]);
    expect({ ...ETCD_MEMBER_CARD, etcd: ['http://10.0.0.12:2379', 'http://10.0.0.13:2379'] }, [/^etcd: must list this member's client URL, http:\/\/10\.0\.0\.11:2379/]);
    expect({ ...without(ETCD_CARD, 'node_id', 'advertise'), cluster_secret: 'short' }, [/^node_id: needed/, /^cluster_secret: at least 16/]);
  });

  it('names clusters as the etcd layer does (src/cluster/etcd/keys.ts)', () => {
    for (const name of ['pikv', 'shop.eu-1_A', 'x'.repeat(64), 'x'.repeat(65), 'a/b', '', 'ü', 'a b']) {
      let etcd_layer = true;
      try {
        checkClusterName(name);
      } catch {
        etcd_layer = false;
      }
      assert.equal(CLUSTER_NAME_PATTERN.test(name), etcd_layer, name);
    }
  });

  it('reports every problem of a bad file, each naming its field', () => {
    const errors = errorsOf({ port: 'x', hostname: 'Pi_1', colour: 'red', data_dir: '/home/pi', ssh_authorized_keys: ['hunter2'] });
    for (const field of ['port', 'hostname', 'colour', 'data_dir', 'ssh_authorized_keys[0]']) {
      assert.ok(errors.some((error) => error.includes(field)), `${field} in ${errors.join(' | ')}`);
    }
  });

  it('requires node_id and a long secret in a cluster, and not both join and peers', () => {
    const errors = errorsOf({ join: ['ws://10.0.0.11:7070'], peers: CLUSTER_CARD.peers, cluster_secret: 'short' });
    for (const field of ['node_id', 'cluster_secret', 'join and peers']) {
      assert.ok(errors.some((error) => error.startsWith(field)), `${field} in ${errors.join(' | ')}`);
    }
  });

  it("runs pikv's own parsers: a size or peer list pikv would refuse fails here", () => {
    assert.match(errorsOf({ max_memory: 'lots' }).join(), /max_memory/);
    assert.match(errorsOf({ ...CLUSTER_CARD, peers: [{ id: 'pi1', url: 'ws://10.0.0.11:7070' }] }).join(), /peers must list this node/);
  });

  it('checks Wi-Fi settings', () => {
    assert.deepEqual(errorsOf({ wifi: { ssid: 'home', psk: 'long-enough', country: 'GB' } }), []);
    assert.equal(errorsOf({ wifi: { ssid: 'home', psk: 'short', country: 'gb' } }).length, 2);
  });

  it('documents every field in pi-image/README.md', () => {
    const readme = readFileSync(join(repo, 'pi-image/README.md'), 'utf8');
    for (const name of Object.keys(FIELDS)) assert.ok(readme.includes(`\`${name}\``), `${name} is not in pi-image/README.md`);
  });
});

describe('card.js on the Pi', { timeout: 60_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pikv-card-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 78 with one clear line per problem on a bad file, and 0 on a good one', () => {
    writeFileSync(join(dir, 'bad.json'), '{"port": 99999, "node_id": "pi1"}');
    const bad = spawnSync(process.execPath, [card_js, 'check', join(dir, 'bad.json')], { encoding: 'utf8' });
    assert.equal(bad.status, 78);
    assert.match(bad.stderr, /pikv: bad config .*bad\.json; pikv stays down/);
    assert.match(bad.stderr, /port: expected a port number/);
    assert.match(bad.stderr, /cluster_secret: needed in a cluster/);
    writeFileSync(join(dir, 'broken.json'), '{"port": 7070,');
    assert.match(spawnSync(process.execPath, [card_js, 'check', join(dir, 'broken.json')], { encoding: 'utf8' }).stderr, /not valid JSON/);
    assert.equal(spawnSync(process.execPath, [card_js, 'check', join(dir, 'missing.json')]).status, 78);
    const good = spawnSync(process.execPath, [card_js, 'check', join(repo, 'pi-image/files/pikv.json')], { encoding: 'utf8' });
    assert.equal(good.status, 0, good.stderr);
  });

  it('writes hostname, root\'s SSH keys and Wi-Fi under a root directory', () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(dir, 'card.json'), JSON.stringify({ hostname: 'pi3', ssh_authorized_keys: ['ssh-ed25519 AAAAkey me@laptop'], wifi: { ssid: 'home', psk: 'long-enough', country: 'GB' } }));
    const result = spawnSync(process.execPath, [card_js, 'apply-system', join(dir, 'card.json'), root], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'pi3\n');
    assert.match(readFileSync(join(root, 'etc/hosts'), 'utf8'), /127\.0\.1\.1\tpi3/);
    assert.equal(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8'), 'ssh-ed25519 AAAAkey me@laptop\n');
    assert.match(readFileSync(join(root, 'etc/wpa_supplicant/pikv-wlan0.conf'), 'utf8'), /country=GB[\s\S]*ssid="home"/);
    assert.match(readFileSync(join(root, 'etc/network/interfaces.d/wlan0'), 'utf8'), /^allow-hotplug wlan0$/m);
  });

  it('serves: a good card file starts a real pikv node, which SIGTERM stops cleanly', async () => {
    const port = await freePort();
    // RESP off: a test node must not take 6379 (the default) from whatever else runs here.
    writeFileSync(join(dir, 'pikv.json'), JSON.stringify({ host: '127.0.0.1', port, data_dir: '', max_memory: '16mb', workers: 1, serve: { resp_port: 'off' } }));
    const child = spawn(process.execPath, [card_js, 'serve', join(dir, 'pikv.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const deadline = Date.now() + 20_000;
    while (!output.includes('pikv listening on') && Date.now() < deadline && child.exitCode === null) await new Promise((done) => setTimeout(done, 50));
    assert.match(output, new RegExp(`pikv listening on ws://127\\.0\\.0\\.1:${port}`));
    assert.equal(JSON.parse(readFileSync(join(dir, 'serve.json'), 'utf8')).max_memory, '16mb');
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output);
  });
});

describe('card.js for etcd', { timeout: 60_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pikv-card-etcd-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const card = (name: string, value: unknown): string => {
    writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value));
    return join(dir, name);
  };
  const runCard = (...args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync(process.execPath, [card_js, ...args], { encoding: 'utf8' });

  it('etcd-member (the ExecCondition): 0 on a member board, 1 on any other, 78 on a bad card, so systemd skips etcd without a restart loop', () => {
    const member = runCard('etcd-member', card('member.json', ETCD_MEMBER_CARD));
    assert.equal(member.status, 0, member.stderr);
    assert.match(member.stdout, /etcd member pi1/);
    const other = runCard('etcd-member', card('other.json', ETCD_CARD));
    assert.equal(other.status, 1, other.stderr);
    assert.match(other.stdout, /runs no etcd member/);
    assert.equal(runCard('etcd-member', join(repo, 'pi-image/files/pikv.json')).status, 1);
    const bad = runCard('etcd-member', card('bad.json', { ...ETCD_MEMBER_CARD, etcd_initial_cluster: 'pi2=http://10.0.0.12:2380' }));
    assert.equal(bad.status, 78);
    assert.match(bad.stderr, /pikv: bad config .*; etcd stays down until it is fixed/);
    assert.match(bad.stderr, /etcd_initial_cluster: must list this board's member "pi1"/);
    // A member whose etcd forms by mDNS runs under pikv-etcd-form.service instead: etcd.service skips.
    const forming = runCard('etcd-member', card('forming.json', FORMATION_CARD));
    assert.equal(forming.status, 1, forming.stderr);
    assert.match(forming.stdout, /runs under pikv-etcd-form\.service/);
  });

  it('etcd-form-member (pikv-etcd-form\'s ExecCondition): 0 only on a member board whose etcd forms by mDNS', () => {
    const forming = runCard('etcd-form-member', card('forming.json', FORMATION_CARD));
    assert.equal(forming.status, 0, forming.stderr);
    assert.match(forming.stdout, /etcd member pi1, formed by mDNS with 2 other board\(s\)/);
    for (const other of [ETCD_MEMBER_CARD, ETCD_CARD, { ...ETCD_CARD, etcd: 'auto' }]) assert.equal(runCard('etcd-form-member', card('other.json', other)).status, 1);
    assert.equal(runCard('etcd-form-member', card('bad.json', { ...FORMATION_CARD, etcd_members: 4 })).status, 78);
  });

  it('etcd-config writes the member settings once the board has its address, and says so when it never comes', () => {
    const out = join(dir, 'run/etcd.yaml');
    const solo = card('solo.json', { ...ETCD_MEMBER_CARD, etcd: ['http://127.0.0.1:2379'], etcd_initial_cluster: 'pi1=http://127.0.0.1:2380' });
    const written = runCard('etcd-config', solo, out, '--address-wait-s', '0');
    assert.equal(written.status, 0, written.stderr);
    assert.match(readFileSync(out, 'utf8'), /^listen-client-urls: "http:\/\/127\.0\.0\.1:2379"$/m);
    // 192.0.2.0/24 is reserved for documentation: no machine has it.
    const elsewhere = card('elsewhere.json', { ...ETCD_MEMBER_CARD, etcd: ['http://192.0.2.11:2379'], etcd_initial_cluster: 'pi1=http://192.0.2.11:2380' });
    const missing = runCard('etcd-config', elsewhere, join(dir, 'run/other.yaml'), '--address-wait-s', '0');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /etcd listens on 192\.0\.2\.11 .* but after 0s this board has only .*127\.0\.0\.1.*DHCP reservation/);
    assert.equal(runCard('etcd-config', solo).status, 2);
  });

  it('etcd-config\'s file starts a real etcd member with those settings', { skip: etcdMissing() ?? false }, async () => {
    const [client_port, peer_port] = [await freePort(), await freePort()];
    const config = configOf({ ...ETCD_MEMBER_CARD, etcd: [`http://127.0.0.1:${client_port}`], etcd_initial_cluster: `pi1=http://127.0.0.1:${peer_port}` });
    const file = join(dir, 'etcd.yaml');
    writeFileSync(file, etcdConfigYaml(config.etcd!, join(dir, 'etcd-data')));
    const etcd = spawn(ETCD_BINARY, ['--config-file', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    etcd.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      const client = new Etcd3({ hosts: [`http://127.0.0.1:${client_port}`], dialTimeout: 1000 });
      const deadline = Date.now() + 20_000;
      let members: { name: string; peerURLs: string[]; clientURLs: string[] }[] = [];
      try {
        while (Date.now() < deadline && etcd.exitCode === null) {
          try {
            members = (await client.cluster.memberList({})).members;
            if (members.length > 0 && members[0]!.name !== '') break;
          } catch {
            // not listening yet
          }
          await new Promise((done) => setTimeout(done, 200));
        }
      } finally {
        client.close();
      }
      assert.deepEqual(members.map((member) => [member.name, member.peerURLs, member.clientURLs]),
        [['pi1', [`http://127.0.0.1:${peer_port}`], [`http://127.0.0.1:${client_port}`]]], log);
      // The settings etcd logs at start: the ones pikv.json cannot change.
      assert.match(log, /"election-timeout":"2s"/);
      assert.match(log, /"auto-compaction-mode":"revision"/);
      assert.match(log, /"quota-size-bytes":1073741824/);
    } finally {
      etcd.kill('SIGKILL');
    }
  });

  it('serve with etcd: the secret goes to pikv in a 0400 file, not in serve.json', async () => {
    const run_dir = join(dir, 'serve');
    mkdirSync(run_dir);
    writeFileSync(join(run_dir, 'pikv.json'), JSON.stringify({ ...ETCD_CARD, host: '127.0.0.1', port: await freePort(), data_dir: '', max_memory: '16mb', workers: 1, etcd: ['http://127.0.0.1:9'] }));
    // pikv itself may refuse the flags (until the etcd mode lands) or wait for an etcd that is
    // not there; either way the files are written before it starts.
    const child = spawn(process.execPath, [card_js, 'serve', join(run_dir, 'pikv.json')], { stdio: 'ignore' });
    const secret_file = join(run_dir, 'cluster-secret');
    const deadline = Date.now() + 10_000;
    const written = (): boolean => existsSync(secret_file) && readFileSync(secret_file, 'utf8') === ETCD_CARD.cluster_secret;
    while (Date.now() < deadline && child.exitCode === null && !written()) await new Promise((done) => setTimeout(done, 50));
    child.kill('SIGKILL');
    assert.equal(readFileSync(secret_file, 'utf8'), ETCD_CARD.cluster_secret);
    assert.equal(statSync(secret_file).mode & 0o777, 0o400);
    const settings = readFileSync(join(run_dir, 'serve.json'), 'utf8');
    assert.ok(!settings.includes(ETCD_CARD.cluster_secret), settings);
  });
});

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** An ELF header as far as the verifier reads it: 64-bit, little-endian, the given machine. */
function elfHeader(machine: number): Buffer {
  const header = Buffer.alloc(64);
  header.write('\x7fELF', 0, 'latin1');
  header[4] = 2; // ELFCLASS64
  header[5] = 1; // little-endian
  header[6] = 1; // version
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(machine, 18);
  return header;
}

interface Defects {
  cmdline_root?: string;
  drop_firmware?: string;
  node_machine?: number;
  card?: string;
  disable_unit?: boolean;
  drop_etcd_dropin?: boolean;
}

/** Enough of Debian's etcd.service (etcd-server 3.5.16-4) for the verifier: the drop-in is what matters. */
const DEBIAN_ETCD_UNIT = `[Unit]
Description=etcd - highly-available key value store
[Service]
Environment=ETCD_DATA_DIR=/var/lib/etcd/default
EnvironmentFile=-/etc/default/%p
Type=notify
User=etcd
ExecStart=/usr/bin/etcd $DAEMON_ARGS
[Install]
WantedBy=multi-user.target
`;

/** Builds a synthetic image in `dir` with the real stage and assemble scripts. */
function buildSyntheticImage(dir: string, defects: Defects = {}): string {
  const boot = join(dir, 'boot');
  const root = join(dir, 'root');
  const kernel = '6.12.0-fake-arm64';
  mkdirSync(boot, { recursive: true });
  for (const name of ['bootcode.bin', 'start.elf', 'fixup.dat', 'start4.elf', 'fixup4.dat', `vmlinuz-${kernel}`, `initrd.img-${kernel}`,
    'bcm2837-rpi-3-b.dtb', 'bcm2837-rpi-3-b-plus.dtb', 'bcm2711-rpi-4-b.dtb']) {
    if (name !== defects.drop_firmware) writeFileSync(join(boot, name), `fake ${name}\n`);
  }
  writeFileSync(join(boot, 'config.txt'), `[all]\narm_64bit=1\nenable_uart=1\nkernel=vmlinuz-${kernel}\ninitramfs initrd.img-${kernel} followkernel\n`);
  writeFileSync(join(boot, 'cmdline.txt'), `console=tty0 root=${defects.cmdline_root ?? 'LABEL=RASPIROOT'} rw rootwait\n`);
  if (defects.card !== undefined) writeFileSync(join(boot, 'pikv.json'), defects.card);
  for (const path of ['usr/bin', 'etc/ssh', 'opt/pikv/dist/pi-image', 'opt/pikv/dist/src/cli', 'var/lib']) mkdirSync(join(root, path), { recursive: true });
  writeFileSync(join(root, 'usr/bin/node'), elfHeader(defects.node_machine ?? EM_AARCH64));
  chmodSync(join(root, 'usr/bin/node'), 0o755);
  symlinkSync('node', join(root, 'usr/bin/nodejs'));
  // etcd-server and etcd-client, as the build installs them (the real binary is 20 MB).
  mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/systemd/system/etcd.service'), DEBIAN_ETCD_UNIT);
  for (const name of ['etcd', 'etcdctl']) {
    writeFileSync(join(root, 'usr/bin', name), elfHeader(EM_AARCH64));
    chmodSync(join(root, 'usr/bin', name), 0o755);
  }
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\netcd:x:100:102::/var/lib/etcd/:/usr/sbin/nologin\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:20000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(join(root, 'etc/machine-id'), 'uninitialized\n');
  writeFileSync(join(root, 'opt/pikv/dist/pi-image/card.js'), '// fake\n');
  writeFileSync(join(root, 'opt/pikv/dist/src/cli/main.js'), '// fake\n');
  const staged = spawnSync(join(repo, 'pi-image/stage'), [root, boot], { encoding: 'utf8' });
  assert.equal(staged.status, 0, staged.stderr);
  if (defects.disable_unit) unlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/pikv.service'));
  if (defects.drop_etcd_dropin) unlinkSync(join(root, 'usr/lib/systemd/system/etcd.service.d/pikv.conf'));
  const image = join(dir, 'synthetic.img');
  const assembled = spawnSync(join(repo, 'pi-image/assemble'), ['--boot', boot, '--root', root, '--out', image, '--boot-mib', '40', '--root-mib', '16'], { encoding: 'utf8' });
  assert.equal(assembled.status, 0, assembled.stderr);
  return image;
}

function failedChecks(findings: Finding[]): string[] {
  return findings.filter((finding) => !finding.ok).map((finding) => finding.check);
}

const missing = [...ASSEMBLE_TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0), ...missingTools()];
const skip = missing.length > 0 ? `needs ${[...new Set(missing)].join(', ')} (Debian: dosfstools mtools e2fsprogs fdisk)`  : false;

describe('synthetic Pi image', { skip, timeout: 120_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pikv-image-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is assembled by the real steps and passes every structural check', () => {
    // The card of an etcd member board: the verifier checks it against the schema too.
    const image = buildSyntheticImage(join(dir, 'good'), { card: JSON.stringify(ETCD_MEMBER_CARD) });
    const findings = verifyImage(image);
    assert.deepEqual(failedChecks(findings), [], JSON.stringify(findings, null, 1));
    for (const check of ['partition table', 'fat label', 'firmware files', 'device trees', 'arm_64bit=1', 'kernel= target', 'initramfs target',
      'cmdline root=LABEL=RASPIROOT', 'pikv.json', 'ext4 label', 'pikv.service enabled', 'node is aarch64', 'etcd installed', 'etcd is aarch64',
      'etcd drop-in', 'etcd.service enabled', 'pikv-etcd-form.service', 'fsck.vfat -n', 'e2fsck -fn']) {
      assert.ok(findings.some((finding) => finding.check === check), `no "${check}" check`);
    }
    const cli = spawnSync(process.execPath, [verify_js, image], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /all \d+ checks passed/);
  });

  it('fails, naming each defect, on a broken image', () => {
    const image = buildSyntheticImage(join(dir, 'bad'), {
      cmdline_root: '/dev/mmcblk0p2', drop_firmware: 'start4.elf', node_machine: EM_X86_64, card: '{"port": "seventy"}', disable_unit: true, drop_etcd_dropin: true,
    });
    const findings = verifyImage(image);
    assert.deepEqual(failedChecks(findings).sort(), ['cmdline root=LABEL=RASPIROOT', 'etcd drop-in', 'firmware files', 'node is aarch64', 'pikv.json', 'pikv.service enabled'].sort());
    assert.match(findings.find((finding) => finding.check === 'firmware files')!.detail, /start4\.elf/);
    assert.match(findings.find((finding) => finding.check === 'etcd drop-in')!.detail, /etcd\.service\.d\/pikv\.conf missing/);
    const cli = spawnSync(process.execPath, [verify_js, image], { encoding: 'utf8' });
    assert.equal(cli.status, 1);
    assert.match(cli.stdout, /FAIL {2}node is aarch64/);
    assert.match(cli.stdout, /6 of \d+ checks failed/);
  });

  it('fails on a file that is not an image', () => {
    writeFileSync(join(dir, 'zeros.img'), Buffer.alloc(1024 * 1024));
    assert.deepEqual(failedChecks(verifyImage(join(dir, 'zeros.img'))), ['partition table']);
  });
});

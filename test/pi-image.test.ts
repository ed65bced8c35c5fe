/**
 * The Pi image without the slow part: the card-file schema (pi-image/config.ts), what the Pi
 * runs with it (pi-image/card.ts), and a tiny synthetic image (fake firmware, a fake aarch64
 * `node`, but the real stage and assemble steps, config and units) read back by the structural
 * verifier (pi-image/verify.ts), once whole and once broken. The full build and boot test is
 * `npm run image:e2e` (pi-image/README.md).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkCardConfig, checkCardText, FIELDS } from '../pi-image/config.js';
import { missingTools, verifyImage, type Finding } from '../pi-image/verify.js';

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
  });

  it('reports every problem of a bad file, each naming its field', () => {
    const errors = errorsOf({ port: 'x', hostname: 'Pi_1', colour: 'red', data_dir: '/home/pi', ssh_authorized_keys: ['hunter2'] });
    for (const field of ['port', 'hostname', 'colour', 'data_dir', 'ssh_authorized_keys[0]']) {
      assert.ok(errors.some((error) => error.includes(field)), `${field} in ${errors.join(' | ')}`);
    }
  });

  it('requires node_id, advertise and a long secret in a cluster, and not both join and peers', () => {
    const errors = errorsOf({ join: ['ws://10.0.0.11:7070'], peers: CLUSTER_CARD.peers, cluster_secret: 'short' });
    for (const field of ['node_id', 'advertise', 'cluster_secret', 'join and peers']) {
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
    assert.match(bad.stderr, /advertise: needed in a cluster/);
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
    writeFileSync(join(dir, 'pikv.json'), JSON.stringify({ host: '127.0.0.1', port, data_dir: '', max_memory: '16mb', workers: 1 }));
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
}

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
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  writeFileSync(join(root, 'etc/shadow'), 'root:*:20000:0:99999:7:::\n', { mode: 0o640 });
  writeFileSync(join(root, 'etc/machine-id'), 'uninitialized\n');
  writeFileSync(join(root, 'opt/pikv/dist/pi-image/card.js'), '// fake\n');
  writeFileSync(join(root, 'opt/pikv/dist/src/cli/main.js'), '// fake\n');
  const staged = spawnSync(join(repo, 'pi-image/stage'), [root, boot], { encoding: 'utf8' });
  assert.equal(staged.status, 0, staged.stderr);
  if (defects.disable_unit) unlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/pikv.service'));
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
    const image = buildSyntheticImage(join(dir, 'good'));
    const findings = verifyImage(image);
    assert.deepEqual(failedChecks(findings), [], JSON.stringify(findings, null, 1));
    for (const check of ['partition table', 'fat label', 'firmware files', 'device trees', 'arm_64bit=1', 'kernel= target', 'initramfs target',
      'cmdline root=LABEL=RASPIROOT', 'pikv.json', 'ext4 label', 'pikv.service enabled', 'node is aarch64', 'fsck.vfat -n', 'e2fsck -fn']) {
      assert.ok(findings.some((finding) => finding.check === check), `no "${check}" check`);
    }
    const cli = spawnSync(process.execPath, [verify_js, image], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /all \d+ checks passed/);
  });

  it('fails, naming each defect, on a broken image', () => {
    const image = buildSyntheticImage(join(dir, 'bad'), {
      cmdline_root: '/dev/mmcblk0p2', drop_firmware: 'start4.elf', node_machine: EM_X86_64, card: '{"port": "seventy"}', disable_unit: true,
    });
    const findings = verifyImage(image);
    assert.deepEqual(failedChecks(findings).sort(), ['cmdline root=LABEL=RASPIROOT', 'firmware files', 'node is aarch64', 'pikv.json', 'pikv.service enabled'].sort());
    assert.match(findings.find((finding) => finding.check === 'firmware files')!.detail, /start4\.elf/);
    const cli = spawnSync(process.execPath, [verify_js, image], { encoding: 'utf8' });
    assert.equal(cli.status, 1);
    assert.match(cli.stdout, /FAIL {2}node is aarch64/);
    assert.match(cli.stdout, /5 of \d+ checks failed/);
  });

  it('fails on a file that is not an image', () => {
    writeFileSync(join(dir, 'zeros.img'), Buffer.alloc(1024 * 1024));
    assert.deepEqual(failedChecks(verifyImage(join(dir, 'zeros.img'))), ['partition table']);
  });
});

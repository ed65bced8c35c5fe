#!/usr/bin/env node
/**
 * Structural verifier of a pikv Pi image: reads the image file without mounting anything (the
 * MBR by hand, the FAT side with mtools, the ext4 side with debugfs, then fsck.vfat -n and
 * e2fsck -n) and checks what a Pi 3 or 4 needs to boot into a pikv node. It knows nothing of
 * how the image was made, so it runs on the real build and on the synthetic test image alike.
 *
 *   node dist/pi-image/verify.js IMAGE     one line per check; exit 0 all ok, 1 any failed,
 *                                          3 a needed tool is missing
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkCardText } from './config.js';

export interface Finding {
  check: string;
  ok: boolean;
  detail: string;
}

/** Tools the verifier runs, with the Debian package of each. */
export const VERIFY_TOOLS: Readonly<Record<string, string>> = {
  mdir: 'mtools', mtype: 'mtools', debugfs: 'e2fsprogs', e2fsck: 'e2fsprogs', 'fsck.vfat': 'dosfstools',
};
export const EXIT_TOOL_MISSING = 3;

const SECTOR_BYTES = 512;
const BOOT_START_SECTOR = 8192; // 4 MiB, as Debian's raspi images
const TYPE_FAT32_LBA = 0x0c;
const TYPE_FAT32_CHS = 0x0b;
const TYPE_LINUX = 0x83;
const EM_AARCH64 = 183;
const FIRMWARE_FILES = ['bootcode.bin', 'start.elf', 'fixup.dat', 'start4.elf', 'fixup4.dat'];
/** Pi 3B, Pi 3B+ and Pi 4B device trees, as the raspi-firmware package names them. */
const DEVICE_TREES = ['bcm2837-rpi-3-b.dtb', 'bcm2837-rpi-3-b-plus.dtb', 'bcm2711-rpi-4-b.dtb'];
const UNIT_PATH = '/usr/lib/systemd/system/pikv.service';
const UNIT_LINK = '/etc/systemd/system/multi-user.target.wants/pikv.service';
const FIRSTBOOT_LINK = '/etc/systemd/system/sysinit.target.wants/pikv-firstboot.service';
const NODE_PATH = '/usr/bin/node';
/** Debian's etcd-server and etcd-client, and the image's drop-in that runs etcd on member boards only. */
const ETCD_PATH = '/usr/bin/etcd';
const ETCDCTL_PATH = '/usr/bin/etcdctl';
const ETCD_UNIT_PATH = '/usr/lib/systemd/system/etcd.service';
const ETCD_DROPIN_PATH = '/usr/lib/systemd/system/etcd.service.d/pikv.conf';
const ETCD_LINK = '/etc/systemd/system/multi-user.target.wants/etcd.service';
const FORM_UNIT_PATH = '/usr/lib/systemd/system/pikv-etcd-form.service';
const FORM_LINK = '/etc/systemd/system/multi-user.target.wants/pikv-etcd-form.service';
/** Lines pikv-etcd-form.service cannot do without: skipped on other boards, run as etcd, restarted for good. */
const FORM_UNIT_LINES = ['User=etcd', 'ExecCondition=+/usr/bin/node /opt/pikv/dist/pi-image/card.js etcd-form-member /boot/firmware/pikv.json', 'Restart=always', 'RuntimeDirectory=pikv-etcd-form'];
/** The drop-in lines without which etcd would run with Debian's defaults, or on every board. */
const ETCD_DROPIN_LINES = [
  'Environment=',
  'EnvironmentFile=',
  'ExecCondition=+/usr/bin/node /opt/pikv/dist/pi-image/card.js etcd-member /boot/firmware/pikv.json',
  'ExecStartPre=+/usr/bin/node /opt/pikv/dist/pi-image/card.js etcd-config /boot/firmware/pikv.json /run/pikv-etcd/etcd.yaml',
  'RuntimeDirectory=pikv-etcd',
  'ExecStart=',
  'ExecStart=/usr/bin/etcd --config-file /run/pikv-etcd/etcd.yaml',
  'RestartPreventExitStatus=78',
];
const SYMLINK_HOPS_MAX = 8;

interface Partition {
  type: number;
  start_sector: number;
  sectors: number;
}

export function missingTools(): string[] {
  return Object.keys(VERIFY_TOOLS).filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
}

function readBytes(path: string, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    const read = readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

function run(command: string, args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, MTOOLS_SKIP_CHECK: '1', ...env } });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

function readPartitions(image: string): Partition[] | string {
  const mbr = readBytes(image, 0, SECTOR_BYTES);
  if (mbr.length < SECTOR_BYTES || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return 'no MBR signature (55 aa) in sector 0';
  const partitions: Partition[] = [];
  for (let index = 0; index < 4; index++) {
    const entry = 446 + index * 16;
    partitions.push({ type: mbr[entry + 4]!, start_sector: mbr.readUInt32LE(entry + 8), sectors: mbr.readUInt32LE(entry + 12) });
  }
  return partitions;
}

/** The ext4 side, through debugfs on "IMAGE?offset=N" (e2fsprogs' own offset syntax). */
class Ext4Reader {
  constructor(private readonly device: string) {}

  command(request: string): string {
    return run('debugfs', ['-R', request, this.device]).stdout;
  }

  /** The stat of a path (not following a final symlink), or null when it does not exist. */
  stat(path: string): { type: string; link: string } | null {
    const result = run('debugfs', ['-R', `stat "${path}"`, this.device]);
    if (!/Inode:\s*\d+/.test(result.stdout)) return null;
    const type = /Type:\s*(\w+)/.exec(result.stdout)?.[1] ?? 'unknown';
    let link = /Fast link dest:\s*"([^"]*)"/.exec(result.stdout)?.[1] ?? '';
    if (type === 'symlink' && link === '') link = this.command(`cat "${path}"`);
    return { type, link };
  }

  /** Follows symlinks of the final component; null when something on the way is missing. */
  resolve(path: string): string | null {
    let current = path;
    for (let hop = 0; hop < SYMLINK_HOPS_MAX; hop++) {
      const found = this.stat(current);
      if (found === null) return null;
      if (found.type !== 'symlink') return current;
      current = posix.resolve(posix.dirname(current), found.link);
    }
    return null;
  }

  read(path: string): string | null {
    return this.stat(path) === null ? null : this.command(`cat "${path}"`);
  }

  /** The first bytes of a file, without reading all of it into memory. */
  head(path: string, length: number): Buffer {
    const result = spawnSync('sh', ['-c', 'debugfs -R "cat \\"$FILE\\"" "$DEVICE" 2>/dev/null | head -c "$LENGTH"'], {
      env: { ...process.env, FILE: path, DEVICE: this.device, LENGTH: String(length) },
      maxBuffer: length + 1024,
    });
    return result.stdout ?? Buffer.alloc(0);
  }
}

/** The FAT side, through mtools on "IMAGE@@offset". */
class FatReader {
  constructor(private readonly drive: string) {}

  label(): string {
    const out = run('mdir', ['-i', this.drive, '::/']).stdout;
    return /Volume in drive : is (.*)/.exec(out)?.[1]?.trim() ?? '';
  }

  /** Lower-case paths of every file, e.g. "/overlays/foo.dtbo". */
  files(): Set<string> {
    const out = run('mdir', ['-i', this.drive, '-/', '-b', '::/']).stdout;
    return new Set(out.split('\n').filter((line) => line.startsWith('::/')).map((line) => line.slice(2).replace(/\/$/, '').toLowerCase()));
  }

  read(path: string): string | null {
    const result = run('mtype', ['-i', this.drive, `::${path}`]);
    return result.status === 0 ? result.stdout : null;
  }
}

function copyRange(image: string, offset: number, length: number, target: string): void {
  const input = openSync(image, 'r');
  const output = openSync(target, 'w');
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  try {
    for (let done = 0; done < length;) {
      const read = readSync(input, chunk, 0, Math.min(chunk.length, length - done), offset + done);
      if (read === 0) break;
      writeSync(output, chunk, 0, read);
      done += read;
    }
  } finally {
    closeSync(input);
    closeSync(output);
  }
}

/** `key=value` lines of config.txt (all sections: each value must hold wherever it applies). */
function configValues(text: string, key: string): string[] {
  return text.split('\n').map((line) => line.trim()).filter((line) => line.startsWith(`${key}=`)).map((line) => line.slice(key.length + 1).trim());
}

function checkBootPartition(fat: FatReader, add: (check: string, ok: boolean, detail: string) => void): void {
  const label = fat.label();
  add('fat label', label === 'RASPIFIRM', `volume label ${JSON.stringify(label)}, expected "RASPIFIRM"`);
  const files = fat.files();
  const missing_firmware = FIRMWARE_FILES.filter((name) => !files.has(`/${name}`));
  add('firmware files', missing_firmware.length === 0, missing_firmware.length === 0 ? FIRMWARE_FILES.join(', ') : `missing ${missing_firmware.join(', ')}`);
  const missing_trees = DEVICE_TREES.filter((name) => !files.has(`/${name}`));
  add('device trees', missing_trees.length === 0, missing_trees.length === 0 ? `Pi 3 and Pi 4: ${DEVICE_TREES.join(', ')}` : `missing ${missing_trees.join(', ')}`);

  const config = fat.read('/config.txt');
  add('config.txt', config !== null, config === null ? 'missing' : 'present');
  if (config !== null) {
    const arm64 = configValues(config, 'arm_64bit');
    add('arm_64bit=1', arm64.length > 0 && arm64.every((value) => value === '1'), arm64.length === 0 ? 'no arm_64bit line' : `arm_64bit=${arm64.join(', ')}`);
    const kernels = configValues(config, 'kernel');
    const missing_kernels = kernels.filter((name) => !files.has(`/${name.replace(/^\//, '').toLowerCase()}`));
    add('kernel= target', kernels.length > 0 && missing_kernels.length === 0, kernels.length === 0 ? 'no kernel= line' : missing_kernels.length > 0 ? `missing ${missing_kernels.join(', ')}` : kernels.join(', '));
    const initramfs = config.split('\n').map((line) => /^\s*initramfs\s+(\S+)/.exec(line)?.[1]).filter((name): name is string => name !== undefined);
    const missing_initramfs = initramfs.filter((name) => !files.has(`/${name.replace(/^\//, '').toLowerCase()}`));
    add('initramfs target', initramfs.length > 0 && missing_initramfs.length === 0, initramfs.length === 0 ? 'no initramfs line' : missing_initramfs.length > 0 ? `missing ${missing_initramfs.join(', ')}` : initramfs.join(', '));
  }
  const cmdline = fat.read('/cmdline.txt');
  const root_ok = cmdline !== null && /(^|\s)root=LABEL=RASPIROOT(\s|$)/.test(cmdline);
  add('cmdline root=LABEL=RASPIROOT', root_ok, cmdline === null ? 'cmdline.txt missing' : cmdline.trim());

  const card = fat.read('/pikv.json');
  if (card === null) {
    add('pikv.json', false, 'missing from the boot partition');
  } else {
    const result = checkCardText(card);
    add('pikv.json', result.ok, result.ok ? 'valid against the schema (pi-image/config.ts)' : result.errors.join('; '));
  }
}

function checkUnits(ext4: Ext4Reader, add: (check: string, ok: boolean, detail: string) => void): void {
  const unit = ext4.read(UNIT_PATH);
  const unit_lines = ['User=pikv', 'Restart=on-failure', 'RestartPreventExitStatus=78', 'StateDirectory=pikv', 'RuntimeDirectoryMode=0700', 'After=etcd.service'];
  const missing_lines = unit === null ? unit_lines : unit_lines.filter((line) => !unit.split('\n').includes(line));
  add('pikv.service installed', unit !== null && missing_lines.length === 0, unit === null ? `${UNIT_PATH} missing` : missing_lines.length > 0 ? `lacks ${missing_lines.join(', ')}` : UNIT_PATH);
  const enabled = ext4.resolve(UNIT_LINK);
  add('pikv.service enabled', enabled === UNIT_PATH, enabled === null ? `no ${UNIT_LINK} (or it points nowhere)` : `${UNIT_LINK} -> ${enabled}`);
  const firstboot = ext4.resolve(FIRSTBOOT_LINK);
  add('pikv-firstboot enabled', firstboot !== null && ext4.stat('/usr/local/sbin/pikv-firstboot') !== null, firstboot === null ? `no ${FIRSTBOOT_LINK}` : firstboot);
  const users = ext4.read('/usr/lib/sysusers.d/pikv.conf') ?? '';
  const passwd = ext4.read('/etc/passwd') ?? '';
  add('pikv user', /^u\s+pikv\s/m.test(users) || /^pikv:/m.test(passwd), 'unprivileged user pikv (sysusers.d/pikv.conf)');
  const networkd = ext4.stat('/etc/systemd/system/multi-user.target.wants/systemd-networkd.service');
  const preset = ext4.read('/etc/systemd/system-preset/10-pikv.preset') ?? '';
  add('systemd-networkd off', networkd === null && /^disable systemd-networkd\.service$/m.test(preset), networkd !== null ? 'systemd-networkd.service is enabled' : preset === '' ? 'no 10-pikv.preset' : 'disabled, and by preset on first boot');
  const interfaces = ext4.read('/etc/network/interfaces') ?? '';
  add('allow-hotplug eth0', /^allow-hotplug eth0$/m.test(interfaces) && !/^auto eth0/m.test(interfaces), '/etc/network/interfaces');
  checkEtcd(ext4, preset, passwd, add);
}

/** etcd-server and etcd-client installed, and run by the pikv drop-in on member boards only. */
function checkEtcd(ext4: Ext4Reader, preset: string, passwd: string, add: (check: string, ok: boolean, detail: string) => void): void {
  const missing = [ETCD_UNIT_PATH, ETCDCTL_PATH].filter((path) => ext4.stat(path) === null);
  if (!/^etcd:/m.test(passwd)) missing.push('user etcd');
  add('etcd installed', missing.length === 0, missing.length === 0 ? `etcd-server and etcd-client: ${ETCD_UNIT_PATH}, ${ETCDCTL_PATH}, user etcd` : `missing ${missing.join(', ')}`);
  const elf = aarch64Elf(ext4, ETCD_PATH);
  add('etcd is aarch64', elf.ok, elf.detail);
  const dropin = ext4.read(ETCD_DROPIN_PATH);
  const dropin_lines = dropin?.split('\n') ?? [];
  const lacking = ETCD_DROPIN_LINES.filter((line) => !dropin_lines.includes(line));
  add('etcd drop-in', dropin !== null && lacking.length === 0, dropin === null ? `${ETCD_DROPIN_PATH} missing` : lacking.length > 0 ? `lacks ${lacking.join(', ')}` : `${ETCD_DROPIN_PATH}: member boards only, settings from pikv.json`);
  const enabled = ext4.resolve(ETCD_LINK);
  const preset_ok = /^enable etcd\.service$/m.test(preset);
  add('etcd.service enabled', enabled === ETCD_UNIT_PATH && preset_ok,
    enabled === null ? `no ${ETCD_LINK} (or it points nowhere)` : !preset_ok ? 'no "enable etcd.service" in 10-pikv.preset' : `${ETCD_LINK} -> ${enabled} (the drop-in skips it on other boards)`);
  const form_unit = ext4.read(FORM_UNIT_PATH);
  const form_lacking = FORM_UNIT_LINES.filter((line) => !(form_unit?.split('\n') ?? []).includes(line));
  const form_enabled = ext4.resolve(FORM_LINK);
  add('pikv-etcd-form.service', form_unit !== null && form_lacking.length === 0 && form_enabled === FORM_UNIT_PATH,
    form_unit === null ? `${FORM_UNIT_PATH} missing` : form_lacking.length > 0 ? `lacks ${form_lacking.join(', ')}` : form_enabled !== FORM_UNIT_PATH ? `not enabled (no ${FORM_LINK})` : `${FORM_UNIT_PATH}, enabled (skipped unless the card forms etcd by mDNS)`);
}

/** Whether a file (after symlinks) is a 64-bit little-endian aarch64 ELF, as the Pi runs. */
function aarch64Elf(ext4: Ext4Reader, path: string): { ok: boolean; detail: string } {
  const target = ext4.resolve(path);
  if (target === null) return { ok: false, detail: `${path} missing` };
  const header = ext4.head(target, 20);
  const elf = header.length >= 20 && header.readUInt32BE(0) === 0x7f454c46;
  const machine = elf ? header.readUInt16LE(18) : -1;
  const ok = elf && header[4] === 2 && header[5] === 1 && machine === EM_AARCH64;
  return { ok, detail: !elf ? `${target} is not an ELF file` : `${target}: ELF class ${header[4]}, e_machine ${machine} (aarch64 is 64-bit, ${EM_AARCH64})` };
}

function checkSystem(ext4: Ext4Reader, add: (check: string, ok: boolean, detail: string) => void): void {
  const node = aarch64Elf(ext4, NODE_PATH);
  add('node is aarch64', node.ok, node.detail);
  const app = ['/opt/pikv/dist/pi-image/card.js', '/opt/pikv/dist/src/cli/main.js'].filter((path) => ext4.stat(path) === null);
  add('pikv installed', app.length === 0, app.length === 0 ? '/opt/pikv' : `missing ${app.join(', ')}`);
  const shadow = ext4.read('/etc/shadow');
  const empty = shadow === null ? [] : shadow.split('\n').filter((line) => line.split(':').length > 2 && line.split(':')[1] === '').map((line) => line.split(':')[0]);
  add('no passwordless account', shadow !== null && empty.length === 0, shadow === null ? '/etc/shadow missing' : empty.length > 0 ? `empty password: ${empty.join(', ')}` : 'every account is locked or has a password');
  const ssh = ext4.command('ls /etc/ssh');
  add('no shared SSH host keys', !/ssh_host_\w+_key/.test(ssh), 'generated per card on first boot');
  const machine_id = (ext4.read('/etc/machine-id') ?? '').trim();
  add('machine-id unset', machine_id === '' || machine_id === 'uninitialized', machine_id === '' || machine_id === 'uninitialized' ? 'written on first boot' : `ships ${machine_id}`);
}

export function verifyImage(image: string): Finding[] {
  const findings: Finding[] = [];
  const add = (check: string, ok: boolean, detail: string): void => {
    findings.push({ check, ok, detail });
  };
  const image_bytes = statSync(image).size;
  const table = readPartitions(image);
  if (typeof table === 'string') {
    add('partition table', false, table);
    return findings;
  }
  const [boot, root, third, fourth] = table as [Partition, Partition, Partition, Partition];
  const boot_ok = (boot.type === TYPE_FAT32_LBA || boot.type === TYPE_FAT32_CHS) && boot.start_sector === BOOT_START_SECTOR && boot.sectors > 0;
  const root_ok = root.type === TYPE_LINUX && root.start_sector >= boot.start_sector + boot.sectors && root.sectors > 0;
  const inside = (root.start_sector + root.sectors) * SECTOR_BYTES <= image_bytes;
  add('partition table', boot_ok && root_ok && inside && third.type === 0 && fourth.type === 0,
    `MBR p1 type 0x${boot.type.toString(16)} at sector ${boot.start_sector} (${boot.sectors}), p2 type 0x${root.type.toString(16)} at ${root.start_sector} (${root.sectors})` +
    (boot_ok ? '' : '; p1 must be FAT32 (0x0c) from 4 MiB') + (root_ok ? '' : '; p2 must be Linux (0x83) after p1') + (inside ? '' : '; p2 ends past the image'));
  if (!boot_ok || !root_ok || !inside) return findings;

  const boot_offset = boot.start_sector * SECTOR_BYTES;
  const root_offset = root.start_sector * SECTOR_BYTES;
  const fat_type = readBytes(image, boot_offset + 82, 8).toString('latin1');
  add('fat32', fat_type === 'FAT32   ', `boot sector says ${JSON.stringify(fat_type)}`);
  checkBootPartition(new FatReader(`${image}@@${boot_offset}`), add);

  const ext4 = new Ext4Reader(`${image}?offset=${root_offset}`);
  const label = /Filesystem volume name:\s*(\S*)/.exec(ext4.command('stats'))?.[1] ?? '';
  add('ext4 label', label === 'RASPIROOT', `volume name ${JSON.stringify(label)}, expected "RASPIROOT"`);
  checkUnits(ext4, add);
  checkSystem(ext4, add);

  const scratch = mkdtempSync(join(tmpdir(), 'pikv-verify-'));
  try {
    // fsck.vfat has no offset option: check a copy of the partition.
    const fat_copy = join(scratch, 'boot.fat');
    copyRange(image, boot_offset, boot.sectors * SECTOR_BYTES, fat_copy);
    const fsck_fat = run('fsck.vfat', ['-n', fat_copy]);
    add('fsck.vfat -n', fsck_fat.status === 0, fsck_fat.status === 0 ? 'clean' : (fsck_fat.stdout + fsck_fat.stderr).trim().split('\n').slice(-3).join(' / '));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const fsck_ext4 = run('e2fsck', ['-f', '-n', `${image}?offset=${root_offset}`]);
  add('e2fsck -fn', fsck_ext4.status === 0, fsck_ext4.status === 0 ? 'clean' : (fsck_ext4.stdout + fsck_ext4.stderr).trim().split('\n').slice(-3).join(' / '));
  return findings;
}

function main(argv: string[]): void {
  const image = argv[0];
  if (image === undefined) {
    process.stderr.write('usage: verify.js IMAGE\n');
    process.exit(2);
  }
  const missing = missingTools();
  if (missing.length > 0) {
    process.stderr.write(`verify: missing ${missing.map((tool) => `${tool} (Debian: ${VERIFY_TOOLS[tool]})`).join(', ')}\n`);
    process.exit(EXIT_TOOL_MISSING);
  }
  const findings = verifyImage(image);
  for (const finding of findings) process.stdout.write(`${finding.ok ? 'ok  ' : 'FAIL'}  ${finding.check}: ${finding.detail}\n`);
  const failed = findings.filter((finding) => !finding.ok).length;
  process.stdout.write(failed === 0 ? `verify: ${image}: all ${findings.length} checks passed\n` : `verify: ${image}: ${failed} of ${findings.length} checks failed\n`);
  process.exit(failed === 0 ? 0 : 1);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}

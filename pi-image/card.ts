#!/usr/bin/env node
/**
 * What runs on the Pi with the card file /boot/firmware/pikv.json (schema: pi-image/config.ts):
 *
 *   card.js check FILE            print "ok" or every problem; exit 0, or 78 when bad
 *   card.js apply-system FILE     as root at boot (pikv-firstboot): hostname, root's SSH keys, Wi-Fi
 *   card.js serve FILE            the pikv.service main process: check, then run `pikv serve`
 *
 * A bad file exits 78 (EX_CONFIG) with one line per problem on stderr, which the journal keeps;
 * files/pikv.service has RestartPreventExitStatus=78, so the node then stays down instead of
 * restarting in a loop, and `systemctl status pikv` shows why.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkCardText, type CardConfig } from './config.js';

export const EXIT_BAD_CONFIG = 78;

function load(file: string): CardConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    fail(file, [`cannot read it: ${(error as Error).message}. Put a pikv.json on the card's boot partition (pi-image/README.md).`]);
  }
  const result = checkCardText(text);
  if (!result.ok) fail(file, result.errors);
  return result.config;
}

function fail(file: string, errors: string[]): never {
  process.stderr.write(`pikv: bad config ${file}; pikv stays down until it is fixed (see pi-image/README.md):\n`);
  for (const error of errors) process.stderr.write(`pikv:   ${error}\n`);
  process.exit(EXIT_BAD_CONFIG);
}

function writePrivate(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

/** Hostname, root's authorized_keys and Wi-Fi, written under `root` ("/" on the Pi). */
export function applySystem(config: CardConfig, root: string): void {
  writeFileSync(join(root, 'etc/hostname'), `${config.hostname}\n`);
  const hosts = join(root, 'etc/hosts');
  let hosts_text = '';
  try {
    hosts_text = readFileSync(hosts, 'utf8');
  } catch {
    hosts_text = '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n';
  }
  const other_lines = hosts_text.split('\n').filter((line) => line !== '' && !line.startsWith('127.0.1.1'));
  writeFileSync(hosts, `${other_lines.join('\n')}\n127.0.1.1\t${config.hostname}\n`);
  const keys = config.ssh_authorized_keys.map((key) => `${key}\n`).join('');
  mkdirSync(join(root, 'root/.ssh'), { recursive: true, mode: 0o700 });
  writePrivate(join(root, 'root/.ssh/authorized_keys'), keys, 0o600);
  const wifi_conf = join(root, 'etc/wpa_supplicant/pikv-wlan0.conf');
  const wifi_interface = join(root, 'etc/network/interfaces.d/wlan0');
  if (config.wifi === null) {
    writePrivate(wifi_interface, '# No Wi-Fi: set "wifi" in pikv.json on the boot partition.\n', 0o644);
    writePrivate(wifi_conf, '', 0o600);
    return;
  }
  writePrivate(wifi_conf, [
    'ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev',
    `country=${config.wifi.country}`,
    'network={',
    `\tssid="${config.wifi.ssid}"`,
    `\tpsk="${config.wifi.psk}"`,
    '}',
    '',
  ].join('\n'), 0o600);
  writePrivate(wifi_interface, ['allow-hotplug wlan0', 'iface wlan0 inet dhcp', '\twpa-conf /etc/wpa_supplicant/pikv-wlan0.conf', ''].join('\n'), 0o644);
}

/** Writes the serve settings next to the card copy (0600: they hold the secret) and runs pikv. */
async function serve(file: string): Promise<void> {
  const config = load(file);
  const serve_file = join(dirname(file), 'serve.json');
  writePrivate(serve_file, `${JSON.stringify(config.serve, null, 2)}\n`, 0o600);
  // Same process, so systemd supervises pikv itself: its exit code and signals are the unit's.
  const main = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
  process.argv = [process.argv[0]!, main, 'serve', '--config', serve_file];
  await import(pathToFileURL(main).href);
}

async function run(argv: string[]): Promise<void> {
  const [command, file, root] = argv;
  if (file === undefined || !['check', 'apply-system', 'serve'].includes(command ?? '')) {
    process.stderr.write('usage: card.js check|apply-system|serve FILE\n');
    process.exit(2);
  }
  if (command === 'check') {
    load(file);
    process.stdout.write(`${file}: ok\n`);
  } else if (command === 'apply-system') {
    applySystem(load(file), root ?? '/');
  } else {
    await serve(file);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run(process.argv.slice(2));
}

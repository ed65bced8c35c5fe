/**
 * `pikv top`: the whole cluster in the terminal, refreshed every second, as top does: one line
 * per node (ops/s, latency, memory, state) and a total. It reads GET /v1/cluster from the node
 * at --url, which gathers every member's summary itself (src/node/observe/cluster-summary.ts).
 *
 * The terminal: the alternate screen and a hidden cursor while it runs, raw keys (q quits,
 * Ctrl-C quits, space refreshes now); on any exit, including SIGTERM and an error, the screen,
 * the cursor and cooked mode are restored. Not on a terminal it prints one screen and exits.
 */
import { readSecretFile } from '../protocol/auth.js';
import type { ClusterSummary } from '../node/observe/cluster-summary.js';
import { topLines } from './top-screen.js';

const REFRESH_MS = 1_000;
const FETCH_TIMEOUT_MS = 2_000;
const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l';
const HOME_AND_CLEAR = '\x1b[H\x1b[2J';
const CTRL_C = '\x03';

interface TopOptions {
  url: string;
  clientTokenFile?: string;
  delayMs: string;
}

function httpUrl(url: string): string {
  return url.replace(/^ws/, 'http').replace(/\/+$/, '');
}

async function fetchCluster(base: string, token: string): Promise<ClusterSummary> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== '') headers['authorization'] = `Bearer ${token}`;
  const response = await fetch(`${base}/v1/cluster`, { headers, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (response.status === 401) throw new Error('the node needs its client token: --client-token-file FILE or $PIKV_CLIENT_TOKEN');
  if (!response.ok) throw new Error(`GET ${base}/v1/cluster answered HTTP ${response.status}`);
  return (await response.json()) as ClusterSummary;
}

export async function runTop(options: TopOptions): Promise<void> {
  const token = options.clientTokenFile !== undefined
    ? readSecretFile(options.clientTokenFile, 'client token', (message) => process.stderr.write(`pikv: warning: ${message}\n`))
    : process.env['PIKV_CLIENT_TOKEN'] ?? '';
  const refresh_ms = Math.max(200, Number(options.delayMs) || REFRESH_MS);
  const base = httpUrl(options.url);
  const out = process.stdout;
  if (!out.isTTY || !process.stdin.isTTY) {
    out.write(`${topLines(await fetchCluster(base, token), base, '', 200).join('\n')}\n`);
    return;
  }
  await new Promise<void>((resolve) => {
    let last: ClusterSummary | null = null;
    let note = '';
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const draw = (): void => {
      out.write(HOME_AND_CLEAR + topLines(last, base, note, out.columns ?? 80).slice(0, Math.max(1, (out.rows ?? 24) - 1)).join('\r\n'));
    };
    const refresh = (): void => {
      fetchCluster(base, token).then(
        (summary) => { last = summary; note = ''; },
        (error: unknown) => { note = `no answer from ${base}: ${(error as Error).message}`; },
      ).finally(() => { if (!done) draw(); });
    };
    const finish = (): void => {
      if (done) return;
      done = true;
      if (timer !== null) clearInterval(timer);
      process.stdin.setRawMode(false);
      process.stdin.pause();
      process.stdin.off('data', onKey);
      process.off('SIGTERM', finish);
      process.off('SIGHUP', finish);
      process.off('exit', restore);
      restore();
      resolve();
    };
    const restore = (): void => { out.write(LEAVE_SCREEN); };
    const onKey = (data: Buffer): void => {
      const key = data.toString('utf8');
      if (key === 'q' || key === 'Q' || key.includes(CTRL_C)) finish();
      else if (key === ' ') refresh();
    };
    out.write(ENTER_SCREEN);
    // If anything ends the process without finish(), the terminal is still given back.
    process.on('exit', restore);
    process.on('SIGTERM', finish);
    process.on('SIGHUP', finish);
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', onKey);
    out.on('resize', draw);
    draw();
    refresh();
    timer = setInterval(refresh, refresh_ms);
  });
}

#!/usr/bin/env node
/**
 * The `pikv` command: serve a node, or talk to one (get, put, del, load, stats).
 *
 * Client commands take --url, defaulting to $PIKV_URL and then ws://127.0.0.1:7070. Exit codes:
 * 0 success, 1 a key was not found (get) or a load stopped on bad input, 2 any other error.
 */
import { Command, Option } from 'commander';
import { PikvError } from '../protocol/errors.js';
import { runDel, runGet, runKillWorker, runPut, runStats } from './commands.js';
import { runLoad } from './load.js';
import { runServe } from './serve.js';

export const DEFAULT_URL = 'ws://127.0.0.1:7070';
const EXIT_ERROR = 2;

function urlOption(): Option {
  return new Option('--url <url>', 'node to talk to').env('PIKV_URL').default(DEFAULT_URL);
}

const program = new Command();
program.name('pikv').description('pikv: an in-memory key-value store for clusters of small boards').version('0.1.0');

program
  .command('serve')
  .description('run a node in the foreground (Ctrl-C or SIGTERM stops it gracefully)')
  .option('--config <file>', 'JSON file with any of the settings below (flags win)')
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--port <port>', 'port to listen on; 0 picks a free one (default 7070)')
  .option('--workers <n>', 'partition worker threads (default 4)')
  .option('--max-memory <size>', 'memory for all tables, e.g. 512mb (default: half of RAM)')
  .option('--key-bytes-max <size>', 'largest key (default 1kb)')
  .option('--value-bytes-max <size>', 'largest value (default 8mb)')
  .option('--batch-ops-max <n>', 'most ops in one request (default 65536)')
  .option('--frame-bytes-max <size>', 'largest WebSocket frame (default 64mb)')
  .option('--response-bytes-max <size>', 'most result bytes in one response (default 64mb)')
  .option('--connection-requests-inflight-max <n>', 'unanswered requests per connection before it is not read (default 64)')
  .option('--connections-max <n>', 'open connections (default 1024)')
  .option('--data-dir <dir>', 'persist to this directory: per-worker logs and snapshots, recovered on start (default: off, nothing written)')
  .option('--fsync <policy>', 'with --data-dir: always | everysec | no, as Redis appendfsync (default everysec)')
  .option('--compact-min-bytes <size>', 'with --data-dir: compact a worker\'s files once past this and 2x its data (default 64mb)')
  .option('--repair', 'with --data-dir: start even if files are damaged, dropping what cannot be read')
  .action(runServe);

program.command('get').description('print the value of KEY; exit 1 if absent').argument('<key>').addOption(urlOption()).action(runGet);
program.command('put').description('set KEY to VALUE').argument('<key>').argument('<value>').addOption(urlOption()).action(runPut);
program.command('del').alias('delete').description('delete KEY; exit 1 if it was absent').argument('<key>').addOption(urlOption()).action(runDel);
program
  .command('stats')
  .description('keys, bytes and ops per worker and for the node')
  .option('--json', 'machine-readable output')
  .addOption(urlOption())
  .action(runStats);
program
  .command('kill-worker')
  .description('test hook: kill partition worker N mid-flight (the node must run with PIKV_TEST_HOOKS=1)')
  .argument('<n>', 'worker index, from 0')
  .addOption(urlOption())
  .action(runKillWorker);
program
  .command('load')
  .description('bulk-load key/value records from a TSV, CSV or JSON Lines file')
  .argument('<file>', 'file to load; - reads standard input')
  .addOption(new Option('--format <format>', 'record format (default: from the file extension)').choices(['tsv', 'csv', 'jsonl']))
  .option('--skip-bad', 'skip malformed lines (reported) instead of stopping before them')
  .option('--batch <n>', 'records per request', '8192')
  .option('--inflight <n>', 'requests in flight', '4')
  .option('--no-progress', 'no progress bar')
  .addOption(urlOption())
  .action(runLoad);

program.parseAsync(process.argv).catch((error: unknown) => {
  const code = error instanceof PikvError ? ` [${error.code}]` : '';
  process.stderr.write(`pikv: ${(error as Error).message}${code}\n`);
  process.exit(EXIT_ERROR);
});

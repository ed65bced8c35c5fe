/**
 * Runs `redis-benchmark` (Redis's own C client) for the reference figures it can produce:
 * -P pipeline depth, -r key space, -c connections, -d value size. It is count-based, so each
 * figure takes a short calibration run first and then a run sized to the requested seconds.
 * Its keys, "key:" and 12 random digits, are 16 bytes and match the benchmark's own keys.
 */
import { runMeasured } from './processes.js';

export interface RedisBenchmarkSpec {
  port: number;
  /** `-t` tests ("get", "set"), or a custom command line (e.g. MGET key:__rand_int__ …). */
  test: { kind: 'builtin'; name: 'get' | 'set' } | { kind: 'command'; argv: string[]; ops_per_request: number };
  pipeline: number;
  connections: number;
  key_count: number;
  value_bytes: number;
  seconds: number;
}

export interface RedisBenchmarkResult {
  requests: number;
  ops: number;
  wall_s: number;
  requests_per_s: number;
  ops_per_s: number;
  client_cpu_s: number;
  latency_ms: { avg: number; p50: number; p99: number; max: number };
}

/**
 * Parses redis-benchmark --csv output: a quoted header line ("test","rps",...), then one quoted
 * row per test. Lines that are not quoted (warnings such as "WARNING: Could not fetch server
 * CONFIG") are skipped. Returns one record per test row, keyed by the header's names.
 */
export function parseRedisBenchmarkCsv(stdout: string): Record<string, string>[] {
  const lines = stdout.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.startsWith('"'));
  if (lines.length < 2) throw new Error(`unexpected redis-benchmark output:\n${stdout}`);
  const unquote = (line: string): string[] => line.split('","').map((cell) => cell.replace(/^"|"$/g, ''));
  const header = unquote(lines[0]!);
  if (header[0] !== 'test' || !header.includes('rps')) throw new Error(`unexpected redis-benchmark CSV header: ${lines[0]}`);
  return lines.slice(1).map((line) => {
    const row = unquote(line);
    if (row.length !== header.length) throw new Error(`redis-benchmark CSV row has ${row.length} cells, header ${header.length}: ${line}`);
    return Object.fromEntries(header.map((name, i) => [name, row[i]!]));
  });
}

function parseCsv(stdout: string): Record<string, string> {
  const rows = parseRedisBenchmarkCsv(stdout);
  return rows[rows.length - 1]!;
}

async function runOnce(spec: RedisBenchmarkSpec, requests: number): Promise<RedisBenchmarkResult & { server_window_s: number }> {
  const args = ['-h', '127.0.0.1', '-p', String(spec.port), '--csv', '-n', String(requests), '-c', String(spec.connections),
    '-P', String(spec.pipeline), '-r', String(spec.key_count), '-d', String(spec.value_bytes)];
  if (spec.test.kind === 'builtin') args.push('-t', spec.test.name);
  else args.push(...spec.test.argv);
  const run = await runMeasured('redis-benchmark', args, { timeout_ms: Math.max(120_000, spec.seconds * 20_000) });
  if (run.code !== 0) throw new Error(`redis-benchmark failed (${run.code}): ${run.stderr}`);
  const row = parseCsv(run.stdout);
  const requests_per_s = Number(row.rps);
  const ops_per_request = spec.test.kind === 'builtin' ? 1 : spec.test.ops_per_request;
  return {
    requests, ops: requests * ops_per_request, wall_s: run.wall_s, requests_per_s, ops_per_s: requests_per_s * ops_per_request,
    client_cpu_s: run.cpu_s,
    latency_ms: { avg: Number(row.avg_latency_ms), p50: Number(row.p50_latency_ms), p99: Number(row.p99_latency_ms), max: Number(row.max_latency_ms) },
    server_window_s: requests / Math.max(requests_per_s, 1),
  };
}

/** Calibrates on about 0.3 s of work, then runs for about spec.seconds. */
export async function runRedisBenchmark(spec: RedisBenchmarkSpec, onMeasuredRunStart?: () => void): Promise<RedisBenchmarkResult> {
  const ops_per_request = spec.test.kind === 'builtin' ? 1 : spec.test.ops_per_request;
  const guess_requests = Math.max(spec.connections * spec.pipeline * 4, Math.ceil(20_000 / ops_per_request));
  const probe = await runOnce(spec, guess_requests);
  const requests = Math.max(spec.connections * spec.pipeline, Math.ceil(probe.requests_per_s * spec.seconds));
  onMeasuredRunStart?.();
  const { server_window_s: _, ...result } = await runOnce(spec, requests);
  return result;
}

/**
 * Runs bench/compress-values.ts (compression on against off, the real client library) as a
 * child process for the benches that include it: `npm run bench` (workload `compression`,
 * loopback, 4 KiB to 1 MiB of three kinds) and `npm run bench:cluster -- --compression` (over
 * a shaped link). Its output is passed through line by line; its markdown table and memory
 * line come back for the report.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const COMPRESS_VALUES = fileURLToPath(new URL('../compress-values.js', import.meta.url));

export interface CompressValuesOutput {
  /** The result table's markdown lines (header, rule, one row per kind and size). */
  table: string[];
  /** "memory per 64 KiB JSON value ...", or null if it did not get that far. */
  memory: string | null;
}

export function runCompressValues(args: string[], log: (line: string) => void): Promise<CompressValuesOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [COMPRESS_VALUES, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const output: CompressValuesOutput = { table: [], memory: null };
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        log(`  ${line}`);
        if (line.startsWith('|')) output.table.push(line);
        if (line.startsWith('memory per')) output.memory = line;
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`compress-values exited with ${signal ?? code}`));
    });
  });
}

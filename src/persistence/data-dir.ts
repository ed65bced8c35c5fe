/**
 * The data directory: its manifest, the listing of each partition's files, and the fsyncs
 * that make creating, renaming and removing files durable.
 *
 * MANIFEST is JSON `{"format":"pikv-data","version":1,"workers":W}`, replaced atomically
 * (write MANIFEST.tmp, fsync, rename, fsync the directory). Only files of the manifest's
 * worker count are live; files of another count are leftovers of an interrupted
 * re-partition and are removed on start.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PersistenceError, PersistenceErrorCode } from './errors.js';
import { FORMAT_VERSION, FORMAT_VERSION_OLDEST, MANIFEST_NAME, parseFileName, type FileName } from './format.js';

export interface Manifest {
  format: 'pikv-data';
  version: number;
  workers: number;
}

export interface PartitionFiles {
  /** Newest complete snapshot's generation, or 0 if none. */
  snapshot_generation: number;
  /** Generations of logs at or after the snapshot, ascending. */
  log_generations: number[];
  /** Names of files that are no longer part of the state (older generations, temporaries). */
  stale: string[];
}

/** fsync of a directory, so a created, renamed or removed name survives power loss. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function ensureDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new PersistenceError(PersistenceErrorCode.IO, `cannot create data directory ${dir}: ${(error as Error).message}`);
  }
}

/** The manifest, or null if the directory has none. Throws MISMATCH for an unreadable or foreign one. */
export function readManifest(dir: string): Manifest | null {
  const path = join(dir, MANIFEST_NAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PersistenceError(PersistenceErrorCode.IO, `cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: Partial<Manifest>;
  try {
    parsed = JSON.parse(text) as Partial<Manifest>;
  } catch {
    throw new PersistenceError(PersistenceErrorCode.MISMATCH, `${path} is not valid JSON; is this a pikv data directory?`);
  }
  if (parsed.format !== 'pikv-data' || !Number.isSafeInteger(parsed.workers) || (parsed.workers ?? 0) < 1) {
    throw new PersistenceError(PersistenceErrorCode.MISMATCH, `${path} is not a pikv manifest`);
  }
  if (typeof parsed.version !== 'number' || parsed.version < FORMAT_VERSION_OLDEST || parsed.version > FORMAT_VERSION) {
    throw new PersistenceError(PersistenceErrorCode.MISMATCH, `${path}: data format version ${parsed.version}, this pikv reads versions ${FORMAT_VERSION_OLDEST}..${FORMAT_VERSION}`);
  }
  return parsed as Manifest;
}

export function writeManifest(dir: string, workers: number): void {
  const manifest: Manifest = { format: 'pikv-data', version: FORMAT_VERSION, workers };
  const path = join(dir, MANIFEST_NAME);
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    writeFileSync(fd, `${JSON.stringify(manifest)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  fsyncDirectory(dir);
}

/** Every data file in `dir`, parsed. */
export function listDataFiles(dir: string): { name: string; file: FileName }[] {
  const files: { name: string; file: FileName }[] = [];
  for (const name of readdirSync(dir)) {
    const file = parseFileName(name);
    if (file !== null) files.push({ name, file });
  }
  return files;
}

/** The live files of one partition, from a listing. */
export function partitionFiles(listing: { name: string; file: FileName }[], workers: number, partition: number): PartitionFiles {
  const mine = listing.filter(({ file }) => file.workers === workers && file.partition === partition);
  let snapshot_generation = 0;
  for (const { file } of mine) {
    if (file.kind === 'snap') snapshot_generation = Math.max(snapshot_generation, file.generation);
  }
  const log_generations: number[] = [];
  const stale: string[] = [];
  for (const { name, file } of mine) {
    if (file.kind === 'snap.tmp' || file.generation < snapshot_generation || (file.kind === 'snap' && file.generation !== snapshot_generation)) stale.push(name);
    else if (file.kind === 'log') log_generations.push(file.generation);
  }
  log_generations.sort((a, b) => a - b);
  return { snapshot_generation, log_generations, stale };
}

/** Removes `names` from `dir` (missing ones are fine), then fsyncs the directory once. */
export function removeFiles(dir: string, names: string[]): void {
  if (names.length === 0) return;
  for (const name of names) {
    try {
      unlinkSync(join(dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  fsyncDirectory(dir);
}

/** Bytes of a partition's live files. */
export function partitionDiskBytes(dir: string, workers: number, partition: number): number {
  const listing = listDataFiles(dir);
  const files = partitionFiles(listing, workers, partition);
  let total = 0;
  for (const { name, file } of listing) {
    if (file.workers !== workers || file.partition !== partition || files.stale.includes(name)) continue;
    try {
      total += statSync(join(dir, name)).size;
    } catch {
      // Removed meanwhile: counts as nothing.
    }
  }
  return total;
}

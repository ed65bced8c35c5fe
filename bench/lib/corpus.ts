/**
 * Value corpora for the compression benchmarks and tests (issue #13): three kinds of value of
 * any size, deterministic for a seed. JSON-like text (records of an API's answer), log-like
 * text (web server lines with times, addresses and paths) and random bytes (already
 * compressed media, encrypted data: the case where compression must cost little).
 */
import { prng } from './keys.js';

export type CorpusKind = 'json' | 'log' | 'random';
export const CORPUS_KINDS: readonly CorpusKind[] = ['json', 'log', 'random'];

const WORDS = ['alpha', 'bravo', 'sensor', 'kitchen', 'garden', 'pi-4', 'pi-3', 'ok', 'error', 'retry', 'temperature', 'humidity', 'north', 'south', 'battery', 'firmware'];
const PATHS = ['/api/v1/items', '/api/v1/users/', '/static/app.js', '/index.html', '/metrics', '/api/v1/orders/', '/login', '/img/logo.png'];
const AGENTS = ['curl/8.5.0', 'Mozilla/5.0 (X11; Linux aarch64)', 'pikv-client/0.1', 'Go-http-client/1.1'];

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

function jsonRecord(random: () => number, index: number): string {
  return JSON.stringify({
    id: index,
    name: `${pick(random, WORDS)}-${Math.floor(random() * 10000)}`,
    room: pick(random, WORDS),
    active: random() < 0.8,
    reading: Math.round(random() * 100000) / 100,
    tags: [pick(random, WORDS), pick(random, WORDS)],
    updated_at: new Date(1_760_000_000_000 + Math.floor(random() * 1e9)).toISOString(),
  });
}

function logLine(random: () => number): string {
  const ip = `192.168.${Math.floor(random() * 4)}.${Math.floor(random() * 255)}`;
  const time = new Date(1_760_000_000_000 + Math.floor(random() * 1e8)).toISOString();
  const status = random() < 0.9 ? 200 : pick(random, [301, 404, 500]);
  const path = pick(random, PATHS) + (random() < 0.5 ? String(Math.floor(random() * 5000)) : '');
  return `${ip} - - [${time}] "GET ${path} HTTP/1.1" ${status} ${Math.floor(random() * 50000)} "-" "${pick(random, AGENTS)}"\n`;
}

/** A value of exactly `bytes` bytes of kind `kind`. */
export function corpusValue(kind: CorpusKind, bytes: number, seed = 1): Buffer {
  const random = prng(seed);
  if (kind === 'random') {
    const value = Buffer.allocUnsafe(Math.ceil(bytes / 4) * 4);
    for (let i = 0; i < value.length; i += 4) value.writeUInt32LE(Math.floor(random() * 0x1_0000_0000), i);
    return value.subarray(0, bytes);
  }
  const parts: string[] = kind === 'json' ? ['['] : [];
  let length = parts.length;
  for (let index = 0; length < bytes; index++) {
    const part = kind === 'json' ? (index > 0 ? ',' : '') + jsonRecord(random, index) : logLine(random);
    parts.push(part);
    length += part.length;
  }
  const text = Buffer.from(parts.join(''));
  return text.subarray(0, bytes);
}

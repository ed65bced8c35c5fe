/**
 * /metrics read back through a real Prometheus text parser (parse-prometheus-text-format, which
 * follows the exposition format's grammar: HELP, TYPE, label escaping, histogram buckets).
 */
import { createRequire } from 'node:module';

export interface PromSample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface PromFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: PromSample[];
}

const require = createRequire(import.meta.url);
// The package ships no types; its one export takes the text and returns the families.
const parse = require('parse-prometheus-text-format') as (text: string) => PromFamily[];

export function parseMetrics(text: string): Map<string, PromFamily> {
  return new Map(parse(text).map((family) => [family.name, family]));
}

/** The value of the one sample of `name` whose labels include `labels`; 0 if there is none. */
export function valueOf(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (family === undefined) return 0;
  const found = family.metrics.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found.length === 0 ? 0 : Number(found[0]!.value);
}

/** Sum of every sample of `name` (e.g. keys over partitions). */
export function sumOf(families: Map<string, PromFamily>, name: string): number {
  return (families.get(name)?.metrics ?? []).reduce((sum, sample) => sum + Number(sample.value), 0);
}

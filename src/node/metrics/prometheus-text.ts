/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: HELP and TYPE once
 * per family, then its samples, label values escaped (backslash, quote, newline) and numbers
 * as Go prints them (+Inf, -Inf, NaN). docs/OBSERVABILITY.md lists every family pikv writes.
 */

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type Labels = Readonly<Record<string, string | number>>;

const NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export class PrometheusText {
  private readonly lines: string[] = [];
  private readonly families = new Set<string>();

  /** Starts a family; each name once. */
  family(name: string, type: MetricType, help: string): this {
    if (!NAME_PATTERN.test(name)) throw new Error(`bad metric name ${name}`);
    if (this.families.has(name)) throw new Error(`metric family ${name} written twice`);
    this.families.add(name);
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${labelText(labels)} ${numberText(value)}`);
    return this;
  }

  /** A histogram's _bucket (cumulative), _sum and _count samples from per-bucket counts. */
  histogram(name: string, labels: Labels, bounds: readonly number[], counts: ArrayLike<number>, sum: number): this {
    let cumulative = 0;
    for (let i = 0; i < bounds.length; i++) {
      cumulative += counts[i]!;
      this.sample(`${name}_bucket`, { ...labels, le: numberText(bounds[i]!) }, cumulative);
    }
    cumulative += counts[bounds.length]!;
    this.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, cumulative);
    this.sample(`${name}_sum`, labels, sum);
    return this.sample(`${name}_count`, labels, cumulative);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function labelText(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length === 0) return '';
  return `{${names.map((name) => `${name}="${escapeLabel(String(labels[name]))}"`).join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function numberText(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}

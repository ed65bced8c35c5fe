/**
 * Hand-written SVG line charts (no dependencies): linear or log10 axes, one polyline with
 * point markers per series, a legend. Enough for throughput sweeps and latency CDFs.
 */

export interface Series {
  name: string;
  points: [number, number][];
}

export interface ChartSpec {
  title: string;
  x_label: string;
  y_label: string;
  x_log: boolean;
  y_log: boolean;
  series: Series[];
  /** Formats a tick value on each axis. */
  x_format?: (value: number) => string;
  y_format?: (value: number) => string;
}

const WIDTH = 760;
const HEIGHT = 460;
const MARGIN = { left: 80, right: 210, top: 40, bottom: 56 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function formatSi(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${+(value / 1e9).toPrecision(3)}G`;
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${+(value / 1e3).toPrecision(3)}k`;
  return `${+value.toPrecision(3)}`;
}

export function formatBytes(value: number): string {
  if (value >= 1 << 20) return `${+(value / (1 << 20)).toPrecision(3)} MiB`;
  if (value >= 1 << 10) return `${+(value / (1 << 10)).toPrecision(3)} KiB`;
  return `${value} B`;
}

interface Axis {
  toPixel(value: number): number;
  ticks: number[];
}

function makeAxis(values: number[], log: boolean, pixel_from: number, pixel_to: number): Axis {
  const positive = log ? values.filter((v) => v > 0) : values;
  let low = Math.min(...positive);
  let high = Math.max(...positive);
  if (!Number.isFinite(low)) [low, high] = [1, 10];
  if (log) {
    const low_exp = Math.floor(Math.log10(low));
    const high_exp = Math.max(low_exp + 1, Math.ceil(Math.log10(high)));
    const ticks: number[] = [];
    for (let e = low_exp; e <= high_exp; e++) ticks.push(10 ** e);
    const scale = (v: number): number => (Math.log10(Math.max(v, 10 ** low_exp)) - low_exp) / (high_exp - low_exp);
    return { ticks, toPixel: (v) => pixel_from + scale(v) * (pixel_to - pixel_from) };
  }
  low = Math.min(0, low);
  if (high === low) high = low + 1;
  const step = 10 ** Math.floor(Math.log10((high - low) / 4));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((s) => (high - low) / s <= 6) ?? step * 10;
  const top = Math.ceil(high / nice) * nice;
  const ticks: number[] = [];
  for (let t = low; t <= top + nice / 2; t += nice) ticks.push(t);
  return { ticks, toPixel: (v) => pixel_from + ((v - low) / (top - low)) * (pixel_to - pixel_from) };
}

export function lineChart(spec: ChartSpec): string {
  const series = spec.series.filter((s) => s.points.length > 0);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x_axis = makeAxis(xs, spec.x_log, MARGIN.left, WIDTH - MARGIN.right);
  const y_axis = makeAxis(ys, spec.y_log, HEIGHT - MARGIN.bottom, MARGIN.top);
  const x_format = spec.x_format ?? formatSi;
  const y_format = spec.y_format ?? formatSi;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${WIDTH / 2 - MARGIN.right / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  for (const tick of x_axis.ticks) {
    const x = x_axis.toPixel(tick).toFixed(1);
    out.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${HEIGHT - MARGIN.bottom}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${x}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${escapeXml(x_format(tick))}</text>`);
  }
  for (const tick of y_axis.ticks) {
    const y = y_axis.toPixel(tick).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${WIDTH - MARGIN.right}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(y_format(tick))}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${WIDTH - MARGIN.left - MARGIN.right}" height="${HEIGHT - MARGIN.top - MARGIN.bottom}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(MARGIN.left + WIDTH - MARGIN.right) / 2}" y="${HEIGHT - 14}" text-anchor="middle">${escapeXml(spec.x_label)}</text>`);
  out.push(`<text transform="translate(18 ${(MARGIN.top + HEIGHT - MARGIN.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.y_label)}</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points = [...s.points].sort((a, b) => a[0] - b[0]).map(([x, y]) => `${x_axis.toPixel(x).toFixed(1)},${y_axis.toPixel(y).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`);
    for (const point of points) {
      const [px, py] = point.split(',');
      out.push(`<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>`);
    }
    const legend_y = MARGIN.top + 10 + i * 20;
    out.push(`<line x1="${WIDTH - MARGIN.right + 12}" y1="${legend_y}" x2="${WIDTH - MARGIN.right + 32}" y2="${legend_y}" stroke="${color}" stroke-width="3"/>`);
    out.push(`<text x="${WIDTH - MARGIN.right + 38}" y="${legend_y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

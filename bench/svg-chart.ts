/**
 * A hand-drawn SVG of the sweep: latency (p50, p99) over concurrency in the top panel,
 * throughput (with the ceiling as a dashed line) in the bottom one. Two panels rather than two
 * y-axes, so each curve is read against its own labelled scale.
 */

export interface ChartPoint {
  concurrency: number;
  p50Ms: number | null;
  p99Ms: number | null;
  throughput: number | null;
}

export interface ChartOptions {
  title: string;
  /** The raw engine's best images/s, drawn as a reference in the throughput panel. */
  ceilingImagesPerS?: number | null;
}

const WIDTH = 800;
const PANEL_HEIGHT = 230;
const MARGIN = { left: 80, right: 190, top: 50, gap: 70, bottom: 50 };
const HEIGHT = MARGIN.top + 2 * PANEL_HEIGHT + MARGIN.gap + MARGIN.bottom;
const PLOT_WIDTH = WIDTH - MARGIN.left - MARGIN.right;
const COLORS = { p50: '#1f77b4', p99: '#d62728', throughput: '#2ca02c', ceiling: '#555555', grid: '#e0e0e0', axis: '#333333' };

interface Series {
  label: string;
  color: string;
  values: Array<number | null>;
  /** A constant reference level rather than a measured curve. */
  dashed?: boolean;
}

export function renderChart(points: readonly ChartPoint[], options: ChartOptions): string {
  const sorted = [...points].sort((a, b) => a.concurrency - b.concurrency);
  const xs = sorted.map((p) => p.concurrency);
  const x = xScale(xs);
  const latencyTop = MARGIN.top;
  const throughputTop = MARGIN.top + PANEL_HEIGHT + MARGIN.gap;
  const ceiling = options.ceilingImagesPerS ?? null;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`,
    panel({
      top: latencyTop,
      xs,
      x,
      yLabel: 'latency (ms)',
      series: [
        { label: 'p50', color: COLORS.p50, values: sorted.map((p) => p.p50Ms) },
        { label: 'p99', color: COLORS.p99, values: sorted.map((p) => p.p99Ms) },
      ],
    }),
    panel({
      top: throughputTop,
      xs,
      x,
      yLabel: 'throughput (images/s)',
      xLabel: 'concurrency (clients, closed loop)',
      series: [
        { label: 'hub', color: COLORS.throughput, values: sorted.map((p) => p.throughput) },
        ...(ceiling !== null ? [{ label: 'ceiling (one engine)', color: COLORS.ceiling, values: sorted.map(() => ceiling), dashed: true }] : []),
      ],
    }),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}

interface PanelSpec {
  top: number;
  xs: number[];
  x: (value: number) => number;
  yLabel: string;
  xLabel?: string;
  series: Series[];
}

function panel(spec: PanelSpec): string {
  const bottom = spec.top + PANEL_HEIGHT;
  const left = MARGIN.left;
  const right = MARGIN.left + PLOT_WIDTH;
  const finite = spec.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const ticks = niceTicks(finite.length > 0 ? Math.max(...finite) : 1);
  const yMax = ticks[ticks.length - 1];
  const y = (value: number) => bottom - (value / yMax) * PANEL_HEIGHT;
  const out: string[] = ['<g>'];
  for (const tick of ticks) {
    out.push(`<line x1="${left}" x2="${right}" y1="${fmt(y(tick))}" y2="${fmt(y(tick))}" stroke="${COLORS.grid}"/>`);
    out.push(`<text x="${left - 8}" y="${fmt(y(tick) + 4)}" text-anchor="end">${formatTick(tick)}</text>`);
  }
  for (const value of spec.xs) {
    out.push(`<line x1="${fmt(spec.x(value))}" x2="${fmt(spec.x(value))}" y1="${bottom}" y2="${bottom + 5}" stroke="${COLORS.axis}"/>`);
    out.push(`<text x="${fmt(spec.x(value))}" y="${bottom + 20}" text-anchor="middle">${value}</text>`);
  }
  out.push(`<line x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}" stroke="${COLORS.axis}"/>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${spec.top}" y2="${bottom}" stroke="${COLORS.axis}"/>`);
  const midY = spec.top + PANEL_HEIGHT / 2;
  out.push(`<text x="22" y="${midY}" text-anchor="middle" transform="rotate(-90 22 ${midY})">${escapeXml(spec.yLabel)}</text>`);
  if (spec.xLabel) out.push(`<text x="${left + PLOT_WIDTH / 2}" y="${bottom + 42}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);

  spec.series.forEach((series, index) => {
    const points = spec.xs
      .map((value, i) => [spec.x(value), series.values[i]] as const)
      .filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    if (series.dashed && points.length > 0) {
      // A reference level: across the whole panel, even when the sweep has a single step.
      const level = fmt(y(points[0][1]));
      out.push(`<line x1="${left}" x2="${right}" y1="${level}" y2="${level}" stroke="${series.color}" stroke-width="2"${dash}/>`);
    } else if (points.length > 1) {
      const d = points.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${fmt(px)} ${fmt(y(py))}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${series.color}" stroke-width="2"${dash}/>`);
    }
    if (!series.dashed) {
      for (const [px, py] of points) out.push(`<circle cx="${fmt(px)}" cy="${fmt(y(py))}" r="3.5" fill="${series.color}"/>`);
    }
    const legendY = spec.top + 12 + index * 22;
    out.push(`<line x1="${right + 20}" x2="${right + 44}" y1="${legendY}" y2="${legendY}" stroke="${series.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${right + 50}" y="${legendY + 4}">${escapeXml(series.label)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** Concurrency sweeps are usually geometric (1, 2, 4 …), so a log scale spaces them evenly. */
function xScale(values: readonly number[]): (value: number) => number {
  const positive = values.length > 0 && values.every((v) => v > 0);
  const f = positive ? Math.log : (v: number) => v;
  const lo = values.length > 0 ? f(Math.min(...values)) : 0;
  const hi = values.length > 0 ? f(Math.max(...values)) : 1;
  const pad = PLOT_WIDTH * 0.05;
  if (hi === lo) return () => MARGIN.left + PLOT_WIDTH / 2;
  return (value) => MARGIN.left + pad + ((f(value) - lo) / (hi - lo)) * (PLOT_WIDTH - 2 * pad);
}

/** 0 and three to six round steps (1, 2 or 5 × 10^k) that reach at least `max`. */
export function niceTicks(max: number): number[] {
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const raw = top / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const count = Math.ceil(top / step - 1e-9);
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

function formatTick(value: number): string {
  return Math.abs(value) >= 1000 ? value.toLocaleString('en-US') : String(value);
}

function fmt(value: number): string {
  return value.toFixed(1);
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

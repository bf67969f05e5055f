/**
 * The dashboard's three time-series charts (uPlot: small, fast, bundled, no network): throughput,
 * latency percentiles, queue depth. Fed one sample per second; they show the chosen range.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { STATS_HISTORY } from '../../../shared/protocol/events.ts';
import type { StatsSample } from '../../../shared/protocol/events.ts';
import { formatClock } from '../common/format.ts';

interface SeriesSpec {
  label: string;
  color: string;
  pick: (sample: StatsSample) => number | null;
  fill?: boolean;
  /** Mark every sample: for series with gaps (no traffic, no latency), where lone seconds would not show as lines. */
  points?: boolean;
}

interface ChartSpec {
  container: HTMLElement;
  series: SeriesSpec[];
  tickLabel: (value: number) => string;
}

const HEIGHT = 180;

function cssColor(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export class TrafficCharts {
  private samples: StatsSample[] = [];
  private rangeSeconds = 300;
  private readonly charts: Array<{ plot: uPlot; spec: ChartSpec }> = [];

  constructor(containers: { throughput: HTMLElement; latency: HTMLElement; queue: HTMLElement }) {
    const accent = cssColor('--accent', '#1f6feb');
    const warn = cssColor('--warn', '#9a6700');
    const bad = cssColor('--bad', '#cf222e');
    const ok = cssColor('--ok', '#1a7f37');
    const specs: ChartSpec[] = [
      { container: containers.throughput, tickLabel: (v) => `${v}/s`, series: [{ label: 'images/s', color: accent, pick: (s) => s.throughput, fill: true }] },
      {
        container: containers.latency,
        tickLabel: (v) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`),
        series: [
          { label: 'p50', color: ok, pick: (s) => s.latency_p50_ms, points: true },
          { label: 'p90', color: warn, pick: (s) => s.latency_p90_ms, points: true },
          { label: 'p99', color: bad, pick: (s) => s.latency_p99_ms, points: true },
        ],
      },
      {
        container: containers.queue,
        tickLabel: (v) => String(v),
        series: [
          { label: 'queued', color: warn, pick: (s) => s.queue_depth, fill: true },
          { label: 'running', color: accent, pick: (s) => s.running },
        ],
      },
    ];
    for (const spec of specs) this.charts.push({ spec, plot: this.create(spec) });
    const resize = new ResizeObserver(() => this.resize());
    for (const { spec } of this.charts) resize.observe(spec.container);
  }

  setHistory(samples: readonly StatsSample[]): void {
    this.samples = samples.slice(-STATS_HISTORY);
    this.redraw();
  }

  push(sample: StatsSample): void {
    this.samples.push(sample);
    if (this.samples.length > STATS_HISTORY) this.samples.splice(0, this.samples.length - STATS_HISTORY);
    this.redraw();
  }

  setRange(seconds: number): void {
    this.rangeSeconds = seconds;
    this.redraw();
  }

  private create(spec: ChartSpec): uPlot {
    const text = cssColor('--muted', '#5a6470');
    const grid = cssColor('--border', '#d8dde3');
    const lines = { stroke: grid, width: 1 };
    const yAxis: uPlot.Axis = { stroke: text, grid: lines, ticks: lines, values: (_plot, ticks) => ticks.map(spec.tickLabel), size: 60 };
    // Clock times only (the default adds the date, and neighbouring labels collide).
    const xAxis: uPlot.Axis = { stroke: text, grid: lines, ticks: lines, space: 70, values: (_plot, ticks) => ticks.map((t) => formatClock(t * 1000)) };
    const options: uPlot.Options = {
      width: Math.max(200, spec.container.clientWidth),
      height: HEIGHT,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_plot, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [xAxis, yAxis],
      series: [
        {},
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: s.fill ? `${s.color}22` : undefined,
          ...(s.points ? { points: { show: true, size: 4, fill: s.color } } : {}),
        })),
      ],
    };
    return new uPlot(options, this.data(spec), spec.container);
  }

  private data(spec: ChartSpec): uPlot.AlignedData {
    const since = (this.samples.at(-1)?.at ?? Date.now()) - this.rangeSeconds * 1000;
    const visible = this.samples.filter((s) => s.at >= since);
    return [visible.map((s) => s.at / 1000), ...spec.series.map((series) => visible.map(series.pick))];
  }

  private redraw(): void {
    for (const { plot, spec } of this.charts) plot.setData(this.data(spec));
  }

  private resize(): void {
    for (const { plot, spec } of this.charts) {
      const width = Math.max(200, spec.container.clientWidth);
      if (width !== plot.width) plot.setSize({ width, height: HEIGHT });
    }
  }
}

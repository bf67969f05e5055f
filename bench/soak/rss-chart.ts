/**
 * The soak's SVG: the hub's RSS over time, with the end of the warm-up and volunteer tabs
 * joining (▲) and leaving (▼) marked, so a step in memory can be matched to what happened.
 * The y-axis starts near the lowest sample rather than at 0: a leak of a few MiB must show.
 */
import { escapeXml, niceTicks } from '../svg-chart.ts';
import type { Sample } from './monitor.ts';
import type { VolunteerEvent } from './volunteers.ts';

const WIDTH = 800;
const HEIGHT = 360;
const MARGIN = { left: 70, right: 30, top: 50, bottom: 60 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const COLORS = { rss: '#1f77b4', grid: '#e0e0e0', axis: '#333333', warmup: '#888888', join: '#2ca02c', leave: '#d62728' };
/** The smallest y-span drawn, so a flat line does not fill the panel with noise. */
const MIN_SPAN_MIB = 20;

export function renderRssChart(samples: readonly Sample[], events: readonly VolunteerEvent[], options: { title: string; warmupS: number }): string {
  const points = samples.filter((s): s is Sample & { rss_mib: number } => s.rss_mib !== null);
  const tMax = Math.max(60, ...samples.map((s) => s.t_s));
  const values = points.map((p) => p.rss_mib);
  const lo = values.length > 0 ? Math.min(...values) : 0;
  const hi = values.length > 0 ? Math.max(...values) : 1;
  const step = niceTicks(Math.max(hi - lo, MIN_SPAN_MIB))[1];
  const yMin = Math.max(0, Math.floor(lo / step) * step);
  const yMax = Math.max(yMin + step, Math.ceil(hi / step) * step);
  const x = (s: number) => MARGIN.left + (s / tMax) * PLOT_W;
  const y = (mib: number) => MARGIN.top + PLOT_H - ((mib - yMin) / (yMax - yMin)) * PLOT_H;
  const bottom = MARGIN.top + PLOT_H;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  for (let v = yMin; v <= yMax + 1e-9; v += step) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="${COLORS.grid}"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${f(y(v) + 4)}" text-anchor="end">${Number(v.toPrecision(12))}</text>`);
  }
  const minuteStep = niceTicks(tMax / 60)[1] || 1;
  for (let m = 0; m * 60 <= tMax + 1e-9; m += minuteStep) {
    out.push(`<line x1="${f(x(m * 60))}" x2="${f(x(m * 60))}" y1="${bottom}" y2="${bottom + 5}" stroke="${COLORS.axis}"/>`);
    out.push(`<text x="${f(x(m * 60))}" y="${bottom + 20}" text-anchor="middle">${Number(m.toPrecision(12))}</text>`);
  }
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${bottom}" y2="${bottom}" stroke="${COLORS.axis}"/>`);
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${bottom}" stroke="${COLORS.axis}"/>`);
  out.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${bottom + 42}" text-anchor="middle">minutes of load</text>`);
  const midY = MARGIN.top + PLOT_H / 2;
  out.push(`<text x="20" y="${midY}" text-anchor="middle" transform="rotate(-90 20 ${midY})">hub RSS (MiB)</text>`);
  if (options.warmupS > 0 && options.warmupS < tMax) {
    const wx = f(x(options.warmupS));
    out.push(`<line x1="${wx}" x2="${wx}" y1="${MARGIN.top}" y2="${bottom}" stroke="${COLORS.warmup}" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${wx}" y="${MARGIN.top - 6}" text-anchor="middle" fill="${COLORS.warmup}">warm-up</text>`);
  }
  if (points.length > 1) {
    out.push(`<path d="${points.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(x(p.t_s))} ${f(y(p.rss_mib))}`).join(' ')}" fill="none" stroke="${COLORS.rss}" stroke-width="2"/>`);
  }
  for (const event of events) {
    if (event.action !== 'join' && event.action !== 'leave') continue;
    const ex = x(event.at_s);
    const join = event.action === 'join';
    const tip = join ? bottom - 12 : bottom - 2;
    const base = join ? bottom - 2 : bottom - 12;
    out.push(`<path d="M${f(ex - 5)} ${base} L${f(ex + 5)} ${base} L${f(ex)} ${tip} Z" fill="${join ? COLORS.join : COLORS.leave}"><title>${escapeXml(`${event.id ?? ''} ${event.action}`)}</title></path>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function f(value: number): string {
  return value.toFixed(1);
}

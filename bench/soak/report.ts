/**
 * What a soak found: the verdict (problems fail it, warnings do not), the table printed at the
 * end, and the files written (`soak-<timestamp>.json` with every sample, and its SVG).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { percentile, round } from '../../shared/stats.ts';
import type { HubExit } from '../hub.ts';
import type { Ledger } from './ledger.ts';
import { JUDGEABLE_SPAN_S } from './memory.ts';
import type { MemorySummary } from './memory.ts';
import type { Sample } from './monitor.ts';
import { renderRssChart } from './rss-chart.ts';
import type { VolunteerEvent } from './volunteers.ts';

export interface SoakResult {
  startedAt: string;
  finishedAt: string;
  config: Record<string, unknown>;
  hub: { ready: Record<string, unknown>; startupMs: number; exit: HubExit | null; logProblems: Record<string, number> };
  loadS: number;
  requests: ReturnType<typeof requestTotals>;
  volunteers: { enabled: boolean; events: VolunteerEvent[]; joined: number; left: number; failedJoins: number; cancelledJoins: number; closedMidJob: number; served: number };
  memory: MemorySummary;
  samples: Sample[];
  problems: string[];
  warnings: string[];
}

/** RSS growing faster than this over the second half is worth a look (not a failure by itself). */
const GROWTH_WARNING_MIB_PER_MIN = 1;

export function requestTotals(ledger: Ledger) {
  const latencies = ledger.okLatencyMs;
  return {
    ...ledger.counts,
    errorsByCode: ledger.errorsByCode,
    lostByReason: ledger.lostByReason,
    late: ledger.late,
    stray: ledger.stray,
    atShutdown: ledger.atShutdown,
    servedBy: ledger.servedBy,
    okLatencyMs: latencies.length === 0 ? null : { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.reduce((a, b) => Math.max(a, b)) },
    byKind: ledger.byKind,
    unexpectedByProblem: ledger.unexpectedByProblem,
    unexpectedExamples: ledger.unexpectedExamples,
    lostExamples: ledger.lostExamples,
  };
}

/** Fills in problems and warnings from the figures. */
export function judge(result: Omit<SoakResult, 'problems' | 'warnings'>): { problems: string[]; warnings: string[] } {
  const { requests: r, hub, memory, volunteers } = result;
  const problems: string[] = [];
  const warnings: string[] = [];
  if (r.lost > 0) problems.push(`${r.lost} request(s) lost: ${list(r.lostByReason)}`);
  if (r.inFlight > 0) problems.push(`${r.inFlight} request(s) still unsettled at the end`);
  if (r.unexpected > 0) problems.push(`${r.unexpected} unexpected reply(ies):\n    ${Object.entries(r.unexpectedByProblem).map(([p, n]) => `${n} × ${p}`).join('\n    ')}`);
  if (r.stray > 0) problems.push(`${r.stray} reply(ies) for no request the soak sent`);
  if (r.late > 0) problems.push(`${r.late} reply(ies) came after their request was given up as lost`);
  if (hub.exit === null || hub.exit.killed || hub.exit.code !== 0) {
    problems.push(`the hub did not exit 0 after SIGTERM (${hub.exit?.killed ? 'killed after the timeout' : `code ${hub.exit?.code}, signal ${hub.exit?.signal}`})`);
  }
  if (Object.keys(hub.logProblems).length > 0) warnings.push(`the hub logged warnings/errors:\n    ${Object.entries(hub.logProblems).map(([m, n]) => `${n} × ${m}`).join('\n    ')}`);
  if (memory.slopeMiBPerMin !== null && memory.slopeSpanS >= JUDGEABLE_SPAN_S && memory.slopeMiBPerMin > GROWTH_WARNING_MIB_PER_MIN) {
    warnings.push(`hub RSS still growing over the second half: +${memory.slopeMiBPerMin.toFixed(2)} MiB/min`);
  }
  if (volunteers.enabled) {
    if (volunteers.failedJoins > 0) warnings.push(`${volunteers.failedJoins} volunteer tab(s) failed to join: ${volunteers.events.filter((e) => e.action === 'join-failed').map((e) => e.detail).join('; ')}`);
    if (volunteers.joined > 0 && volunteers.served === 0) warnings.push('volunteer tabs joined but served no request');
    const troubled = volunteers.events.filter((e) => e.problems && e.problems.length > 0);
    if (troubled.length > 0) warnings.push(`volunteer tabs with console/page errors: ${troubled.map((e) => `${e.id ?? '?'} (${e.problems!.join(' | ')})`).join('; ')}`);
  }
  return { problems, warnings };
}

export function formatReport(result: SoakResult): string {
  const { requests: r, memory: m, volunteers: v, hub } = result;
  const c = result.config;
  const lines = [
    `soak: ${(result.loadS / 60).toFixed(1)} min of load on ${String(c.modelDir)} (${String(hub.ready.engine)}, ${String(hub.ready.workers)} worker(s), ${String(c.offload)}), ` +
      `${String(c.clients)} clients (${Number(c.clients) - Number(c.httpClients)} ZeroMQ, ${String(c.httpClients)} HTTP), ${Math.round(Number(c.badShare) * 100)}% bad input`,
    '',
    table([
      ['requests sent', String(r.sent)],
      ['answered ok', `${r.ok}${r.okLatencyMs ? `   (latency p50 ${num(r.okLatencyMs.p50, 0)} ms, p99 ${num(r.okLatencyMs.p99, 0)} ms, max ${num(r.okLatencyMs.max, 0)} ms)` : ''}`],
      ['answered with an error', `${r.errored}   ${list(r.errorsByCode)}`],
      ['lost', `${r.lost}${r.lost > 0 ? `   ${list(r.lostByReason)}` : ''}`],
      ['unexpected', String(r.unexpected)],
      ['late / stray replies', `${r.late} / ${r.stray}`],
      ['in flight at SIGTERM', Object.keys(r.atShutdown).length === 0 ? 'none' : list(r.atShutdown)],
      ['served by', list(r.servedBy)],
      ...(v.enabled
        ? [['volunteers', `joined ${v.joined}, left ${v.left} (${v.closedMidJob} closed mid-job), failed joins ${v.failedJoins}, cut short by the end ${v.cancelledJoins}, served ${v.served} request(s)`]]
        : [['volunteers', 'off (--no-volunteers)']]),
      ['hub RSS', `start ${mib(m.startMiB)}${m.startAtS === null ? '' : ` (at ${m.startAtS} s)`}, peak ${mib(m.peakMiB)}${m.peakAtS === null ? '' : ` (at ${m.peakAtS} s)`}, end ${mib(m.endMiB)}`],
      ['RSS medians', m.firstMinuteMedianMiB === null ? '- (the load is too short for two separate minutes after the warm-up)' : `first minute after warm-up ${mib(m.firstMinuteMedianMiB)}, last minute ${mib(m.lastMinuteMedianMiB)}`],
      ['RSS slope, 2nd half', slopeText(m)],
      ['hub after SIGTERM', hub.exit ? (hub.exit.killed ? `killed after ${num(hub.exit.ms, 0)} ms` : `exited ${hub.exit.code ?? hub.exit.signal} in ${num(hub.exit.ms, 0)} ms`) : 'unknown'],
    ]),
    '',
    kindTable(r.byKind),
  ];
  for (const warning of result.warnings) lines.push(`warning: ${warning}`);
  for (const problem of result.problems) lines.push(`FAIL: ${problem}`);
  for (const example of r.unexpectedExamples) lines.push(`  unexpected: ${JSON.stringify(example)}`);
  for (const example of r.lostExamples) lines.push(`  lost: ${JSON.stringify(example)}`);
  lines.push(result.problems.length === 0 ? 'PASS: no request lost, no unexpected reply, clean exit' : 'soak FAILED');
  return lines.join('\n');
}

export async function writeSoakResults(outDir: string, result: SoakResult): Promise<{ json: string; svg: string }> {
  await mkdir(outDir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const files = { json: path.join(outDir, `soak-${stamp}.json`), svg: path.join(outDir, `soak-${stamp}.svg`) };
  const json = JSON.stringify(result, (_key, value: unknown) => (typeof value === 'number' ? round(value, 3) : value), 2);
  await writeFile(files.json, json + '\n');
  const title = `resnet-hub soak: ${path.basename(String(result.config.modelDir))}, ${result.startedAt}`;
  await writeFile(files.svg, renderRssChart(result.samples, result.volunteers.events, { title, warmupS: Number(result.config.warmupS) }));
  return files;
}

/** Sent and every outcome per request kind: where an unexpected code or a loss came from. */
function kindTable(byKind: Record<string, { sent: number; outcomes: Record<string, number> }>): string {
  const rows = Object.entries(byKind)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, { sent, outcomes }]) => [kind, String(sent), list(outcomes)]);
  const widths = [Math.max(4, ...rows.map((row) => row[0].length)), Math.max(4, ...rows.map((row) => row[1].length))];
  return [['kind', 'sent', 'replies'], ...rows].map(([a, b, cText]) => `${a.padEnd(widths[0])}  ${b.padStart(widths[1])}  ${cText}`).join('\n');
}

function table(rows: string[][]): string {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

function list(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort(([, a], [, b]) => b - a);
  return entries.length === 0 ? '-' : entries.map(([key, n]) => `${key} ${n}`).join(', ');
}

function slopeText(m: MemorySummary): string {
  if (m.slopeMiBPerMin === null) return `- (${m.slopeSamples} samples)`;
  const text = `${m.slopeMiBPerMin >= 0 ? '+' : ''}${m.slopeMiBPerMin.toFixed(2)} MiB/min over ${m.slopeSamples} samples (${Math.round(m.slopeSpanS)} s)`;
  return m.slopeSpanS >= JUDGEABLE_SPAN_S ? text : `${text}: too short to judge`;
}

function num(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

function mib(value: number | null): string {
  return value === null ? '-' : `${value.toFixed(1)} MiB`;
}

/**
 * What a bench run found: the headline figures, the table printed at the end, and the files
 * written (a timestamped JSON, latest.json, latest.svg).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CeilingResult } from './ceiling.ts';
import type { CpuShare } from './cpu-share.ts';
import type { HubExit } from './hub.ts';
import type { StepResult } from './load-generator.ts';
import type { RssSummary } from '../kit/rss-sampler.ts';
import { formatThreadCpu } from '../kit/thread-cpu.ts';
import type { ThreadCpu } from '../kit/thread-cpu.ts';
import { round } from '../shared/stats.ts';
import { renderChart } from './svg-chart.ts';

export interface BenchConfig {
  engine: string;
  /** Absent in results older than int8. */
  precision?: string;
  modelDir: string;
  /** `--threads`: the ceiling's only thread count and each hub worker's (no solo mode); null: the hub's defaults. */
  threads: number | null;
  /** Thread counts the ceiling was measured at. */
  ceilingThreads: number[];
  hubArgs: string[];
  concurrency: number[];
  durationS: number;
  warmupS: number;
  replyTimeoutS: number;
  images: string[];
}

/** The best of the ceilings: each figure may come from a different thread count. */
export interface CeilingChoice {
  /** The most images/s over every (threads, batch) measured. */
  throughput: { threads: number; batch: number; imagesPerS: number } | null;
  /** The lowest batch-1 p50 over every thread count: the raw single-image latency. */
  singleImage: { threads: number; p50Ms: number } | null;
}

export interface Headline {
  /** What the ratios below compare against; null without a ceiling. */
  ceiling: CeilingChoice | null;
  saturation: { concurrency: number; throughput: number } | null;
  /** Best step's throughput over the best ceiling images/s (any threads, any batch). */
  saturationOverCeiling: number | null;
  /** p50 at C=1 minus the lowest raw single-image p50: what the server path adds. */
  c1OverheadMs: number | null;
  peakRssMiB: number | null;
  startupMs: number | null;
  lost: number;
  errored: number;
  mismatched: number;
}

/** A sweep step, the cores each party used during its measured window, and the hub's split by thread group. */
export type BenchStep = StepResult & { cpu: CpuShare | null; threadCpu?: ThreadCpu | null };

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  machine: { cpus: number; totalMemGiB: number; node: string; platform: string };
  config: BenchConfig;
  /** The thread count whose ceiling has the best throughput (null: not measured). */
  ceiling: CeilingResult | null;
  /** Every thread count measured, in order. */
  ceilings: CeilingResult[];
  hub: { startupMs: number | null; ready: Record<string, unknown> | null; exit: HubExit | null };
  steps: BenchStep[];
  memory: RssSummary | null;
  headline: Headline;
  /** Why the run failed (lost requests, an unclean hub exit, …); empty when it passed. */
  problems: string[];
  /** Worth knowing, not a failure (e.g. other processes took cores while measuring). */
  warnings: string[];
}

/**
 * The best each figure gets over every thread count (and batch size) measured; ties go to the
 * one measured first. Non-finite figures never win. Null when nothing was measured.
 */
export function selectCeiling(ceilings: readonly CeilingResult[]): CeilingChoice | null {
  if (ceilings.length === 0) return null;
  let throughput: CeilingChoice['throughput'] = null;
  let singleImage: CeilingChoice['singleImage'] = null;
  for (const ceiling of ceilings) {
    for (const { batch, imagesPerS } of ceiling.batches) {
      if (Number.isFinite(imagesPerS) && (throughput === null || imagesPerS > throughput.imagesPerS)) {
        throughput = { threads: ceiling.threads, batch, imagesPerS };
      }
    }
    const p50Ms = ceiling.singleImage.p50;
    if (Number.isFinite(p50Ms) && (singleImage === null || p50Ms < singleImage.p50Ms)) singleImage = { threads: ceiling.threads, p50Ms };
  }
  return { throughput, singleImage };
}

/** The measured ceiling that holds the best throughput: the one JSON's `ceiling` key shows. */
export function bestCeiling(ceilings: readonly CeilingResult[]): CeilingResult | null {
  const best = selectCeiling(ceilings)?.throughput;
  return best ? (ceilings.find((ceiling) => ceiling.threads === best.threads) ?? null) : null;
}

export function computeHeadline(
  ceilings: readonly CeilingResult[],
  steps: readonly StepResult[],
  memory: RssSummary | null,
  startupMs: number | null,
): Headline {
  const best = steps.reduce<StepResult | null>((a, b) => (a === null || b.throughput > a.throughput ? b : a), null);
  const c1 = steps.find((step) => step.concurrency === 1);
  const sum = (pick: (step: StepResult) => number) => steps.reduce((total, step) => total + pick(step), 0);
  const c1P50 = c1?.latencyMs.p50;
  const ceiling = selectCeiling(ceilings);
  const raw = ceiling?.singleImage;
  return {
    ceiling,
    saturation: best ? { concurrency: best.concurrency, throughput: best.throughput } : null,
    saturationOverCeiling: best && ceiling?.throughput ? best.throughput / ceiling.throughput.imagesPerS : null,
    c1OverheadMs: raw && c1P50 !== undefined && Number.isFinite(c1P50) ? c1P50 - raw.p50Ms : null,
    peakRssMiB: memory?.peakMiB ?? null,
    startupMs,
    lost: sum((step) => step.measured.lost + step.warmup.lost),
    errored: sum((step) => step.measured.errored + step.warmup.errored),
    mismatched: sum((step) => step.mismatched),
  };
}

const COLUMNS = ['', 'sent', 'ok', 'err', 'lost', 'img/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'queue', 'prep', 'infer', 'other cpu'] as const;

/** One row per ceiling thread count and batch size (runs of one infer() call) and one per concurrency step. */
export function formatTable(result: BenchResult): string {
  const rows: string[][] = [];
  for (const ceiling of result.ceilings) {
    for (const batch of ceiling.batches) {
      const ms = batch.msPerBatch;
      const cells = [num(batch.imagesPerS, 2), num(ms.p50), num(ms.p90), num(ms.p99), num(ms.max)];
      rows.push([`ceiling t=${ceiling.threads} b=${batch.batch}`, `${ms.count} runs`, '', '', '', ...cells, '', '', '', cores(batch.cpu)]);
    }
  }
  for (const step of result.steps) {
    const { measured: m, latencyMs: l, serverMs: s } = step;
    rows.push([
      `hub C=${step.concurrency}`,
      String(m.sent),
      String(m.answered),
      m.errored === 0 ? '0' : `${m.errored} (${Object.entries(m.errors).map(([code, n]) => `${code}:${n}`).join(' ')})`,
      String(m.lost),
      num(step.throughput, 2),
      num(l.p50),
      num(l.p90),
      num(l.p99),
      num(l.max),
      num(s.queue),
      num(s.preprocess),
      num(s.inference),
      cores(step.cpu),
    ]);
  }
  const widths = COLUMNS.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const note =
    'ceiling rows: one infer() call on the batch, in this process. hub rows: client-side latency; queue/prep/infer: the hub\'s means (ms).\n' +
    'other cpu: cores used by processes other than the hub and the bench while measuring.';
  return [line(COLUMNS), ...rows.map(line), note].join('\n');
}

export function formatHeadline(result: BenchResult): string {
  const { headline: h, ceilings, hub, memory } = result;
  const lines: string[] = [];
  const workers = hubParallelism(hub.ready) ?? 'workers unknown';
  const best = h.ceiling?.throughput;
  const raw = h.ceiling?.singleImage;
  if (best) {
    const tried = `best of t=${ceilings.map((c) => c.threads).join(',')} × b=${[...new Set(ceilings.flatMap((c) => c.batches.map((b) => b.batch)))].join(',')}`;
    lines.push(`ceiling: ${num(best.imagesPerS, 2)} img/s at t=${best.threads} b=${best.batch} (${ceilings[0].engine} ${ceilings[0].precision ?? 'fp32'}, one engine in this process; ${tried})`);
  }
  if (raw) lines.push(`raw single image: p50 ${num(raw.p50Ms)} ms at t=${raw.threads}`);
  if (h.saturation) {
    const ratio = h.saturationOverCeiling === null ? '' : ` = ${num(h.saturationOverCeiling, 2)} × ceiling`;
    lines.push(`saturation: ${num(h.saturation.throughput, 2)} img/s at C=${h.saturation.concurrency}${ratio} (hub: ${workers})`);
    const split = result.steps.find((step) => step.concurrency === h.saturation?.concurrency)?.threadCpu;
    if (split) lines.push(`hub cores at saturation, by thread group: ${formatThreadCpu(split)}`);
  }
  if (h.c1OverheadMs !== null && raw) {
    lines.push(`C=1 p50 minus raw single-image p50 (t=${raw.threads}): ${h.c1OverheadMs >= 0 ? '+' : ''}${num(h.c1OverheadMs)} ms`);
  }
  if (memory) lines.push(`hub RSS: start ${num(memory.startMiB ?? Number.NaN, 0)} MiB, peak ${num(memory.peakMiB ?? Number.NaN, 0)} MiB (${memory.samples} samples)`);
  if (h.startupMs !== null) lines.push(`hub startup (spawn to ready): ${num(h.startupMs / 1000, 2)} s`);
  lines.push(`lost: ${h.lost}, errored: ${h.errored}${h.mismatched > 0 ? `, mismatched replies: ${h.mismatched}` : ''}`);
  if (hub.exit) {
    const how = hub.exit.killed ? 'did not exit in time, killed' : `exited ${hub.exit.code ?? `by ${hub.exit.signal}`}`;
    lines.push(`hub after SIGTERM: ${how} in ${num(hub.exit.ms, 0)} ms`);
  }
  for (const warning of result.warnings) lines.push(`warning: ${warning}`);
  for (const problem of result.problems) lines.push(`FAIL: ${problem}`);
  return lines.join('\n');
}

export interface WrittenFiles {
  json: string;
  latestJson: string;
  svg: string;
}

export async function writeResults(outDir: string, result: BenchResult): Promise<WrittenFiles> {
  await mkdir(outDir, { recursive: true });
  const stamp = result.startedAt.replace(/[:.]/g, '-');
  const files = {
    json: path.join(outDir, `bench-${stamp}.json`),
    latestJson: path.join(outDir, 'latest.json'),
    svg: path.join(outDir, 'latest.svg'),
  };
  const json = toJson(result);
  await writeFile(files.json, json);
  await writeFile(files.latestJson, json);
  await writeFile(files.svg, chartOf(result));
  return files;
}

/** Three decimals are plenty for milliseconds and images/s, and keep the file readable; NaN becomes null. */
export function toJson(result: BenchResult): string {
  return JSON.stringify(result, (_key, value: unknown) => (typeof value === 'number' ? round(value, 3) : value), 2) + '\n';
}

export function chartOf(result: BenchResult): string {
  const parallelism = hubParallelism(result.hub.ready, true);
  const hubInfo = parallelism ? `, ${parallelism}` : '';
  return renderChart(
    result.steps.map((step) => ({
      concurrency: step.concurrency,
      p50Ms: round(step.latencyMs.p50, 3),
      p99Ms: round(step.latencyMs.p99, 3),
      throughput: round(step.throughput, 3),
    })),
    {
      title: `resnet-hub bench: ${result.config.engine}${hubInfo}, ${result.startedAt}`,
      ceilingImagesPerS: result.headline.ceiling?.throughput?.imagesPerS ?? null,
    },
  );
}

/** The hub's parallelism from its ready line: workers × threads, and the solo batches' threads if any. */
export function hubParallelism(ready: Record<string, unknown> | null, short = false): string | null {
  if (ready?.workers === undefined) return null;
  const [workers, threads, solo] = [ready.workers, ready.threads_per_worker ?? '?', ready.solo_threads].map((v) => (v === undefined ? v : String(v)));
  if (short) return `${workers}×${threads} threads${solo === undefined ? '' : `, solo ${solo}`}`;
  return `${workers} worker(s) × ${threads} thread(s), ${solo === undefined ? 'no solo mode' : `solo batches ${solo} thread(s)`}`;
}

function cores(share: CpuShare | null): string {
  return share ? share.other.toFixed(2) : '-';
}

function num(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

/**
 * What `--compare-precision` found: the ratios between the int8 and fp32 runs, each hub
 * against its own raw ceiling, where each hub's time (its queue / preprocess / inference
 * means) and CPU (cores by thread group) went at every step, the tables printed, and the JSON.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import path from 'node:path';
import type { CeilingResult } from './ceiling.ts';
import type { BenchOptions } from './cli.ts';
import type { HubExit } from './hub.ts';
import { lscpuModelName } from './machine.ts';
import { hubParallelism } from './report.ts';
import type { BenchStep, Headline } from './report.ts';
import type { RssSummary } from '../kit/rss-sampler.ts';
import { THREAD_GROUPS } from '../kit/thread-cpu.ts';
import { round } from '../shared/stats.ts';
import type { Precision } from '../shared/protocol/classify.ts';

export interface PrecisionRun {
  precision: Precision;
  hubArgs: string[];
  ceilings: CeilingResult[];
  hub: { startupMs: number; ready: Record<string, unknown>; exit: HubExit; stderrTail: string };
  steps: BenchStep[];
  memory: RssSummary | null;
  headline: Headline;
}

/**
 * Issue 12's acceptance: the first two on a processor with integer dot-product units
 * (AVX512-VNNI or AMX), the last on every processor.
 */
export const TARGETS = { int8OverFp32Throughput: 2.2, int8OverFp32C1P50: 0.5, hubOverOwnCeiling: 0.8 } as const;

export interface Check {
  what: string;
  value: number | null;
  /** `≥ 2.2`, `≤ 0.5`. */
  target: string;
  /** null: no target applies on this processor, or nothing to judge. */
  met: boolean | null;
}

export interface PrecisionComparison {
  processor: string;
  /** AVX512-VNNI or AMX: the throughput and latency targets apply. */
  int8Units: boolean;
  /** int8 hub's best throughput over the fp32 hub's. */
  int8OverFp32Throughput: number | null;
  /** int8 hub's p50 at concurrency 1 over the fp32 hub's. */
  int8OverFp32C1P50: number | null;
  /** Each hub's best throughput over its own precision's best raw ceiling. */
  hubOverOwnCeiling: Record<Precision, number | null>;
  checks: Check[];
}

/** Other processes using more than this many cores while measuring make the figures suspect. */
const BUSY_MACHINE_CORES = 0.25;

export function comparePrecisions(fp32: PrecisionRun, int8: PrecisionRun, processor = lscpuModelName()): PrecisionComparison {
  const int8Units = /\b(avx512_vnni|amx_int8)\b/.test(processor);
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) ? a / b : null);
  const c1 = (run: PrecisionRun) => run.steps.find((step) => step.concurrency === 1)?.latencyMs.p50;
  const int8OverFp32Throughput = ratio(int8.headline.saturation?.throughput, fp32.headline.saturation?.throughput);
  const int8OverFp32C1P50 = ratio(c1(int8), c1(fp32));
  const hubOverOwnCeiling = { fp32: fp32.headline.saturationOverCeiling, int8: int8.headline.saturationOverCeiling };
  const judge = (value: number | null, atLeast: boolean, target: number, applies: boolean): boolean | null =>
    value === null || !applies ? null : atLeast ? value >= target : value <= target;
  const checks: Check[] = [
    {
      what: 'int8 hub / fp32 hub, throughput at saturation',
      value: int8OverFp32Throughput,
      target: `≥ ${TARGETS.int8OverFp32Throughput}`,
      met: judge(int8OverFp32Throughput, true, TARGETS.int8OverFp32Throughput, int8Units),
    },
    {
      what: 'int8 hub / fp32 hub, p50 at C=1',
      value: int8OverFp32C1P50,
      target: `≤ ${TARGETS.int8OverFp32C1P50}`,
      met: judge(int8OverFp32C1P50, false, TARGETS.int8OverFp32C1P50, int8Units),
    },
    ...(['fp32', 'int8'] as const).map((precision) => ({
      what: `${precision} hub / ${precision} raw ceiling, throughput`,
      value: hubOverOwnCeiling[precision],
      target: `≥ ${TARGETS.hubOverOwnCeiling}`,
      met: judge(hubOverOwnCeiling[precision], true, TARGETS.hubOverOwnCeiling, true),
    })),
  ];
  return { processor, int8Units, int8OverFp32Throughput, int8OverFp32C1P50, hubOverOwnCeiling, checks };
}

/** Why a run fails the bench: lost or mismatched replies, or a hub that did not stop cleanly. */
export function runProblems(run: PrecisionRun, replyTimeoutS: number): string[] {
  const { lost, mismatched } = run.headline;
  const { exit } = run.hub;
  return [
    ...(lost > 0 ? [`${run.precision}: ${lost} request(s) lost (no reply within ${replyTimeoutS} s)`] : []),
    ...(mismatched > 0 ? [`${run.precision}: ${mismatched} reply(ies) did not match the request waited for`] : []),
    ...(exit.killed || exit.code !== 0
      ? [`${run.precision}: the hub did not exit 0 after SIGTERM (${exit.killed ? 'killed after timeout' : `code ${exit.code}, signal ${exit.signal}`})\n${run.hub.stderrTail}`]
      : []),
  ];
}

export function busyWarnings(runs: readonly PrecisionRun[]): string[] {
  const shares = runs.flatMap((run) => [...run.ceilings.flatMap((c) => c.batches), ...run.steps].map((measured) => measured.cpu?.other ?? 0));
  const busiest = Math.max(0, ...shares);
  return busiest > BUSY_MACHINE_CORES
    ? [`other processes used up to ${busiest.toFixed(2)} of ${availableParallelism()} cores while measuring: the figures understate this machine`]
    : [];
}

export function formatComparison(runs: readonly PrecisionRun[], comparison: PrecisionComparison, problems: readonly string[]): string {
  const ceilings = table(
    ['raw ceiling', 'best img/s', 'at batch', 'batch-1 p50 ms', 'batch-1 p99 ms'],
    runs.flatMap((run) =>
      run.ceilings.map((c) => [`${run.precision} t=${c.threads}`, num(c.best.imagesPerS, 2), String(c.best.batch), num(c.singleImage.p50), num(c.singleImage.p99)]),
    ),
  );
  const [fp32, int8] = runs;
  const sweep = table(
    ['hub', 'fp32 img/s', 'int8 img/s', 'int8/fp32', 'fp32 p50', 'int8 p50', 'int8/fp32', 'fp32 p99', 'int8 p99', 'lost'],
    fp32.steps.map((a, i) => {
      const b = int8.steps[i];
      return [
        `C=${a.concurrency}`,
        num(a.throughput, 2),
        num(b.throughput, 2),
        num(b.throughput / a.throughput, 2),
        num(a.latencyMs.p50),
        num(b.latencyMs.p50),
        num(b.latencyMs.p50 / a.latencyMs.p50, 2),
        num(a.latencyMs.p99),
        num(b.latencyMs.p99),
        String(a.measured.lost + a.warmup.lost + b.measured.lost + b.warmup.lost),
      ];
    }),
  );
  const split = table(
    ['where the time goes', 'queue ms', 'prep ms', 'infer ms', ...THREAD_GROUPS, 'hub cores', 'others'],
    runs.flatMap((run) =>
      run.steps.map((step) => {
        const saturated = run.headline.saturation?.concurrency === step.concurrency ? ' *' : '';
        const cores = THREAD_GROUPS.map((group) => (step.threadCpu ? num(step.threadCpu[group], 2) : '-'));
        return [
          `${run.precision} C=${step.concurrency}${saturated}`,
          num(step.serverMs.queue),
          num(step.serverMs.preprocess),
          num(step.serverMs.inference),
          ...cores,
          step.cpu ? num(step.cpu.hub, 2) : '-',
          step.cpu ? num(step.cpu.other, 2) : '-',
        ];
      }),
    ),
  );
  const lines = [
    ceilings,
    '',
    sweep,
    '(p50/p99: client-side latency, ms)',
    '',
    split,
    "(queue/prep/infer: the hub's means per request, ms. main … libuv+v8: the hub's cores by thread group over the measured window;",
    ' libuv+v8 is where sharp decodes, and V8\'s GC. hub cores: the whole hub; others: other processes. *: saturation)',
    '',
    `processor: ${comparison.processor}`,
    ...runs.map((run) => {
      const h = run.headline;
      const ceiling = h.ceiling?.throughput;
      return (
        `${run.precision}: hub ${hubParallelism(run.hub.ready) ?? 'workers unknown'}, preprocess workers ${String(run.hub.ready.preprocess_workers ?? '?')} (JPEG: ${String(run.hub.ready.jpeg_decoder ?? '?')}); ` +
        `saturation ${num(h.saturation?.throughput ?? Number.NaN, 2)} img/s at C=${h.saturation?.concurrency ?? '-'}` +
        (ceiling ? `, raw ceiling ${num(ceiling.imagesPerS, 2)} img/s (t=${ceiling.threads} b=${ceiling.batch})` : '') +
        `; start-up ${num(run.hub.startupMs / 1000, 2)} s; peak RSS ${num(run.memory?.peakMiB ?? Number.NaN, 0)} MiB; lost ${h.lost}, errored ${h.errored}`
      );
    }),
    ...comparison.checks.map(
      (check) =>
        `${check.what}: ${check.value === null ? '-' : `${num(check.value, 3)}×`} (target ${check.target}${
          check.met === null ? (check.value === null ? ', not measured' : ', not applicable: no AVX512-VNNI or AMX') : check.met ? ', met' : ', NOT met'
        })`,
    ),
    ...busyWarnings(runs).map((warning) => `warning: ${warning}`),
    ...problems.map((problem) => `FAIL: ${problem}`),
  ];
  return lines.join('\n');
}

export interface ComparisonFile {
  startedAt: string;
  finishedAt: string;
  runs: PrecisionRun[];
  comparison: PrecisionComparison;
  problems: string[];
}

/** bench-results/compare-precision-<time>.json; returns its path as shown to the user. */
export async function writeComparison(options: BenchOptions, data: ComparisonFile): Promise<string> {
  await mkdir(options.outDir, { recursive: true });
  const file = path.join(options.outDir, `compare-precision-${data.startedAt.replace(/[:.]/g, '-')}.json`);
  const body = {
    ...data,
    machine: { cpus: availableParallelism(), totalMemGiB: totalmem() / 2 ** 30, node: process.version, platform: process.platform, processor: data.comparison.processor },
    config: { ...options, images: options.images.map((image) => path.relative(process.cwd(), image) || image) },
    warnings: busyWarnings(data.runs),
  };
  // Three decimals are plenty for milliseconds, cores and images/s; NaN becomes null.
  await writeFile(file, `${JSON.stringify(body, (_key, value: unknown) => (typeof value === 'number' ? round(value, 3) : value), 2)}\n`);
  return path.relative(process.cwd(), file) || file;
}

function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

function num(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-';
}

/**
 * `npm run bench -- --compare-precision`: fp32, then int8, in one run and on the same model
 * store, one after the other so nothing overlaps: for each, the raw engine's ceiling at each
 * thread count, then a hub at that precision (otherwise the same flags) swept over the same
 * concurrencies. Then the ratios between them and where each hub's time and CPU went
 * (compare-precision-report.ts). Exits non-zero when a request was lost, a reply did not match
 * its request, or a hub did not exit 0; the ratios' targets are reported, not enforced, since
 * they hold only on some processors.
 */
import { measureCeiling } from './ceiling.ts';
import type { CeilingResult } from './ceiling.ts';
import { withPrecision } from './cli.ts';
import type { BenchOptions } from './cli.ts';
import { comparePrecisions, formatComparison, runProblems, writeComparison } from './compare-precision-report.ts';
import type { PrecisionRun } from './compare-precision-report.ts';
import { spawnHub } from './hub.ts';
import type { SpawnedHub } from './hub.ts';
import { prepareModel } from './model.ts';
import { createProgress } from './progress.ts';
import { stopHubOnInterrupt } from './interrupt.ts';
import type { Progress } from './progress.ts';
import { computeHeadline } from './report.ts';
import { runSweep } from './sweep.ts';
import type { Precision } from '../shared/protocol/classify.ts';

const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];
const STOP_TIMEOUT_MS = 30_000;

export async function benchComparePrecision(options: BenchOptions, payloads: readonly string[]): Promise<number> {
  const startedAt = new Date().toISOString();
  const ceilingThreads = options.skipCeiling ? [] : options.ceilingThreads;
  const stepsPerRun = ceilingThreads.length + 1 + options.concurrency.length + 1;
  const progress = createProgress(1 + PRECISIONS.length * stepsPerRun);

  let hub: SpawnedHub | undefined;
  const releaseInterrupt = stopHubOnInterrupt(progress, () => hub, STOP_TIMEOUT_MS);

  const runs: PrecisionRun[] = [];
  try {
    // Both models first: a quantization (tens of seconds) is a cost of the store, not of either run.
    progress.begin('preparing the model store');
    for (const precision of PRECISIONS) await prepareModel(options.engine, options.modelDir, precision, (text) => progress.detail(text));
    for (const precision of PRECISIONS) {
      const ceilings = await measureCeilings(options, precision, ceilingThreads, progress);
      progress.begin(`${precision} hub start-up`);
      progress.detail('waiting for its ready line');
      hub = await spawnHub({ args: withPrecision(options.hubArgs, precision), timeoutMs: options.startupTimeoutS * 1000 });
      const { steps, memory } = await runSweep(hub, options, payloads, progress, `${precision} `);
      progress.begin(`${precision} hub stopping`);
      const exit = await hub.stop(STOP_TIMEOUT_MS);
      const spawned = hub;
      hub = undefined;
      runs.push({
        precision,
        hubArgs: withPrecision(options.hubArgs, precision),
        ceilings,
        hub: { startupMs: spawned.startupMs, ready: spawned.ready, exit, stderrTail: exit.code === 0 && !exit.killed ? '' : spawned.stderrTail() },
        steps,
        memory,
        headline: computeHeadline(ceilings, steps, memory, spawned.startupMs),
      });
    }
  } catch (error) {
    progress.stop();
    if (hub) await hub.stop(STOP_TIMEOUT_MS);
    throw error;
  } finally {
    releaseInterrupt();
  }
  progress.stop();

  const [fp32, int8] = runs;
  const comparison = comparePrecisions(fp32, int8);
  const problems = runs.flatMap((run) => runProblems(run, options.replyTimeoutS));
  const file = await writeComparison(options, { startedAt, finishedAt: new Date().toISOString(), runs, comparison, problems });
  process.stdout.write(`${formatComparison(runs, comparison, problems)}\nresults: ${file}\n`);
  return problems.length === 0 ? 0 : 1;
}

/** One engine at a time, disposed before the next loads, so no two compete for the cores. */
async function measureCeilings(options: BenchOptions, precision: Precision, threads: readonly number[], progress: Progress): Promise<CeilingResult[]> {
  const ceilings: CeilingResult[] = [];
  for (const t of threads) {
    progress.begin(`${precision} ceiling t=${t}`);
    ceilings.push(
      await measureCeiling({
        engine: options.engine,
        precision,
        modelDir: options.modelDir,
        threads: t,
        batchSizes: options.ceilingBatchSizes,
        budgetMs: options.ceilingS * 1000,
        onPhase: (label) => progress.detail(label),
      }),
    );
  }
  return ceilings;
}

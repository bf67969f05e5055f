/**
 * `npm run bench`: measures, one after another so nothing overlaps, (1) the raw engine's
 * ceiling in this process at each thread count, (2) the hub's start-up, (3) a closed-loop ZeroMQ sweep over
 * concurrency, then reports, writes JSON and SVG, and stops the hub. Exits non-zero when a
 * request was lost, a reply did not match its request, or the hub did not exit 0.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import path from 'node:path';
import { measureCeiling } from './ceiling.ts';
import type { CeilingResult } from './ceiling.ts';
import { parseBenchOptions } from './cli.ts';
import type { BenchOptions } from './cli.ts';
import { benchCompareFleet, benchEndpoints } from './fleet.ts';
import { spawnHub } from './hub.ts';
import type { HubExit, SpawnedHub } from './hub.ts';
import { benchCompareFronts } from './compare-fronts.ts';
import { benchComparePrecision } from './compare-precision.ts';
import { prepareModel } from './model.ts';
import { createProgress } from './progress.ts';
import { stopHubOnInterrupt } from './interrupt.ts';
import { bestCeiling, computeHeadline, formatHeadline, formatTable, writeResults } from './report.ts';
import type { BenchResult, BenchStep } from './report.ts';
import type { RssSummary } from '../kit/rss-sampler.ts';
import { runSweep } from './sweep.ts';

/** Other processes using more than this many cores while measuring make the figures suspect. */
const BUSY_MACHINE_CORES = 0.25;
/** The hub's default grace period plus room to close sockets and workers. */
const STOP_TIMEOUT_MS = 30_000;

async function main(): Promise<number> {
  const options = parseBenchOptions(process.argv);
  const payloads = await Promise.all(options.images.map(async (file) => (await readFile(file)).toString('base64')));
  if (options.endpoints) return benchEndpoints(options, payloads, createProgress(options.concurrency.length));
  if (options.compareFleet) {
    await prepareModel(options.engine, options.modelDir, options.precision);
    return benchCompareFleet(options, payloads, createProgress(2 * options.concurrency.length + 2));
  }
  if (options.comparePrecision) return benchComparePrecision(options, payloads);
  if (options.compareFronts) return benchCompareFronts(options, await Promise.all(options.images.map((file) => readFile(file))));
  const startedAt = new Date().toISOString();
  const ceilingSteps = options.skipCeiling ? [] : options.ceilingThreads;
  const progress = createProgress(ceilingSteps.length + 1 + options.concurrency.length + 1);

  let hub: SpawnedHub | undefined;
  stopHubOnInterrupt(progress, () => hub, STOP_TIMEOUT_MS);

  const ceilings: CeilingResult[] = [];
  let steps: BenchStep[] = [];
  let memory: RssSummary | null = null;
  let exit: HubExit | null = null;
  try {
    progress.begin(ceilingSteps.length > 0 ? `ceiling t=${ceilingSteps[0]}` : 'hub start-up');
    // An ONNX export is a one-off cost of the store, neither the engine's nor the hub's start-up.
    progress.detail('preparing the model store');
    await prepareModel(options.engine, options.modelDir, options.precision, (text) => progress.detail(text));
    // One engine at a time, disposed before the next loads, so no two compete for the cores.
    for (const [index, threads] of ceilingSteps.entries()) {
      if (index > 0) progress.begin(`ceiling t=${threads}`);
      ceilings.push(
        await measureCeiling({
          engine: options.engine,
          precision: options.precision,
          modelDir: options.modelDir,
          threads,
          batchSizes: options.ceilingBatchSizes,
          budgetMs: options.ceilingS * 1000,
          onPhase: (label) => progress.detail(label),
        }),
      );
    }
    if (ceilingSteps.length > 0) progress.begin('hub start-up');

    progress.detail('waiting for its ready line');
    hub = await spawnHub({ args: options.hubArgs, timeoutMs: options.startupTimeoutS * 1000 });
    ({ steps, memory } = await runSweep(hub, options, payloads, progress));
    progress.begin('stopping the hub');
    exit = await hub.stop(STOP_TIMEOUT_MS);
  } catch (error) {
    progress.stop();
    if (hub) await hub.stop(STOP_TIMEOUT_MS);
    throw error;
  }
  progress.stop();

  const result = assemble(options, startedAt, ceilings, hub, steps, memory, exit);
  const files = await writeResults(options.outDir, result);
  const shown = (file: string) => path.relative(process.cwd(), file) || file;
  process.stdout.write(
    `${formatTable(result)}\n\n${formatHeadline(result)}\n` +
      `results: ${shown(files.json)}, ${shown(files.latestJson)}, ${shown(files.svg)}\n`,
  );
  return result.problems.length === 0 ? 0 : 1;
}

function assemble(
  options: BenchOptions,
  startedAt: string,
  ceilings: CeilingResult[],
  hub: SpawnedHub,
  steps: BenchStep[],
  memory: RssSummary | null,
  exit: HubExit | null,
): BenchResult {
  const headline = computeHeadline(ceilings, steps, memory, hub.startupMs);
  const problems: string[] = [];
  if (headline.lost > 0) problems.push(`${headline.lost} request(s) lost (no reply within ${options.replyTimeoutS} s)`);
  if (headline.mismatched > 0) problems.push(`${headline.mismatched} reply(ies) did not match the request waited for`);
  if (exit === null || exit.killed || exit.code !== 0) {
    problems.push(`the hub did not exit 0 after SIGTERM (${exit?.killed ? 'killed after timeout' : `code ${exit?.code}, signal ${exit?.signal}`})\n${hub.stderrTail()}`);
  }
  const warnings: string[] = [];
  // Only --threads promises a like-for-like comparison; by default the ceiling is the machine's best.
  const hubThreads = hub.ready.threads_per_worker;
  if (options.threads !== null && ceilings.length > 0 && hubThreads !== options.threads) {
    warnings.push(`--threads ${options.threads}, but the hub's workers use ${String(hubThreads)} thread(s): the ratio compares unlike things`);
  }
  if (options.threads !== null && hub.ready.solo_threads !== undefined) {
    warnings.push(`--threads ${options.threads}, but the hub runs solo batches with ${String(hub.ready.solo_threads)} thread(s)`);
  }
  const shares = [...ceilings.flatMap((ceiling) => ceiling.batches), ...steps].map((measured) => measured.cpu?.other ?? 0);
  const busiest = Math.max(0, ...shares);
  if (busiest > BUSY_MACHINE_CORES) {
    warnings.push(`other processes used up to ${busiest.toFixed(2)} of ${availableParallelism()} cores while measuring: the figures understate this machine`);
  }
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: { cpus: availableParallelism(), totalMemGiB: totalmem() / 2 ** 30, node: process.version, platform: process.platform },
    config: {
      engine: options.engine,
      precision: options.precision,
      modelDir: path.relative(process.cwd(), options.modelDir) || options.modelDir,
      threads: options.threads,
      ceilingThreads: options.skipCeiling ? [] : options.ceilingThreads,
      hubArgs: options.hubArgs,
      concurrency: options.concurrency,
      durationS: options.durationS,
      warmupS: options.warmupS,
      replyTimeoutS: options.replyTimeoutS,
      images: options.images.map((file) => path.relative(process.cwd(), file) || file),
    },
    ceiling: bestCeiling(ceilings),
    ceilings,
    hub: { startupMs: hub.startupMs, ready: hub.ready, exit },
    steps,
    memory,
    headline,
    problems,
    warnings,
  };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

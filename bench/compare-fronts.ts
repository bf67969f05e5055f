/**
 * `npm run bench -- --compare-fronts`: every way into one hub side by side in one run (ZeroMQ,
 * HTTP, Open Inference REST and gRPC; front-drivers.ts), with the same images and the same
 * closed-loop clients. Each concurrency above 1 is measured in rounds, the fronts in a rotated
 * order in each; at 1 client the fronts take turns request by request. Either way a drift of the
 * machine over the run falls on all of them alike, which matters for differences of a
 * millisecond in a p50 of tens. Reported against
 * ZeroMQ, the seed's protocol and the baseline: throughput as a ratio, latency as the p50's
 * difference in milliseconds. Exits non-zero when a request was lost or the hub did not exit 0;
 * the ratios' targets are reported, not enforced.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { summarize } from '../shared/stats.ts';
import type { Summary } from '../shared/stats.ts';
import type { BenchOptions } from './cli.ts';
import { FRONTS, openFront } from './front-drivers.ts';
import type { Front, FrontAddresses, FrontDriver } from './front-drivers.ts';
import { spawnHub } from './hub.ts';
import type { SpawnedHub } from './hub.ts';
import { stopHubOnInterrupt } from './interrupt.ts';
import { lscpuModelName } from './machine.ts';
import { prepareModel } from './model.ts';
import { createProgress } from './progress.ts';

const ROUNDS = 2;
const STOP_TIMEOUT_MS = 30_000;
/** The targets: gRPC throughput at 8 clients against ZeroMQ's, and its p50 overhead at 1 client. */
const TARGET_THROUGHPUT_RATIO = 0.9;
const TARGET_P50_OVERHEAD_MS = 1;

interface FrontStep {
  front: Front;
  concurrency: number;
  seconds: number;
  results: number;
  errors: Record<string, number>;
  lost: number;
  latencyMs: number[];
}

export interface FrontResult {
  front: Front;
  concurrency: number;
  throughput: number;
  latencyMs: Summary;
  errors: Record<string, number>;
  lost: number;
  /** Against ZeroMQ at the same concurrency. */
  throughputRatio: number;
  p50OverheadMs: number;
}

export async function benchCompareFronts(options: BenchOptions, images: readonly Buffer[]): Promise<number> {
  const startedAt = new Date().toISOString();
  const busy = options.concurrency.filter((concurrency) => concurrency > 1);
  const progress = createProgress(2 + ROUNDS * busy.length * FRONTS.length + (busy.length < options.concurrency.length ? 1 : 0));
  let hub: SpawnedHub | undefined;
  const releaseInterrupt = stopHubOnInterrupt(progress, () => hub, STOP_TIMEOUT_MS);
  const steps: FrontStep[] = [];
  let exitCode: number | null = null;
  try {
    progress.begin('hub start-up');
    await prepareModel(options.engine, options.modelDir, options.precision, (text) => progress.detail(text));
    hub = await spawnHub({ args: options.hubArgs, timeoutMs: options.startupTimeoutS * 1000 });
    const at: FrontAddresses = { zmq: hub.zmq, http: String(hub.ready.http), grpc: String(hub.ready.grpc) };
    if (busy.length < options.concurrency.length) {
      progress.begin('C=1, the fronts taking turns');
      const drivers = await Promise.all(FRONTS.map((front) => openFront(front, at, images, options.replyTimeoutS * 1000)));
      try {
        steps.push(...(await measureTakingTurns(drivers, images.length, { warmupS: options.warmupS, durationS: ROUNDS * FRONTS.length * options.durationS }, (phase) => progress.detail(phase))));
      } finally {
        await Promise.all(drivers.map((driver) => driver.close()));
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const concurrency of busy) {
        for (let i = 0; i < FRONTS.length; i++) {
          const front = FRONTS[(i + round + concurrency) % FRONTS.length];
          progress.begin(`round ${round + 1} C=${concurrency} ${front}`);
          const driver = await openFront(front, at, images, options.replyTimeoutS * 1000);
          try {
            steps.push(await measure(driver, front, images.length, concurrency, options, (phase) => progress.detail(phase)));
          } finally {
            await driver.close();
          }
        }
      }
    }
    progress.begin('stopping the hub');
    const exit = await hub.stop(STOP_TIMEOUT_MS);
    exitCode = exit.killed ? null : exit.code;
    hub = undefined;
  } catch (error) {
    progress.stop();
    if (hub) await hub.stop(STOP_TIMEOUT_MS);
    throw error;
  } finally {
    releaseInterrupt();
  }
  progress.stop();

  const results = combine(steps, options.concurrency);
  const processor = lscpuModelName();
  const file = path.join(options.outDir, `bench-fronts-${startedAt.replace(/[:.]/g, '-')}.json`);
  await mkdir(options.outDir, { recursive: true });
  await writeFile(file, `${JSON.stringify({ startedAt, finishedAt: new Date().toISOString(), processor, hubArgs: options.hubArgs, rounds: ROUNDS, results, hubExit: exitCode }, null, 2)}\n`);
  process.stdout.write(`${formatFronts(results, processor)}\nresults: ${file}\n`);
  const lost = results.reduce((sum, result) => sum + result.lost, 0);
  if (lost > 0) process.stdout.write(`${lost} requests lost\n`);
  if (exitCode !== 0) process.stdout.write(`the hub exited ${exitCode} on SIGTERM (expected 0)\n`);
  return lost === 0 && exitCode === 0 ? 0 : 1;
}

/** Closed loop: `concurrency` callers each send the next image once the last is answered. */
async function measure(
  driver: FrontDriver,
  front: Front,
  imageCount: number,
  concurrency: number,
  options: Pick<BenchOptions, 'warmupS' | 'durationS'>,
  onPhase: (phase: string) => void,
): Promise<FrontStep> {
  const start = performance.now();
  const windowStart = start + options.warmupS * 1000;
  const windowEnd = windowStart + options.durationS * 1000;
  const step: FrontStep = { front, concurrency, seconds: options.durationS, results: 0, errors: {}, lost: 0, latencyMs: [] };
  onPhase('warm-up');
  const measuring = setTimeout(() => onPhase('measuring'), options.warmupS * 1000);
  const lane = async (index: number) => {
    for (let seq = 0; ; seq++) {
      const sentAt = performance.now();
      if (sentAt >= windowEnd) return;
      const outcome = await driver.classify((index + seq) % imageCount, `${front}-${concurrency}-${index}-${seq}`);
      const doneAt = performance.now();
      if (sentAt < windowStart) continue;
      if (outcome.ok) {
        step.latencyMs.push(doneAt - sentAt);
        if (doneAt <= windowEnd) step.results++;
      } else if (outcome.code === 'lost') step.lost++;
      else step.errors[outcome.code] = (step.errors[outcome.code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, index) => lane(index)));
  clearTimeout(measuring);
  return step;
}

/**
 * One caller whose requests go to each front in turn: request i to FRONTS[i % 4]. A front's
 * throughput is then its results over the time it was busy (1 / its mean latency).
 */
async function measureTakingTurns(drivers: readonly FrontDriver[], imageCount: number, options: Pick<BenchOptions, 'warmupS' | 'durationS'>, onPhase: (phase: string) => void): Promise<FrontStep[]> {
  const steps: FrontStep[] = FRONTS.map((front) => ({ front, concurrency: 1, seconds: 0, results: 0, errors: {}, lost: 0, latencyMs: [] }));
  const windowStart = performance.now() + options.warmupS * 1000;
  const windowEnd = windowStart + options.durationS * 1000;
  onPhase('warm-up');
  let measuring = false;
  for (let seq = 0; ; seq++) {
    const sentAt = performance.now();
    if (sentAt >= windowEnd) break;
    if (!measuring && sentAt >= windowStart) {
      measuring = true;
      onPhase('measuring');
    }
    const at = seq % FRONTS.length;
    const outcome = await drivers[at].classify(Math.floor(seq / FRONTS.length) % imageCount, `turns-${seq}`);
    const took = performance.now() - sentAt;
    if (!measuring) continue;
    const step = steps[at];
    step.seconds += took / 1000;
    if (outcome.ok) {
      step.results++;
      step.latencyMs.push(took);
    } else if (outcome.code === 'lost') step.lost++;
    else step.errors[outcome.code] = (step.errors[outcome.code] ?? 0) + 1;
  }
  return steps;
}

/** Rounds of one front and concurrency merged, then each set against ZeroMQ's at its concurrency. */
export function combine(steps: readonly FrontStep[], concurrencies: readonly number[]): FrontResult[] {
  const merged = concurrencies.flatMap((concurrency) =>
    FRONTS.map((front) => {
      const mine = steps.filter((step) => step.front === front && step.concurrency === concurrency);
      const errors: Record<string, number> = {};
      for (const step of mine) for (const [code, count] of Object.entries(step.errors)) errors[code] = (errors[code] ?? 0) + count;
      const seconds = mine.reduce((sum, step) => sum + step.seconds, 0);
      return {
        front,
        concurrency,
        throughput: seconds > 0 ? mine.reduce((sum, step) => sum + step.results, 0) / seconds : Number.NaN,
        latencyMs: summarize(mine.flatMap((step) => step.latencyMs)),
        errors,
        lost: mine.reduce((sum, step) => sum + step.lost, 0),
      };
    }),
  );
  return merged.map((result) => {
    const zmq = merged.find((other) => other.front === 'zmq' && other.concurrency === result.concurrency)!;
    return { ...result, throughputRatio: result.throughput / zmq.throughput, p50OverheadMs: result.latencyMs.p50 - zmq.latencyMs.p50 };
  });
}

export function formatFronts(results: readonly FrontResult[], processor: string): string {
  const lines = [
    `ways in, one hub (${processor}); against ZeroMQ at the same concurrency`,
    '',
    '| front | C | req/s | × zmq | p50 ms | p50 − zmq | p99 ms | errors | lost |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const errors = Object.entries(r.errors).map(([code, count]) => `${code} ${count}`).join(', ') || '0';
    lines.push(
      `| ${r.front} | ${r.concurrency} | ${r.throughput.toFixed(1)} | ${r.throughputRatio.toFixed(3)} | ${r.latencyMs.p50.toFixed(2)} | ${r.p50OverheadMs >= 0 ? '+' : ''}${r.p50OverheadMs.toFixed(2)} | ${r.latencyMs.p99.toFixed(2)} | ${errors} | ${r.lost} |`,
    );
  }
  const grpcAt = (concurrency: number) => results.find((r) => r.front === 'v2-grpc' && r.concurrency === concurrency);
  const busy = grpcAt(8);
  const lone = grpcAt(1);
  lines.push('');
  if (busy) lines.push(`v2 gRPC throughput at 8 clients: ${busy.throughputRatio.toFixed(3)}× ZeroMQ's (target ≥ ${TARGET_THROUGHPUT_RATIO}): ${busy.throughputRatio >= TARGET_THROUGHPUT_RATIO ? 'met' : 'NOT met'}`);
  if (lone) lines.push(`v2 gRPC p50 overhead at 1 client: ${lone.p50OverheadMs.toFixed(2)} ms over ZeroMQ's (target ≤ ${TARGET_P50_OVERHEAD_MS} ms): ${lone.p50OverheadMs <= TARGET_P50_OVERHEAD_MS ? 'met' : 'NOT met'}`);
  return lines.join('\n');
}

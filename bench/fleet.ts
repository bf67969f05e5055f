/**
 * The bench's fleet modes, both through the client library:
 *
 * - `--endpoints a,b`: a closed-loop sweep against hubs already running (started by whoever
 *   runs the bench, anywhere); nothing is spawned and no ceiling is measured, as the bench
 *   cannot know what else shares the hubs' cores.
 * - `--compare-fleet`: in one run, one hub of two workers, then two hubs of one worker each
 *   driven through the client, with the same threads per worker and no solo mode, swept at the
 *   same concurrencies: the ratio says what spreading over hubs costs (acceptance: ≥ 0.9×).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { BenchOptions } from './cli.ts';
import { spawnHub } from './hub.ts';
import type { SpawnedHub } from './hub.ts';
import { runStep } from './load-generator.ts';
import type { StepResult } from './load-generator.ts';
import type { Progress } from './progress.ts';

/** The two-hub fleet must reach this share of the one big hub's best throughput. */
export const FLEET_RATIO_TARGET = 0.9;
const STOP_TIMEOUT_MS = 30_000;

async function sweep(endpoints: string | readonly string[], label: string, options: BenchOptions, payloads: readonly string[], progress: Progress): Promise<StepResult[]> {
  const steps: StepResult[] = [];
  for (const concurrency of options.concurrency) {
    progress.begin(`${label} C=${concurrency}`);
    steps.push(
      await runStep({
        endpoint: endpoints,
        payloads,
        concurrency,
        warmupMs: options.warmupS * 1000,
        durationMs: options.durationS * 1000,
        replyTimeoutMs: options.replyTimeoutS * 1000,
        tag: `${label}-c${concurrency}`,
        onPhase: (phase) => progress.detail(phase),
      }),
    );
  }
  return steps;
}

function problemsOf(steps: readonly StepResult[]): string[] {
  const lost = steps.reduce((sum, step) => sum + step.measured.lost + step.warmup.lost, 0);
  const dropped = steps.reduce((sum, step) => sum + step.mismatched, 0);
  return [...(lost > 0 ? [`${lost} request(s) lost`] : []), ...(dropped > 0 ? [`${dropped} reply(ies) dropped as duplicates or strangers`] : [])];
}

function row(label: string, step: StepResult): string {
  const { measured: m, latencyMs: l } = step;
  const hubs = Object.entries(step.byHub ?? {})
    .map(([id, n]) => `${id}:${n}`)
    .join(' ');
  return [
    label.padEnd(18),
    String(m.sent).padStart(6),
    String(m.answered).padStart(6),
    String(m.errored).padStart(4),
    String(m.lost).padStart(4),
    step.throughput.toFixed(2).padStart(8),
    l.p50.toFixed(1).padStart(8),
    l.p99.toFixed(1).padStart(8),
    String(step.resends ?? 0).padStart(7),
    `  ${hubs}`,
  ].join(' ');
}

const HEADER = `${'run'.padEnd(18)} ${'sent'.padStart(6)} ${'ok'.padStart(6)} ${'err'.padStart(4)} ${'lost'.padStart(4)} ${'img/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'resends'.padStart(7)}   results by hub`;

async function writeJson(outDir: string, name: string, data: unknown): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** `--endpoints`: sweeps the running hubs; exit 1 when a request was lost. */
export async function benchEndpoints(options: BenchOptions, payloads: readonly string[], progress: Progress): Promise<number> {
  const endpoints = options.endpoints ?? [];
  const steps = await sweep(endpoints, 'fleet', options, payloads, progress);
  progress.stop();
  const problems = problemsOf(steps);
  const file = await writeJson(options.outDir, 'fleet', { endpoints, config: options, steps, problems });
  const best = Math.max(...steps.map((step) => step.throughput));
  process.stdout.write(
    `${HEADER}\n${steps.map((step) => row(`C=${step.concurrency}`, step)).join('\n')}\n\n` +
      `${endpoints.length} hub endpoint(s): best ${best.toFixed(2)} img/s\n${problems.map((p) => `FAIL: ${p}\n`).join('')}results: ${path.relative(process.cwd(), file)}\n`,
  );
  return problems.length === 0 ? 0 : 1;
}

/** `--compare-fleet`: one hub × 2 workers, then 2 hubs × 1 worker; exit 1 below the target ratio or on a loss. */
export async function benchCompareFleet(options: BenchOptions, payloads: readonly string[], progress: Progress): Promise<number> {
  const threads = String(options.threads ?? 1);
  const pinned = (workers: number) => [...options.hubArgs, '--workers', String(workers), '--threads-per-worker', threads, '--solo-threads', '0'];
  const spawned: SpawnedHub[] = [];
  const stopAll = async () => {
    await Promise.all(spawned.splice(0).map((hub) => hub.stop(STOP_TIMEOUT_MS)));
  };
  try {
    progress.begin('one hub, 2 workers');
    progress.detail('starting');
    spawned.push(await spawnHub({ args: [...pinned(2), '--hub-id', 'single'], timeoutMs: options.startupTimeoutS * 1000 }));
    const single = await sweep(spawned[0].zmq, 'single', options, payloads, progress);
    await stopAll();

    progress.begin('two hubs, 1 worker each');
    progress.detail('starting');
    // One after the other: a first start may write model.onnx, which the second then reads.
    for (const id of ['fleet-a', 'fleet-b']) spawned.push(await spawnHub({ args: [...pinned(1), '--hub-id', id], timeoutMs: options.startupTimeoutS * 1000 }));
    const fleet = await sweep(spawned.map((hub) => hub.zmq), 'fleet', options, payloads, progress);
    await stopAll();
    progress.stop();

    const best = (steps: readonly StepResult[]) => Math.max(...steps.map((step) => step.throughput));
    const ratio = best(fleet) / best(single);
    const problems = problemsOf([...single, ...fleet]);
    if (!(ratio >= FLEET_RATIO_TARGET)) problems.push(`two hubs reached ${ratio.toFixed(3)}× one hub's throughput, below ${FLEET_RATIO_TARGET}×`);
    const file = await writeJson(options.outDir, 'compare-fleet', { config: options, cpus: availableParallelism(), single, fleet, ratio, problems });
    const rows = options.concurrency.flatMap((concurrency, i) => [
      row(`1×2w C=${concurrency}`, single[i]),
      row(`2×1w C=${concurrency}`, fleet[i]),
      `${''.padEnd(18)} fleet / single at C=${concurrency}: ${(fleet[i].throughput / single[i].throughput).toFixed(3)}`,
    ]);
    process.stdout.write(
      `${HEADER}\n${rows.join('\n')}\n\n` +
        `best: one hub of 2 workers ${best(single).toFixed(2)} img/s, two hubs of 1 worker through the client ${best(fleet).toFixed(2)} img/s: ` +
        `${ratio.toFixed(3)}× (target ≥ ${FLEET_RATIO_TARGET}×; ${threads} thread(s) per worker, no solo mode)\n` +
        `${problems.map((p) => `FAIL: ${p}\n`).join('')}results: ${path.relative(process.cwd(), file)}\n`,
    );
    return problems.length === 0 ? 0 : 1;
  } finally {
    progress.stop();
    await stopAll();
  }
}

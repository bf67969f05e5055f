/**
 * `npm run bench -- --compare-precision`'s arithmetic: the ratios and their targets, the
 * problems that fail the run, the per-thread CPU split, and the hub flags of each run. No hub,
 * no engine (the mode itself is run by hand: it takes minutes).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CeilingResult } from '../../bench/ceiling.ts';
import { withPrecision } from '../../bench/cli.ts';
import { comparePrecisions, formatComparison, runProblems } from '../../bench/compare-precision-report.ts';
import type { PrecisionRun } from '../../bench/compare-precision-report.ts';
import { computeHeadline } from '../../bench/report.ts';
import type { BenchStep } from '../../bench/report.ts';
import { groupOf, threadCpu, THREAD_GROUPS } from '../../kit/thread-cpu.ts';
import type { ThreadGroup, ThreadSnapshot } from '../../kit/thread-cpu.ts';
import { summarize } from '../../shared/stats.ts';
import type { Precision } from '../../shared/protocol/classify.ts';

function step(concurrency: number, throughput: number, p50: number, lost = 0): BenchStep {
  const outcomes = { sent: 10, answered: 10 - lost, errored: 0, errors: {}, lost };
  return {
    concurrency,
    durationS: 1,
    measured: outcomes,
    warmup: { sent: 0, answered: 0, errored: 0, errors: {}, lost: 0 },
    throughput,
    latencyMs: { ...summarize([p50]), p50 },
    serverMs: { queue: 1, preprocess: 5, inference: p50 - 6, total: p50 },
    mismatched: 0,
    drainMs: 0,
    cpu: { hub: 1.9, bench: 0.05, other: 0 },
    threadCpu: { main: 0.1, inference: 1.6, preprocess: 0.02, zeromq: 0.01, 'libuv+v8': 0.17 },
  };
}

function ceiling(precision: Precision, imagesPerS: number): CeilingResult {
  const ms = summarize([1000 / imagesPerS]);
  return { engine: 'onnx', precision, threads: 1, loadMs: 1, singleImage: ms, batches: [{ batch: 1, msPerBatch: ms, imagesPerS, cpu: null }], best: { batch: 1, imagesPerS } };
}

function run(precision: Precision, ceilingImagesPerS: number, steps: BenchStep[], exitCode = 0): PrecisionRun {
  const ceilings = [ceiling(precision, ceilingImagesPerS)];
  return {
    precision,
    hubArgs: ['--precision', precision],
    ceilings,
    hub: { startupMs: 3000, ready: { workers: 2, threads_per_worker: 1, preprocess_workers: 1 }, exit: { code: exitCode, signal: null, ms: 100, killed: false }, stderrTail: '' },
    steps,
    memory: null,
    headline: computeHeadline(ceilings, steps, null, 3000),
  };
}

test('the ratios: int8 over fp32 at saturation and at C=1, each hub over its own ceiling, judged on a VNNI processor', () => {
  const fp32 = run('fp32', 40, [step(1, 20, 40), step(4, 36, 100)]);
  const int8 = run('int8', 110, [step(1, 50, 16), step(4, 90, 40)]);
  const vnni = comparePrecisions(fp32, int8, 'AMD EPYC, 2 cores (avx2, avx512f, avx512_vnni)');
  assert.equal(vnni.int8Units, true);
  assert.equal(vnni.int8OverFp32Throughput, 2.5);
  assert.equal(vnni.int8OverFp32C1P50, 0.4);
  assert.equal(vnni.hubOverOwnCeiling.fp32, 0.9);
  assert.ok(Math.abs((vnni.hubOverOwnCeiling.int8 ?? 0) - 90 / 110) < 1e-12);
  assert.deepEqual(vnni.checks.map((check) => check.met), [true, true, true, true]);

  // Without integer dot-product units only the ceiling target applies.
  const avx2 = comparePrecisions(fp32, int8, 'AMD EPYC, 2 cores (avx2)');
  assert.deepEqual(avx2.checks.map((check) => check.met), [null, null, true, true]);
  const text = formatComparison([fp32, int8], avx2, []);
  assert.match(text, /C=4 +36\.00 +90\.00 +2\.50/);
  assert.match(text, /int8 C=4 \*/, 'the saturation step is marked');
  assert.match(text, /not applicable: no AVX512-VNNI or AMX/);
});

test('lost requests and an unclean exit fail the run; the ratios alone do not', () => {
  assert.deepEqual(runProblems(run('int8', 100, [step(1, 10, 10)]), 60), []);
  assert.match(runProblems(run('int8', 100, [step(1, 10, 10, 2)]), 60).join('\n'), /int8: 2 request\(s\) lost/);
  assert.match(runProblems(run('fp32', 100, [step(1, 10, 10)], 1), 60).join('\n'), /fp32: the hub did not exit 0/);
});

test('threads are grouped by name, and their jiffies become cores over the window', () => {
  assert.equal(groupOf('100', 100, 'node'), 'main');
  assert.equal(groupOf('101', 100, 'hub-infer-3'), 'inference');
  assert.equal(groupOf('102', 100, 'hub-prep-2'), 'preprocess');
  assert.equal(groupOf('103', 100, 'ZMQbg/IO/0'), 'zeromq');
  assert.equal(groupOf('104', 100, 'node'), 'libuv+v8');
  const snapshot = (at: number, entries: Array<[string, { group: ThreadGroup; jiffies: number }]>): ThreadSnapshot => ({ at, threads: new Map(entries) });
  const before = snapshot(0, [['100', { group: 'main', jiffies: 10 }], ['101', { group: 'inference', jiffies: 500 }]]);
  // 2 s later: the inference thread used 190 jiffies (0.95 cores), a new decoder thread 40 (0.2).
  const after = snapshot(2000, [['100', { group: 'main', jiffies: 30 }], ['101', { group: 'inference', jiffies: 690 }], ['105', { group: 'libuv+v8', jiffies: 40 }]]);
  const split = threadCpu(before, after);
  assert.ok(split);
  assert.deepEqual(Object.keys(split), [...THREAD_GROUPS]);
  assert.ok(Math.abs(split.main - 0.1) < 1e-9 && Math.abs(split.inference - 0.95) < 1e-9 && Math.abs(split['libuv+v8'] - 0.2) < 1e-9);
  assert.equal(threadCpu(null, after), null);
});

test('each run of the comparison gets its own --precision, everything else the same', () => {
  const args = ['--engine', 'onnx', '--precision', 'fp32', '--model-dir', '/m', '--max-batch', '2'];
  assert.deepEqual(withPrecision(args, 'int8'), ['--engine', 'onnx', '--precision', 'int8', '--model-dir', '/m', '--max-batch', '2']);
  assert.deepEqual(withPrecision(['--engine', 'onnx'], 'int8'), ['--engine', 'onnx', '--precision', 'int8']);
});

/**
 * The bench's arithmetic and writers: percentiles, summaries, the headline ratios, the SVG
 * chart and the JSON files. No hub, no engine.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { CeilingResult } from '../../bench/ceiling.ts';
import { ceilingThreadCounts, flagValue } from '../../bench/cli.ts';
import { cpuShare } from '../../bench/cpu-share.ts';
import type { StepResult } from '../../bench/load-generator.ts';
import { bestCeiling, computeHeadline, formatHeadline, formatTable, selectCeiling, toJson, writeResults } from '../../bench/report.ts';
import type { BenchResult, BenchStep } from '../../bench/report.ts';
import { percentile, round, summarize } from '../../shared/stats.ts';
import { escapeXml, niceTicks, renderChart } from '../../bench/svg-chart.ts';

test('percentile interpolates between ranks like numpy', () => {
  const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(oneToHundred, 50), 50.5);
  assert.equal(percentile(oneToHundred, 0), 1);
  assert.equal(percentile(oneToHundred, 100), 100);
  assert.ok(Math.abs(percentile(oneToHundred, 99) - 99.01) < 1e-9);
  assert.equal(percentile([10, 20], 25), 12.5);
});

test('percentile does not depend on input order and does not sort the caller’s array', () => {
  const values = [5, 1, 4, 2, 3];
  assert.equal(percentile(values, 50), 3);
  assert.deepEqual(values, [5, 1, 4, 2, 3]);
});

test('percentile of nothing is NaN; of one sample, that sample', () => {
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.equal(percentile([7], 99), 7);
});

test('percentile rejects a rank outside 0..100 and NaN samples', () => {
  assert.throws(() => percentile([1, 2], 101), RangeError);
  assert.throws(() => percentile([1, 2], -1), RangeError);
  assert.throws(() => percentile([1, Number.NaN], 50), RangeError);
});

test('summarize gives count, mean, extremes and percentiles', () => {
  const summary = summarize([4, 1, 3, 2]);
  assert.deepEqual(summary, { count: 4, mean: 2.5, min: 1, max: 4, p50: 2.5, p90: 3.7, p99: 3.9699999999999998 });
  const empty = summarize([]);
  assert.equal(empty.count, 0);
  assert.ok(Number.isNaN(empty.mean) && Number.isNaN(empty.p99) && Number.isNaN(empty.max));
});

test('round keeps digits and turns non-finite values into null', () => {
  assert.equal(round(1.23456, 2), 1.23);
  assert.equal(round(2.5, 0), 3);
  assert.equal(round(Number.NaN), null);
  assert.equal(round(Number.POSITIVE_INFINITY), null);
});

test('flagValue reads both spellings and takes the last, as commander does', () => {
  assert.equal(flagValue(['--workers', '2', '--max-batch=4'], '--max-batch'), '4');
  assert.equal(flagValue(['--workers', '2', '--workers=3'], '--workers'), '3');
  assert.equal(flagValue(['--workers-x', '2'], '--workers'), undefined);
});

test('cpuShare splits the busy time between hub, bench and the rest, in cores', () => {
  const cores = availableParallelism();
  const share = cpuShare({ busy: 100, total: 200, hub: 10, bench: 5 }, { busy: 300, total: 400, hub: 110, bench: 25 })!;
  assert.ok(Math.abs(share.hub - 0.5 * cores) < 1e-12);
  assert.ok(Math.abs(share.bench - 0.1 * cores) < 1e-12);
  assert.ok(Math.abs(share.other - 0.4 * cores) < 1e-12);
  // Counters read a moment apart may overshoot; the rest is never negative.
  assert.equal(cpuShare({ busy: 0, total: 0, hub: 0, bench: 0 }, { busy: 10, total: 100, hub: 8, bench: 4 })!.other, 0);
  assert.equal(cpuShare(null, { busy: 1, total: 2, hub: 0, bench: 0 }), null);
  assert.equal(cpuShare({ busy: 1, total: 2, hub: 0, bench: 0 }, { busy: 1, total: 2, hub: 0, bench: 0 }), null);
});

function step(concurrency: number, throughput: number, p50: number, extra: Partial<StepResult> = {}): StepResult {
  const outcomes = { sent: 10, answered: 10, errored: 0, errors: {}, lost: 0 };
  return {
    concurrency,
    durationS: 5,
    measured: { ...outcomes },
    warmup: { ...outcomes },
    throughput,
    latencyMs: { count: 10, mean: p50, min: p50, max: p50 * 2, p50, p90: p50 * 1.5, p99: p50 * 1.9 },
    serverMs: { queue: 1, preprocess: 2, inference: p50 - 5, total: p50 - 2 },
    mismatched: 0,
    drainMs: 0,
    ...extra,
  };
}

const CEILING: CeilingResult = {
  engine: 'wasm',
  threads: 1,
  loadMs: 1000,
  singleImage: { count: 5, mean: 500, min: 480, max: 520, p50: 490, p90: 510, p99: 519 },
  batches: [
    { batch: 1, msPerBatch: { count: 5, mean: 500, min: 480, max: 520, p50: 490, p90: 510, p99: 519 }, imagesPerS: 2, cpu: null },
    {
      batch: 4,
      msPerBatch: { count: 3, mean: 1600, min: 1590, max: 1610, p50: 1600, p90: 1608, p99: 1610 },
      imagesPerS: 2.5,
      cpu: { hub: 0, bench: 1, other: 0.5 },
    },
  ],
  best: { batch: 4, imagesPerS: 2.5 },
};

/** A sketch of one engine's ceiling at `threads`: batch size → [p50 ms per batch, images/s]. */
function ceilingAt(threads: number, figures: Record<number, [number, number]>): CeilingResult {
  const ms = (p50: number) => ({ count: 5, mean: p50, min: p50, max: p50, p50, p90: p50, p99: p50 });
  const batches = Object.entries(figures).map(([batch, [p50, imagesPerS]]) => ({ batch: Number(batch), msPerBatch: ms(p50), imagesPerS, cpu: null }));
  const best = batches.reduce((a, b) => (b.imagesPerS > a.imagesPerS ? b : a));
  return { engine: 'onnx', threads, loadMs: 100, singleImage: batches[0].msPerBatch, batches, best: { batch: best.batch, imagesPerS: best.imagesPerS } };
}

// The best throughput is 1 thread at batch 4; the lowest single-image latency is 2 threads.
const ONE_THREAD = ceilingAt(1, { 1: [40, 25], 2: [76, 26.3], 4: [80, 50], 8: [170, 47.1] });
const TWO_THREADS = ceilingAt(2, { 1: [25, 40], 2: [48, 41.7], 4: [90, 44.4], 8: [185, 43.2] });

test('selectCeiling takes the best images/s over every (threads, batch) and the lowest batch-1 p50, each on its own', () => {
  const choice = selectCeiling([ONE_THREAD, TWO_THREADS])!;
  assert.deepEqual(choice.throughput, { threads: 1, batch: 4, imagesPerS: 50 });
  assert.deepEqual(choice.singleImage, { threads: 2, p50Ms: 25 });
  // Not the order measured: the same choice either way round.
  assert.deepEqual(selectCeiling([TWO_THREADS, ONE_THREAD]), choice);
  // The best batch of a thread count that loses on its best batch still never wins.
  const faster = ceilingAt(2, { 1: [20, 50], 2: [35, 57.1], 4: [80, 50] });
  assert.deepEqual(selectCeiling([ONE_THREAD, faster]), { throughput: { threads: 2, batch: 2, imagesPerS: 57.1 }, singleImage: { threads: 2, p50Ms: 20 } });
});

test('selectCeiling: nothing measured gives null, ties go to the first measured, non-finite figures never win', () => {
  assert.equal(selectCeiling([]), null);
  const same = ceilingAt(4, { 1: [40, 25], 4: [80, 50] });
  assert.deepEqual(selectCeiling([ONE_THREAD, same]), { throughput: { threads: 1, batch: 4, imagesPerS: 50 }, singleImage: { threads: 1, p50Ms: 40 } });
  const broken = ceilingAt(2, { 1: [Number.NaN, Number.NaN], 4: [Number.NaN, Number.POSITIVE_INFINITY] });
  assert.deepEqual(selectCeiling([broken, ONE_THREAD]), { throughput: { threads: 1, batch: 4, imagesPerS: 50 }, singleImage: { threads: 1, p50Ms: 40 } });
  assert.deepEqual(selectCeiling([broken]), { throughput: null, singleImage: null });
});

test('bestCeiling is the whole result of the thread count with the best throughput', () => {
  assert.equal(bestCeiling([ONE_THREAD, TWO_THREADS]), ONE_THREAD);
  assert.equal(bestCeiling([ceilingAt(1, { 1: [40, 25] }), TWO_THREADS]), TWO_THREADS);
  assert.equal(bestCeiling([]), null);
});

test('ceilingThreadCounts: 1 and every core unless asked, no repeats, 1 for single-threaded wasm', () => {
  assert.deepEqual(ceilingThreadCounts('onnx', 8, null), [1, 8]);
  assert.deepEqual(ceilingThreadCounts('tfjs-node', 2, null), [1, 2]);
  assert.deepEqual(ceilingThreadCounts('onnx', 1, null), [1]);
  assert.deepEqual(ceilingThreadCounts('wasm', 8, null), [1]);
  assert.deepEqual(ceilingThreadCounts('onnx', 8, 3), [3]);
});

test('headline: saturation over ceiling, C=1 overhead, totals of lost and errored', () => {
  const lossy = step(4, 3, 1500, {
    measured: { sent: 10, answered: 7, errored: 2, errors: { timeout: 2 }, lost: 1 },
    warmup: { sent: 3, answered: 2, errored: 0, errors: {}, lost: 1 },
  });
  const headline = computeHeadline([CEILING], [step(1, 1.9, 520), step(2, 3.8, 540), lossy], null, 4200);
  assert.deepEqual(headline.saturation, { concurrency: 2, throughput: 3.8 });
  assert.ok(Math.abs(headline.saturationOverCeiling! - 3.8 / 2.5) < 1e-12);
  assert.equal(headline.c1OverheadMs, 30);
  assert.equal(headline.lost, 2);
  assert.equal(headline.errored, 2);
  assert.equal(headline.startupMs, 4200);
});

test('headline without a ceiling or a C=1 step leaves those ratios null', () => {
  const headline = computeHeadline([], [step(2, 3, 500)], null, null);
  assert.equal(headline.ceiling, null);
  assert.equal(headline.saturationOverCeiling, null);
  assert.equal(headline.c1OverheadMs, null);
  assert.equal(computeHeadline([CEILING], [step(2, 3, 500)], null, null).c1OverheadMs, null);
});

test('headline ratios are against the best ceiling: throughput and single-image latency from different thread counts', () => {
  const headline = computeHeadline([ONE_THREAD, TWO_THREADS], [step(1, 30, 31), step(4, 100, 70)], null, null);
  assert.deepEqual(headline.ceiling, selectCeiling([ONE_THREAD, TWO_THREADS]));
  // 100 img/s over 1 thread × batch 4's 50, not over 2 threads' best (44.4) or either batch 1.
  assert.ok(Math.abs(headline.saturationOverCeiling! - 2) < 1e-12, `saturation over ceiling ${headline.saturationOverCeiling}`);
  // 31 ms at C=1 minus 2 threads' 25 ms, not 1 thread's 40.
  assert.ok(Math.abs(headline.c1OverheadMs! - 6) < 1e-12, `C=1 overhead ${headline.c1OverheadMs}`);
});

test('niceTicks start at 0, step by 1, 2 or 5 × 10^k and reach the maximum', () => {
  assert.deepEqual(niceTicks(3.8), [0, 1, 2, 3, 4]);
  assert.deepEqual(niceTicks(2707), [0, 1000, 2000, 3000]);
  assert.deepEqual(niceTicks(0), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  for (const max of [0.013, 7, 99, 101, 12345]) {
    const ticks = niceTicks(max);
    assert.ok(ticks[ticks.length - 1] >= max, `${max}: ${ticks.join(',')}`);
    assert.ok(ticks.length >= 3 && ticks.length <= 7, `${max}: ${ticks.length} ticks`);
  }
});

test('the chart is one well-formed SVG with a marker per measured point and escaped text', () => {
  const svg = renderChart(
    [
      { concurrency: 4, p50Ms: 1600, p99Ms: 2700, throughput: 2.4 },
      { concurrency: 1, p50Ms: 520, p99Ms: 630, throughput: 2 },
      { concurrency: 2, p50Ms: 560, p99Ms: null, throughput: 3.8 },
    ],
    { title: 'wasm <2 workers> & "more"', ceilingImagesPerS: 2.15 },
  );
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal(svg.trimEnd().endsWith('</svg>'), true);
  assert.equal((svg.match(/<svg/g) ?? []).length, 1);
  // p50: 3, p99: 2 (one missing), throughput: 3; the ceiling is a line, not markers.
  assert.equal((svg.match(/<circle/g) ?? []).length, 8);
  assert.ok(svg.includes('wasm &lt;2 workers&gt; &amp; &quot;more&quot;'));
  assert.ok(!svg.includes('<2 workers>'));
  assert.ok(svg.includes('stroke-dasharray'), 'the ceiling is drawn dashed');
  for (const label of ['latency (ms)', 'throughput (images/s)', 'concurrency', 'p50', 'p99', 'ceiling']) {
    assert.ok(svg.includes(`>${label}`), `label ${label}`);
  }
  assert.ok(!/NaN|undefined|Infinity/.test(svg), 'no broken numbers in coordinates');
  // Concurrency increases left to right whatever order the steps came in.
  const xOf = (c: number) => Number(new RegExp(`<text x="([\\d.]+)" y="[\\d.]+" text-anchor="middle">${c}</text>`).exec(svg)![1]);
  assert.ok(xOf(1) < xOf(2) && xOf(2) < xOf(4));
});

test('escapeXml escapes the five XML specials', () => {
  assert.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
});

function result(): BenchResult {
  const steps: BenchStep[] = [
    { ...step(1, 1.9, 520), cpu: { hub: 1, bench: 0.1, other: 0.02 } },
    { ...step(2, 3.8, 540), cpu: null },
  ];
  return {
    startedAt: '2026-01-02T03:04:05.678Z',
    finishedAt: '2026-01-02T03:06:00.000Z',
    machine: { cpus: 2, totalMemGiB: 24, node: 'v20.0.0', platform: 'linux' },
    config: {
      engine: 'wasm',
      modelDir: 'models/test-resnet50',
      threads: null,
      ceilingThreads: [1, 2],
      hubArgs: [],
      concurrency: [1, 2],
      durationS: 5,
      warmupS: 1,
      replyTimeoutS: 60,
      images: [],
    },
    ceiling: CEILING,
    ceilings: [CEILING],
    hub: { startupMs: 4200, ready: { workers: 2, threads_per_worker: 1, solo_threads: 2 }, exit: { code: 0, signal: null, ms: 120, killed: false } },
    steps,
    memory: { samples: 3, startMiB: 900.123456, peakMiB: 950, endMiB: 940 },
    headline: computeHeadline([CEILING], steps, null, 4200),
    problems: [],
    warnings: [],
  };
}

test('toJson rounds to three decimals and writes NaN as null', () => {
  const withNaN = result();
  withNaN.steps[0].latencyMs.p99 = Number.NaN;
  const parsed = JSON.parse(toJson(withNaN)) as BenchResult;
  assert.equal(parsed.memory!.startMiB, 900.123);
  assert.equal(parsed.steps[0].latencyMs.p99, null);
  assert.equal(parsed.steps[1].throughput, 3.8);
});

test('writeResults writes a timestamped JSON, latest.json with the same content, and latest.svg', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = await writeResults(path.join(dir, 'out'), result());
  assert.equal(path.basename(files.json), 'bench-2026-01-02T03-04-05-678Z.json');
  assert.deepEqual((await readdir(path.join(dir, 'out'))).sort(), ['bench-2026-01-02T03-04-05-678Z.json', 'latest.json', 'latest.svg']);
  const stamped = await readFile(files.json, 'utf8');
  assert.equal(await readFile(files.latestJson, 'utf8'), stamped);
  const parsed = JSON.parse(stamped) as BenchResult;
  assert.deepEqual(
    parsed.steps.map((s) => s.concurrency),
    [1, 2],
  );
  assert.equal(parsed.headline.c1OverheadMs, 30);
  assert.deepEqual(parsed.ceilings.map((c) => c.threads), [1]);
  assert.equal(parsed.ceiling!.best.imagesPerS, 2.5);
  assert.match(await readFile(files.svg, 'utf8'), /<svg[\s\S]*<\/svg>\n$/);
});

test('the table has a row per ceiling thread count and batch and per step, error codes spelled out', () => {
  const r = result();
  r.steps[1].measured = { sent: 12, answered: 9, errored: 3, errors: { timeout: 2, overloaded: 1 }, lost: 0 };
  const lines = formatTable(r).split('\n');
  assert.match(lines[0], /sent\s+ok\s+err\s+lost\s+img\/s\s+p50 ms/);
  assert.ok(lines[1].startsWith('ceiling t=1 b=1') && lines[2].startsWith('ceiling t=1 b=4'));
  assert.ok(lines[3].startsWith('hub C=1') && lines[4].startsWith('hub C=2'));
  assert.ok(lines[4].includes('3 (timeout:2 overloaded:1)'));
  // Cores taken by other processes, per row; '-' where unknown.
  assert.ok(lines[1].endsWith(' -') && lines[2].endsWith(' 0.50') && lines[3].endsWith(' 0.02') && lines[4].endsWith(' -'));
  // Columns line up: every row as wide as the header.
  assert.equal(new Set(lines.slice(0, 5).map((line) => line.length)).size, 1);
});

test('the table shows every thread count measured, in order; the headline names the best (threads, batch) and the hub’s parallelism', () => {
  const r = result();
  r.ceilings = [ONE_THREAD, TWO_THREADS];
  r.ceiling = bestCeiling(r.ceilings);
  r.steps = [{ ...step(1, 30, 31), cpu: null }, { ...step(4, 100, 70), cpu: null }];
  r.headline = computeHeadline(r.ceilings, r.steps, null, 4200);
  const labels = formatTable(r)
    .split('\n')
    .slice(1, 9)
    .map((line) => line.split(/\s{2,}/)[0]);
  assert.deepEqual(labels, ['ceiling t=1 b=1', 'ceiling t=1 b=2', 'ceiling t=1 b=4', 'ceiling t=1 b=8', 'ceiling t=2 b=1', 'ceiling t=2 b=2', 'ceiling t=2 b=4', 'ceiling t=2 b=8']);
  const text = formatHeadline(r);
  assert.match(text, /^ceiling: 50\.00 img\/s at t=1 b=4 .*best of t=1,2 × b=1,2,4,8/m);
  assert.match(text, /^raw single image: p50 25\.0 ms at t=2$/m);
  assert.match(text, /^saturation: 100\.00 img\/s at C=4 = 2\.00 × ceiling \(hub: 2 worker\(s\) × 1 thread\(s\), solo batches 2 thread\(s\)\)$/m);
  assert.match(text, /^C=1 p50 minus raw single-image p50 \(t=2\): \+6\.0 ms$/m);
  r.hub.ready = { workers: 2, threads_per_worker: 1 };
  assert.match(formatHeadline(r), /hub: 2 worker\(s\) × 1 thread\(s\), no solo mode/);
});

/**
 * The ceiling: the raw engine in this process, no server, no preprocessing, on a fixed
 * preprocessed batch, at one or more thread counts (one engine loaded at a time). The best
 * of them (see selectCeiling in report.ts) is what one process can get out of this machine.
 */
import { loadEngine } from '../server/engines/create-engine.ts';
import type { Engine, EngineName } from '../server/engines/engine.ts';
import type { Precision } from '../shared/protocol/classify.ts';
import { INPUT_VALUES_PER_IMAGE } from '../shared/caffe.ts';
import { cpuShare, cpuSnapshot } from './cpu-share.ts';
import type { CpuShare } from './cpu-share.ts';
import { summarize } from '../shared/stats.ts';
import type { Summary } from '../shared/stats.ts';

export interface CeilingOptions {
  engine: EngineName;
  /** int8: model.int8.onnx (onnx engine), which the caller has made current. */
  precision?: Precision;
  modelDir: string;
  threads: number;
  batchSizes: readonly number[];
  /** Time spent measuring each figure (single-image latency, each batch size). */
  budgetMs: number;
  onPhase?: (label: string) => void;
}

export interface BatchThroughput {
  batch: number;
  /** Time of one infer() call on the whole batch. */
  msPerBatch: Summary;
  imagesPerS: number;
  /** Cores each party used while this batch size was timed (the engine is the bench's). */
  cpu: CpuShare | null;
}

export interface CeilingResult {
  engine: EngineName;
  /** Absent in results older than int8 (they are fp32). */
  precision?: Precision;
  threads: number;
  loadMs: number;
  /** Batch 1: the single-image latency. */
  singleImage: Summary;
  batches: BatchThroughput[];
  best: { batch: number; imagesPerS: number };
}

/** Bounds on timed runs: a minimum so a slow engine still gives a median, a maximum so a fast one ends. */
const RUNS = { min: 3, max: 1000 };

export async function measureCeiling(options: CeilingOptions): Promise<CeilingResult> {
  options.onPhase?.('loading engine');
  const loadStarted = performance.now();
  const engine = await loadEngine(options.engine, { modelDir: options.modelDir, precision: options.precision, threads: options.threads });
  const loadMs = performance.now() - loadStarted;
  try {
    // Batch 1 first: its runs are also the single-image latency.
    const batchSizes = [...new Set([1, ...options.batchSizes])];
    const inputs = new Map(batchSizes.map((batch) => [batch, fixedInput(batch)]));
    options.onPhase?.('warm-up');
    // The first run at each shape compiles kernels and allocates; none of those is timed.
    for (const [batch, rgb] of inputs) await engine.infer(rgb, batch);

    const batches: BatchThroughput[] = [];
    for (const [batch, rgb] of inputs) {
      options.onPhase?.(`batch ${batch}`);
      const before = cpuSnapshot(null);
      const runs = await timeRuns(engine, rgb, batch, options.budgetMs, RUNS);
      const cpu = cpuShare(before, cpuSnapshot(null));
      const totalMs = runs.reduce((sum, ms) => sum + ms, 0);
      batches.push({ batch, msPerBatch: summarize(runs), imagesPerS: (batch * runs.length * 1000) / totalMs, cpu });
    }
    const best = batches.reduce((a, b) => (b.imagesPerS > a.imagesPerS ? b : a));
    return {
      engine: options.engine,
      precision: options.precision ?? 'fp32',
      threads: options.threads,
      loadMs,
      singleImage: batches[0].msPerBatch,
      batches,
      best: { batch: best.batch, imagesPerS: best.imagesPerS },
    };
  } finally {
    engine.dispose();
  }
}

async function timeRuns(
  engine: Engine,
  rgb: Uint8Array,
  batch: number,
  budgetMs: number,
  bounds: { min: number; max: number },
): Promise<number[]> {
  const times: number[] = [];
  const started = performance.now();
  while (times.length < bounds.max && (times.length < bounds.min || performance.now() - started < budgetMs)) {
    const runStarted = performance.now();
    await engine.infer(rgb, batch);
    times.push(performance.now() - runStarted);
  }
  return times;
}

/** Pseudo-random but the same every run; a dense CNN costs the same whatever the pixel values. */
function fixedInput(batch: number): Uint8Array {
  const rgb = new Uint8Array(batch * INPUT_VALUES_PER_IMAGE);
  let state = 0x9e3779b9;
  for (let i = 0; i < rgb.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    rgb[i] = state >>> 24;
  }
  return rgb;
}

/**
 * The hub's own inference worker threads: picks the engine (by measurement, for `auto`),
 * starts the workers, hands each to the scheduler once warm, and replaces one that dies.
 */
import type { EngineChoice, EngineName } from '../engines/engine.ts';
import { oversubscribes, resolveParallelism } from '../engines/parallelism.ts';
import type { Parallelism, RequestedParallelism } from '../engines/parallelism.ts';
import type { Logger } from '../../lib/log.ts';
import type { EngineTrial, LocalWorkerStatus } from '../../shared/protocol/status.ts';
import type { ExecutorRegistry } from './executor.ts';
import type { Precision } from '../../shared/protocol/classify.ts';
import { LocalExecutor } from './local-executor.ts';

/** Engines `auto` tries, each timed on its warm-up; the fastest serves. */
export const AUTO_CANDIDATES: readonly EngineName[] = ['tfjs-node', 'onnx', 'wasm'];

export interface LocalPoolOptions {
  engine: EngineChoice;
  /** Engines `auto` may try (e.g. without onnx when its export failed). */
  candidates?: readonly EngineName[];
  requested: RequestedParallelism;
  cores: number;
  modelDir: string;
  precision?: Precision;
  /** The weights' SHA-256 in modelDir: the pool's workers serve this model. */
  modelSha256: string;
  /** Requests on their way to the workers (decoding or queued); default: the scheduler's queue. */
  pendingWork?: () => number;
  /** Workers are named local-(n+1), local-(n+2)…: a pool started by a model swap continues the numbers. */
  idOffset?: number;
  maxBatch: number;
  topK: number;
}

const RESTART_DELAY_MS = 1000;

export class LocalPool {
  private readonly slots: LocalExecutor[] = [];
  private readonly restarts: number[] = [];
  private stopping = false;
  readonly trials: EngineTrial[] = [];
  engine: EngineName | undefined;
  parallelism: Parallelism | undefined;

  constructor(
    private readonly scheduler: ExecutorRegistry,
    private readonly options: LocalPoolOptions,
    private readonly log: Logger,
  ) {}

  /** Picks the engine, starts every worker; resolves when all are warm, rejects if none can start. */
  async start(): Promise<void> {
    if (this.options.requested.workers === 0) {
      this.log.warn('no local workers (--workers 0): only volunteers compute, and their answers cannot be verified');
      return;
    }
    const first = await this.startFirstWorker();
    this.engine = first.engine;
    this.parallelism = resolveParallelism(first.engine, this.options.cores, this.options.requested);
    if (oversubscribes(this.parallelism, this.options.cores)) {
      this.log.warn({ ...this.parallelism, cores: this.options.cores }, 'workers × threads exceed the cores, as asked');
    }
    this.adopt(0, first);
    const rest = Array.from({ length: this.parallelism.workers - 1 }, (_, i) => this.launch(i + 1));
    await Promise.all(rest);
  }

  get executors(): readonly LocalExecutor[] {
    return this.slots;
  }

  status(): LocalWorkerStatus[] {
    return this.slots.map((executor, slot) => ({
      id: executor.id,
      kind: 'local',
      engine: executor.engine,
      threads: executor.threads,
      solo_threads: executor.soloThreads,
      state: executor.state,
      busy: executor.busy,
      per_image_ms: round1(executor.perImageMs),
      warmup_ms: round1(executor.warmupMs),
      batches: executor.batchesDone,
      images: executor.imagesDone,
      restarts: this.restarts[slot] ?? 0,
    }));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((executor) => executor.stop()));
  }

  /**
   * The first worker doubles as the engine trial: with `auto`, each candidate is started in
   * turn and timed on its warm-up; the fastest is kept as worker 1.
   */
  private async startFirstWorker(): Promise<LocalExecutor> {
    const { engine } = this.options;
    const candidates = engine === 'auto' ? (this.options.candidates ?? AUTO_CANDIDATES) : [engine];
    let best: LocalExecutor | undefined;
    for (const candidate of candidates) {
      const missing = await missingPackage(candidate);
      if (missing) {
        this.trials.push({ engine: candidate, available: false, error: missing });
        continue;
      }
      const executor = this.create(0, candidate);
      try {
        await executor.whenReady();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.trials.push({ engine: candidate, available: false, error: message });
        continue;
      }
      this.trials.push({
        engine: candidate,
        available: true,
        threads: executor.threads,
        load_ms: round1(executor.loadMs),
        warmup_ms: round1(executor.bestWarmupMs),
      });
      if (!best || executor.bestWarmupMs < best.bestWarmupMs) {
        await best?.stop();
        best = executor;
      } else {
        await executor.stop();
      }
    }
    if (engine === 'auto') this.log.info({ chosen: best?.engine, trials: this.trials }, 'engine chosen by measurement');
    if (!best) {
      throw new Error(`no engine could start: ${this.trials.map((t) => `${t.engine}: ${t.error}`).join('; ')}`);
    }
    return best;
  }

  private create(slot: number, engine: EngineName): LocalExecutor {
    const parallelism = resolveParallelism(engine, this.options.cores, this.options.requested);
    return new LocalExecutor({
      id: `local-${(this.options.idOffset ?? 0) + slot + 1}`,
      engine,
      threads: parallelism.threadsPerWorker,
      spin: !oversubscribes(parallelism, this.options.cores),
      soloThreads: parallelism.soloThreads,
      // Solo (every core on one batch) only when nothing else is waiting either: a job queued
      // behind it would start on another worker at once, and three threads on two cores slow
      // the solo batch far more than its extra thread gains.
      isAlone: () => (this.options.pendingWork?.() ?? this.scheduler.queueDepth) === 0 && this.slots.every((other, i) => i === slot || !other.busy),
      modelDir: this.options.modelDir,
      precision: this.options.precision,
      modelSha256: this.options.modelSha256,
      maxBatch: this.options.maxBatch,
      topK: this.options.topK,
    });
  }

  private async launch(slot: number): Promise<void> {
    const executor = this.create(slot, this.engine!);
    await executor.whenReady();
    this.adopt(slot, executor);
  }

  private adopt(slot: number, executor: LocalExecutor): void {
    this.slots[slot] = executor;
    executor.onExitOnce((reason) => this.onUnexpectedExit(slot, executor, reason));
    this.log.info(
      { worker: executor.id, engine: executor.engine, threads: executor.threads, load_ms: round1(executor.loadMs), warmup_ms: round1(executor.warmupMs) },
      'worker ready',
    );
    this.scheduler.addExecutor(executor);
  }

  private onUnexpectedExit(slot: number, executor: LocalExecutor, reason: string): void {
    this.scheduler.removeExecutor(executor);
    if (this.stopping) return;
    this.restarts[slot] = (this.restarts[slot] ?? 0) + 1;
    this.log.error({ worker: executor.id, reason, restarts: this.restarts[slot] }, 'worker died; restarting it');
    setTimeout(() => {
      if (this.stopping) return;
      this.launch(slot).catch((error: unknown) => this.log.error({ worker: executor.id, err: error }, 'worker restart failed'));
    }, RESTART_DELAY_MS).unref();
  }
}

/** Engines whose package may be absent (optional dependencies); checked without starting a worker. */
const ENGINE_PACKAGES: Partial<Record<EngineName, string>> = { 'tfjs-node': '@tensorflow/tfjs-node' };

async function missingPackage(engine: EngineName): Promise<string | undefined> {
  const name = ENGINE_PACKAGES[engine];
  if (!name) return undefined;
  try {
    import.meta.resolve(name);
    return undefined;
  } catch {
    return `${name} is not installed (an optional dependency: its install downloads libtensorflow, which needs internet access)`;
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

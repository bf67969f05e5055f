/**
 * The hub's own inference worker threads: starts them, hands each to the scheduler once warm,
 * and replaces one that dies.
 */
import type { Logger } from '../log.ts';
import type { EngineChoice } from '../config.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { LocalExecutor } from './local-executor.ts';

export interface LocalPoolOptions {
  workers: number;
  engine: EngineChoice;
  modelDir: string;
  maxBatch: number;
  topK: number;
}

export interface LocalWorkerStatus {
  id: string;
  kind: 'local';
  engine: string;
  state: string;
  busy: boolean;
  per_image_ms: number;
  warmup_ms: number;
  batches: number;
  images: number;
  restarts: number;
}

const RESTART_DELAY_MS = 1000;

export class LocalPool {
  private readonly slots: LocalExecutor[] = [];
  private readonly restarts: number[] = [];
  private stopping = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly options: LocalPoolOptions,
    private readonly log: Logger,
  ) {}

  /** Starts every worker; resolves when all are warm, rejects if one cannot start. */
  async start(): Promise<void> {
    const starting = Array.from({ length: this.options.workers }, (_, slot) => {
      this.restarts[slot] = 0;
      return this.launch(slot);
    });
    await Promise.all(starting);
  }

  get executors(): readonly LocalExecutor[] {
    return this.slots;
  }

  status(): LocalWorkerStatus[] {
    return this.slots.map((executor, slot) => ({
      id: executor.id,
      kind: 'local',
      engine: executor.engine,
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

  private async launch(slot: number): Promise<void> {
    const executor = new LocalExecutor({ id: `local-${slot + 1}`, ...this.options });
    this.slots[slot] = executor;
    executor.onExitOnce((reason) => this.onUnexpectedExit(slot, executor, reason));
    await executor.whenReady();
    this.log.info(
      { worker: executor.id, engine: executor.engine, load_ms: round1(executor.loadMs), warmup_ms: round1(executor.warmupMs) },
      'worker ready',
    );
    this.scheduler.addExecutor(executor);
  }

  private onUnexpectedExit(slot: number, executor: LocalExecutor, reason: string): void {
    this.scheduler.removeExecutor(executor);
    if (this.stopping || executor.warmupMs === 0) return; // a worker that never started is start()'s failure
    this.restarts[slot] = (this.restarts[slot] ?? 0) + 1;
    this.log.error({ worker: executor.id, reason, restarts: this.restarts[slot] }, 'worker died; restarting it');
    setTimeout(() => {
      if (this.stopping) return;
      this.launch(slot).catch((error: unknown) => this.log.error({ worker: executor.id, err: error }, 'worker restart failed'));
    }, RESTART_DELAY_MS).unref();
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/**
 * Wires model swaps into a running hub: a second pool of local workers for the new model, the
 * scheduler's switch, the volunteers told, the store watched, and the old pool retired.
 */
import type { ModelManifest } from '../../model-store/store.ts';
import type { ModelInfo } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { LocalPool } from '../executors/local-pool.ts';
import type { VolunteerRegistry } from '../volunteers/volunteer-registry.ts';
import type { Logger } from '../../lib/log.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { defaultSwapMemoryLimitMiB } from './memory-limit.ts';
import { ModelSwapper } from './model-swapper.ts';
import { StoreWatcher } from './store-watcher.ts';

const MiB = 1024 * 1024;

export interface SwapWiring {
  modelDir: string;
  log: Logger;
  scheduler: Scheduler;
  volunteers: VolunteerRegistry;
  /** The pool serving now; replaced at each switch. */
  pools: { current: LocalPool };
  /** A pool for the given weights; the n-th swap numbers its workers after the ones before. */
  createPool: (manifest: ModelManifest, generation: number) => LocalPool;
  prepare: (manifest: ModelManifest) => Promise<void>;
  modelInfo: (manifest: ModelManifest) => ModelInfo;
  /** Memory the first pool took when it started (its models and sessions), MiB. */
  footprintMiB: () => number;
  memoryLimitMiB?: number;
  /** 0: no watching (SIGHUP and the reload API still work). */
  pollMs: number;
}

export interface AttachedSwapper {
  swapper: ModelSwapper;
  /** Starts watching the store (once the hub serves). */
  watch(): Promise<void>;
  stop(): Promise<void>;
}

export function attachModelSwapper(wiring: SwapWiring): AttachedSwapper {
  const { scheduler, pools, log } = wiring;
  let generation = 0;
  /** The pool warmed by the swap under way: the one that serves once it switches. */
  let warmed: LocalPool | undefined;
  const serving = (pool: LocalPool, sha256: string) => ({ sha256, stop: () => pool.stop() });
  const swapper = new ModelSwapper({
    modelDir: wiring.modelDir,
    log: log.child({ component: 'model-swap' }),
    current: () => scheduler.model!,
    serving: () => serving(pools.current, scheduler.model!.sha256),
    prepare: wiring.prepare,
    start: async (manifest) => {
      const pool = wiring.createPool(manifest, ++generation);
      try {
        await pool.start();
      } catch (error) {
        await pool.stop();
        throw error;
      }
      warmed = pool;
      return serving(pool, manifest.weightsSha256);
    },
    switchTo: (model) => {
      // One instant: status and shutdown see the new pool, admission and waiting jobs move to
      // its model, and the tabs are told.
      if (warmed) pools.current = warmed;
      warmed = undefined;
      scheduler.switchModel(model);
      wiring.volunteers.modelChanged();
    },
    jobsFor: (sha256) => scheduler.jobsFor(sha256),
    retired: (sha256) => scheduler.failPinned(sha256, new ServiceError('internal', 'the model this check was for is no longer served')),
    modelInfo: wiring.modelInfo,
    rssMiB: () => process.memoryUsage.rss() / MiB,
    footprintMiB: wiring.footprintMiB,
    memoryLimitMiB: wiring.memoryLimitMiB ?? defaultSwapMemoryLimitMiB(),
  });
  const watcher =
    wiring.pollMs > 0
      ? new StoreWatcher({
          modelDir: wiring.modelDir,
          current: () => scheduler.model?.sha256 ?? '',
          onNewModel: () => swapper.request('store'),
          onUnreadable: (error) => log.warn({ err: error }, 'the model store changed but cannot be read; waiting for the next change'),
          intervalMs: wiring.pollMs,
        })
      : undefined;
  return {
    swapper,
    watch: async () => watcher?.start(),
    async stop() {
      watcher?.stop();
      await swapper.close();
    },
  };
}

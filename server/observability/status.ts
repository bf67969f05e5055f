/**
 * The hub's state as `/api/status` shows it: model and weights, each executor, the queue,
 * and counts of requests by outcome.
 */
import type { Hub } from '../hub/hub.ts';
import type { LocalPool } from '../executors/local-pool.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { VolunteerRegistry } from '../volunteers/volunteer-registry.ts';
import { UNTRAINED_WARNING } from '../../shared/protocol/status.ts';
import type { Int8FidelitySummary, StatusReport } from '../../shared/protocol/status.ts';
import { readInt8Sidecar } from '../../model-store/derived-files.ts';

export { UNTRAINED_WARNING };

/** The int8 model's measured fidelity (from its sidecar), for /api/status; undefined if none. */
export async function int8FidelitySummary(modelDir: string): Promise<Int8FidelitySummary | undefined> {
  const report = (await readInt8Sidecar(modelDir))?.report;
  if (!report) return undefined;
  const { held_apart_images, pooled_sqnr_db, logits_sqnr_db, top1_agreement, int8_top1_in_fp32_top5, max_probability_diff } = report;
  return { held_apart_images, pooled_sqnr_db, logits_sqnr_db, top1_agreement, int8_top1_in_fp32_top5, max_probability_diff };
}

export function withInt8Fidelity(status: StatusReport, fidelity: Int8FidelitySummary | undefined): StatusReport {
  return fidelity ? { ...status, model: { ...status.model, int8_fidelity: fidelity } } : status;
}

const startedAt = Date.now();

export function buildStatus(hub: Hub, scheduler: Scheduler, pool: LocalPool, volunteers: VolunteerRegistry): StatusReport {
  const model = hub.model.weights === 'untrained' ? { ...hub.model, warning: UNTRAINED_WARNING } : hub.model;
  return {
    hub: hub.identity,
    ready: hub.isReady,
    model,
    executors: pool.status(),
    engine: {
      chosen: pool.engine,
      workers: pool.parallelism?.workers,
      threads_per_worker: pool.parallelism?.threadsPerWorker,
      trials: pool.trials,
    },
    volunteers: volunteers.list(),
    volunteer_stats: volunteers.stats(),
    queue: { depth: scheduler.queueDepth, running: scheduler.runningJobs },
    requests: Object.fromEntries(hub.outcomes),
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
  };
}

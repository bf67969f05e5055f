/**
 * The hub's state as `/api/status` shows it: model and weights, each executor, the queue,
 * and counts of requests by outcome.
 */
import type { Hub } from './hub.ts';
import type { EngineTrial, LocalPool, LocalWorkerStatus } from './executors/local-pool.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { VolunteerHub, VolunteerHubStats, VolunteerStatus } from './front/volunteer-socket.ts';

export interface StatusReport {
  ready: boolean;
  model: Hub['model'] & { warning?: string };
  executors: LocalWorkerStatus[];
  engine: { chosen: string | undefined; workers?: number; threads_per_worker?: number; trials: EngineTrial[] };
  volunteers: VolunteerStatus[];
  volunteer_stats: VolunteerHubStats;
  queue: { depth: number; running: number };
  requests: Record<string, number>;
  uptime_s: number;
}

export const UNTRAINED_WARNING =
  'UNTRAINED WEIGHTS: this ResNet50 was generated with random weights; its predictions are meaningless (labels are real, the ranking is not).';

const startedAt = Date.now();

export function buildStatus(hub: Hub, scheduler: Scheduler, pool: LocalPool, volunteers: VolunteerHub): StatusReport {
  const model = hub.model.weights === 'untrained' ? { ...hub.model, warning: UNTRAINED_WARNING } : hub.model;
  return {
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

/**
 * The hub's state as `/api/status` shows it: model and weights, each executor, the queue,
 * and counts of requests by outcome.
 */
import type { Hub } from './hub.ts';
import type { LocalPool } from './executors/local-pool.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { VolunteerHub } from './front/volunteer-socket.ts';
import { UNTRAINED_WARNING } from '../shared/protocol/status.ts';
import type { StatusReport } from '../shared/protocol/status.ts';

export { UNTRAINED_WARNING };

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

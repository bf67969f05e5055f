/**
 * Turns what the hub's parts report (replies, the scheduler's queue and dispatch, volunteers
 * coming and going) into the typed events of `/ws/events`, plus a statistics sample every
 * interval. Only clients' requests are reported: the hub's own verification re-runs are not.
 */
import { EventEmitter } from 'node:events';
import type { Reply } from '../../shared/protocol/classify.ts';
import { isErrorReply } from '../../shared/protocol/classify.ts';
import { RECENT_ACTIVITY, RECENT_REQUESTS, STATS_HISTORY, STATS_INTERVAL_MS } from '../../shared/protocol/events.ts';
import type { ExecutorEvent, HubEvent, RecentRequest, RequestFailed, RequestFinished, SnapshotEvent } from '../../shared/protocol/events.ts';
import type { ExecutorStatus, StatusReport, VolunteerStatus } from '../../shared/protocol/status.ts';
import { describeExecutor } from '../executors/executor.ts';
import type { Hub, RequestIds } from '../hub/hub.ts';
import type { Job } from '../scheduler/job.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { VolunteerRegistry } from '../volunteers/volunteer-registry.ts';
import type { ModelSwapper } from '../model-swap/model-swapper.ts';
import type { ModelSwapRecord } from '../../shared/protocol/model-swap.ts';
import { StatsWindow } from './stats-window.ts';
import { observe } from './observe.ts';
import type { Logger } from '../../lib/log.ts';

export interface EventFeedSources {
  hub: Hub;
  scheduler: Scheduler;
  volunteers: VolunteerRegistry;
  /** Model swaps, each step of one as it happens. */
  swaps?: ModelSwapper;
  status: () => StatusReport;
  log: Logger;
}

export interface EventFeedEvents {
  event: [event: HubEvent];
}

export class EventFeed extends EventEmitter<EventFeedEvents> {
  private readonly window = new StatsWindow(STATS_HISTORY);
  private readonly recent: RecentRequest[] = [];
  private readonly activity: ExecutorEvent[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly detach: Array<() => void> = [];

  constructor(
    private readonly sources: EventFeedSources,
    intervalMs: number = STATS_INTERVAL_MS,
  ) {
    super();
    const { hub, scheduler, volunteers } = sources;
    this.listen(hub, 'replied', (reply: Reply, ids: RequestIds) => this.onReply(reply, ids));
    this.listen(scheduler, 'queued', (job: Job) => {
      if (!isClientJob(job)) return;
      this.publish({ type: 'request.queued', ...ref(job), queue_depth: scheduler.queueDepth });
    });
    this.listen(scheduler, 'started', (jobs: Job[], executor: Parameters<typeof describeExecutor>[0]) => {
      const info = describeExecutor(executor);
      for (const job of jobs.filter(isClientJob)) {
        this.publish({ type: 'request.started', ...ref(job), executor: info, batch: jobs.length, hedge: job.runningOn.size > 1 });
      }
    });
    this.listen(volunteers, 'joined', (executor: VolunteerStatus) => this.onExecutor({ type: 'executor.joined', at: Date.now(), executor }));
    this.listen(volunteers, 'left', (executor: VolunteerStatus, reason: string) =>
      this.onExecutor({ type: 'executor.left', at: Date.now(), executor, reason }),
    );
    this.listen(volunteers, 'quarantined', (executor: VolunteerStatus, reason: string) =>
      this.onExecutor({ type: 'executor.quarantined', at: Date.now(), executor, reason }),
    );
    if (sources.swaps) {
      this.listen(sources.swaps, 'swap', (swap: ModelSwapRecord) => this.publish({ type: 'model.swap', at: new Date().toISOString(), swap, model: hub.model }));
    }
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  /** What a newly connected page needs to draw everything at once. */
  snapshot(): SnapshotEvent {
    return { type: 'snapshot', status: this.sources.status(), history: this.window.history(), recent: [...this.recent], activity: [...this.activity] };
  }

  close(): void {
    clearInterval(this.timer);
    for (const off of this.detach.splice(0)) off();
    this.removeAllListeners();
  }

  private tick(): void {
    const status = this.sources.status();
    const sample = this.window.take(status.queue.depth, status.queue.running);
    const executors: ExecutorStatus[] = [...status.executors, ...status.volunteers];
    this.publish({ type: 'stats', sample, executors, requests: status.requests });
  }

  private onReply(reply: Reply, ids: RequestIds): void {
    const base = { id: ids.id ?? '', request_id: ids.requestId, at: Date.now() };
    if (isErrorReply(reply)) {
      this.window.recordFailure();
      const failed: RequestFailed = { type: 'request.failed', ...base, code: reply.error.code, message: reply.error.message };
      this.remember({ ...base, outcome: reply.error.code });
      this.publish(failed);
      return;
    }
    this.window.recordSuccess(reply.timing.total_ms);
    const best = reply.predictions[0];
    const top1 = { label: best.label, probability: best.probability };
    const finished: RequestFinished = { type: 'request.finished', ...base, executor: reply.executor, timing: reply.timing, top1 };
    this.remember({ ...base, outcome: 'ok', executor: reply.executor, total_ms: reply.timing.total_ms, top1 });
    this.publish(finished);
  }

  private remember(request: RecentRequest): void {
    this.recent.unshift(request);
    if (this.recent.length > RECENT_REQUESTS) this.recent.length = RECENT_REQUESTS;
  }

  private onExecutor(event: ExecutorEvent): void {
    this.activity.unshift(event);
    if (this.activity.length > RECENT_ACTIVITY) this.activity.length = RECENT_ACTIVITY;
    this.publish(event);
  }

  private publish(event: HubEvent): void {
    this.emit('event', event);
  }

  private listen<Args extends unknown[]>(source: Parameters<typeof observe<Args>>[0], name: string, listener: (...args: Args) => void): void {
    this.detach.push(observe(source, name, listener, this.sources.log));
  }
}

function isClientJob(job: Job): boolean {
  return job.purpose === 'request';
}

function ref(job: Job): { id: string; request_id?: string; at: number } {
  return { id: job.id, request_id: job.requestId, at: Date.now() };
}

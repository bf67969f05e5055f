/**
 * The hub's live event stream (`/ws/events`, JSON text frames, server → browser only): the
 * life of each request, executors coming and going, and a statistics sample every second.
 * A new connection first gets a `snapshot`, so a page that opens mid-run draws at once.
 */
import type { ModelSwapEvent } from './model-swap.ts';
import type { ExecutorInfo, Timing } from './classify.ts';
import type { ErrorCode } from './errors.ts';
import type { ExecutorStatus, StatusReport } from './status.ts';

export const EVENTS_PATH = '/ws/events';
/** One statistics sample per this many ms. */
export const STATS_INTERVAL_MS = 1000;
/** Samples kept for charts (ten minutes). */
export const STATS_HISTORY = 600;
/** Requests kept for the "recent requests" list. */
export const RECENT_REQUESTS = 50;
/** Executor events kept for the activity list. */
export const RECENT_ACTIVITY = 30;

/** Which request an event is about: the hub's own id, and the client's `request_id` if it sent one. */
export interface RequestRef {
  id: string;
  request_id?: string;
  /** Epoch ms when the hub emitted the event. */
  at: number;
}

export interface RequestQueued extends RequestRef {
  type: 'request.queued';
  /** Jobs waiting, this one included. */
  queue_depth: number;
}

export interface RequestStarted extends RequestRef {
  type: 'request.started';
  executor: ExecutorInfo;
  /** Images in the batch it runs in. */
  batch: number;
  /** A second executor racing a slow first one (hedging). */
  hedge: boolean;
}

export interface TopLabel {
  label: string;
  probability: number;
}

export interface RequestFinished extends RequestRef {
  type: 'request.finished';
  executor: ExecutorInfo;
  timing: Timing;
  top1: TopLabel;
}

export interface RequestFailed extends RequestRef {
  type: 'request.failed';
  code: ErrorCode;
  message: string;
}

export type RequestEvent = RequestQueued | RequestStarted | RequestFinished | RequestFailed;

export interface ExecutorJoined {
  type: 'executor.joined';
  at: number;
  executor: ExecutorStatus;
}

export interface ExecutorLeft {
  type: 'executor.left';
  at: number;
  executor: ExecutorStatus;
  reason: string;
}

export interface ExecutorQuarantined {
  type: 'executor.quarantined';
  at: number;
  executor: ExecutorStatus;
  reason: string;
}

export type ExecutorEvent = ExecutorJoined | ExecutorLeft | ExecutorQuarantined;

/** One second of traffic. Latencies are end to end (`timing.total_ms`) of the requests answered in it. */
export interface StatsSample {
  at: number;
  /** Requests answered with a result in this interval. */
  completed: number;
  /** Requests answered with an error in this interval. */
  failed: number;
  /** Results per second over the interval. */
  throughput: number;
  queue_depth: number;
  running: number;
  latency_p50_ms: number | null;
  latency_p90_ms: number | null;
  latency_p99_ms: number | null;
}

export interface StatsEvent {
  type: 'stats';
  sample: StatsSample;
  /** Every executor as of now (local workers, then volunteers). */
  executors: ExecutorStatus[];
  /** Replies since start, by outcome (`ok` or an error code). */
  requests: Record<string, number>;
}

/** A request as the "recent requests" list shows it. */
export interface RecentRequest extends RequestRef {
  outcome: 'ok' | ErrorCode;
  executor?: ExecutorInfo;
  total_ms?: number;
  top1?: TopLabel;
}

export interface SnapshotEvent {
  type: 'snapshot';
  status: StatusReport;
  history: StatsSample[];
  recent: RecentRequest[];
  /** The last executor events, newest first. */
  activity: ExecutorEvent[];
}

export type { ModelSwapEvent };

export type HubEvent = RequestEvent | ExecutorEvent | StatsEvent | SnapshotEvent | ModelSwapEvent;

export function isRequestEvent(event: HubEvent): event is RequestEvent {
  return event.type.startsWith('request.');
}

/**
 * The hub's Prometheus metrics (`GET /metrics`): requests by outcome and executor kind, the
 * latency of each stage, batch sizes, the queue, executors by kind and state, volunteers'
 * verifications and quarantines, and the process' own figures (memory, CPU, event loop lag).
 * Each hub has its own registry, so nothing leaks between hubs in one process (tests).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Reply } from '../../shared/protocol/classify.ts';
import { isErrorReply } from '../../shared/protocol/classify.ts';
import { VOLUNTEER_STANDINGS } from '../../shared/protocol/status.ts';
import type { StatusReport } from '../../shared/protocol/status.ts';
import type { Executor } from '../executors/executor.ts';
import type { CurveCounts } from '../front/curve-auth.ts';
import type { DropReason } from '../front/socket-writer.ts';
import type { VolunteerRegistry } from '../volunteers/volunteer-registry.ts';
import type { Hub } from '../hub/hub.ts';
import type { Job } from '../scheduler/job.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { observe } from './observe.ts';
import type { Logger } from '../../lib/log.ts';

export interface MetricsSources {
  hub: Hub;
  scheduler: Scheduler;
  volunteers: VolunteerRegistry;
  status: () => StatusReport;
  log: Logger;
  /** ZeroMQ CURVE handshakes accepted and refused (by reason), when CURVE is on. */
  zmqAuth?: () => CurveCounts | undefined;
  /** ZeroMQ replies dropped because their client was gone or not reading, by reason. */
  zmqDrops?: () => Record<DropReason, number>;
}

/** From a few ms (a local worker's queue wait) to a software-GPU volunteer's tens of seconds. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

export class HubMetrics {
  readonly registry = new Registry();
  private readonly verifications: Counter<'verdict'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const requests = new Counter({
      name: 'resnet_hub_requests_total',
      help: 'Requests answered, by outcome (ok or an error code) and the kind of executor that answered (none: refused before running).',
      labelNames: ['outcome', 'executor_kind'] as const,
      registers,
    });
    const stage = (name: string, help: string, labelNames: readonly string[] = []) =>
      new Histogram({ name, help, labelNames, buckets: SECONDS_BUCKETS, registers });
    const latency = stage('resnet_hub_request_duration_seconds', 'End-to-end time of answered requests, from receipt to reply.', ['executor_kind']);
    const queueTime = stage('resnet_hub_queue_seconds', 'Time a request waited in the queue before an executor took it.', ['executor_kind']);
    const preprocessTime = stage('resnet_hub_preprocess_seconds', 'Time to decode and resize an image.');
    const inferenceTime = stage('resnet_hub_inference_seconds', 'Time of the inference (the whole batch) that answered a request.', ['executor_kind']);
    const batchSize = new Histogram({
      name: 'resnet_hub_batch_size',
      help: 'Images per batch given to an executor.',
      labelNames: ['executor_kind'] as const,
      buckets: BATCH_BUCKETS,
      registers,
    });
    const batchFailures = new Counter({
      name: 'resnet_hub_batch_failures_total',
      help: 'Batches that failed on an executor (their jobs are retried elsewhere).',
      labelNames: ['executor_kind'] as const,
      registers,
    });
    const hedges = new Counter({ name: 'resnet_hub_hedges_total', help: 'Late batches run again on an idle executor.', registers });
    const hedgeRaces = new Counter({
      name: 'resnet_hub_hedge_races_total',
      help: 'Hedge races by the late executor kind and whose answer counted: the original (late) run, the hedge, or neither.',
      labelNames: ['from_kind', 'winner'] as const,
      registers,
    });
    this.verifications = new Counter({
      name: 'resnet_hub_volunteer_verifications_total',
      help: 'Volunteer answers recomputed locally, by verdict.',
      labelNames: ['verdict'] as const,
      registers,
    });
    const volunteerEvents = new Counter({
      name: 'resnet_hub_volunteer_events_total',
      help: 'Volunteer tabs joining, leaving and being quarantined.',
      labelNames: ['event'] as const,
      registers,
    });

    // Series that exist from the start read 0 instead of being absent, so rates and alerts on
    // them work before the first event.
    for (const kind of ['local', 'volunteer']) {
      requests.inc({ outcome: 'ok', executor_kind: kind }, 0);
      batchFailures.inc({ executor_kind: kind }, 0);
    }
    for (const verdict of ['agreed', 'disagreed']) this.verifications.inc({ verdict }, 0);
    for (const event of ['joined', 'left', 'quarantined']) volunteerEvents.inc({ event }, 0);
    for (const winner of ['original', 'hedge', 'neither']) hedgeRaces.inc({ from_kind: 'volunteer', winner }, 0);

    const { hub, scheduler, volunteers, status, log } = sources;
    // The usual "info" pattern: join on it (`* on(instance) group_left(hub_id)`) rather than
    // label every series, so a hub's id can change at bind time without orphaning series.
    new Gauge({
      name: 'resnet_hub_info',
      help: 'Always 1; its hub_id label names this hub (--hub-id), as replies and /api/status do.',
      labelNames: ['hub_id'] as const,
      registers,
      collect() {
        this.reset();
        this.set({ hub_id: hub.identity.id }, 1);
      },
    });
    new Gauge({
      name: 'resnet_hub_queue_depth',
      help: 'Requests accepted and waiting: being decoded or queued for an executor (what --max-queue bounds).',
      registers,
      collect() {
        this.set(hub.waiting);
      },
    });
    new Gauge({
      name: 'resnet_hub_running_jobs',
      help: 'Jobs on an executor now.',
      registers,
      collect() {
        this.set(scheduler.runningJobs);
      },
    });
    new Gauge({
      name: 'resnet_hub_requests_in_flight',
      help: 'Requests accepted and not answered yet.',
      registers,
      collect() {
        this.set(hub.requestsInFlight);
      },
    });
    new Gauge({
      name: 'resnet_hub_executors',
      help: 'Executors by kind and state.',
      labelNames: ['kind', 'state'] as const,
      registers,
      collect() {
        this.reset();
        const report = status();
        for (const executor of [...report.executors, ...report.volunteers]) {
          const state = executor.busy && executor.state !== 'quarantined' ? 'busy' : executor.state;
          this.inc({ kind: executor.kind, state });
        }
      },
    });
    new Gauge({
      name: 'resnet_hub_volunteers',
      help: "Volunteer tabs that said hello, by standing (probation, trusted, backing_off, paused, quarantined).",
      labelNames: ['standing'] as const,
      registers,
      collect() {
        this.reset();
        for (const standing of VOLUNTEER_STANDINGS) this.set({ standing }, 0);
        for (const volunteer of status().volunteers) if (volunteer.standing && volunteer.state !== 'gone') this.inc({ standing: volunteer.standing });
      },
    });

    const { zmqAuth } = sources;
    if (zmqAuth) {
      new Counter({
        name: 'resnet_hub_zmq_auth_total',
        help: 'ZeroMQ CURVE clients accepted, and refused by reason.',
        labelNames: ['result', 'reason'] as const,
        registers,
        collect() {
          const counts = zmqAuth();
          if (!counts) return;
          // The authenticator keeps the totals; the counter mirrors them at each scrape.
          this.reset();
          this.inc({ result: 'accepted', reason: '' }, counts.accepted);
          for (const [reason, count] of Object.entries(counts.refusedByReason)) this.inc({ result: 'refused', reason }, count ?? 0);
        },
      });
    }

    const { zmqDrops } = sources;
    if (zmqDrops) {
      new Counter({
        name: 'resnet_hub_zmq_replies_dropped_total',
        help: 'ZeroMQ replies dropped for one client alone: gone (peer_gone), not reading (peer_full), or the writer queue full.',
        labelNames: ['reason'] as const,
        registers,
        collect() {
          // The front's writer keeps the totals; the counter mirrors them at each scrape.
          this.reset();
          for (const [reason, count] of Object.entries(zmqDrops())) this.inc({ reason }, count);
        },
      });
    }

    observe(hub, 'replied', (reply: Reply) => {
      if (isErrorReply(reply)) {
        requests.inc({ outcome: reply.error.code, executor_kind: 'none' });
        return;
      }
      const kind = reply.executor.kind;
      requests.inc({ outcome: 'ok', executor_kind: kind });
      latency.observe({ executor_kind: kind }, reply.timing.total_ms / 1000);
      queueTime.observe({ executor_kind: kind }, reply.timing.queue_ms / 1000);
      preprocessTime.observe(reply.timing.preprocess_ms / 1000);
      inferenceTime.observe({ executor_kind: kind }, reply.timing.inference_ms / 1000);
    }, log);
    observe(scheduler, 'started', (jobs: Job[], executor: Executor) => batchSize.observe({ executor_kind: executor.kind }, jobs.length), log);
    observe(scheduler, 'batchFailed', (_jobs: Job[], executor: Executor) => batchFailures.inc({ executor_kind: executor.kind }), log);
    observe(scheduler, 'hedged', () => hedges.inc(), log);
    observe(scheduler, 'hedgeSettled', (from: Executor, _to: Executor, winner: string) => hedgeRaces.inc({ from_kind: from.kind, winner }), log);
    observe(volunteers, 'joined', () => volunteerEvents.inc({ event: 'joined' }), log);
    observe(volunteers, 'left', () => volunteerEvents.inc({ event: 'left' }), log);
    observe(volunteers, 'quarantined', () => volunteerEvents.inc({ event: 'quarantined' }), log);
  }

  recordVerification(agreed: boolean): void {
    this.verifications.inc({ verdict: agreed ? 'agreed' : 'disagreed' });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

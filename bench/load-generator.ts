/**
 * A closed-loop load generator over the client library (client/): C callers, each sending one
 * request and waiting for its result before sending the next, through one HubClient that
 * spreads them over one hub or several, as a real program of many callers would.
 *
 * A step has a warm-up (not recorded), a measured window of fixed length, then a drain in
 * which no new request is sent and every outstanding one is waited for (up to the reply
 * timeout). Accounting: a request belongs to the window if it was *sent* in it; sent,
 * answered, errored, lost and the latency percentiles are over those requests, whenever their
 * reply came. Throughput is the successful replies *received* within the window divided by
 * its length, so it is the steady rate and does not depend on how long the drain took.
 */
import { HubClient } from '../client/index.ts';
import { mean, summarize } from '../shared/stats.ts';
import type { Summary } from '../shared/stats.ts';

export interface StepOptions {
  /** One hub's endpoint, or several (a list, or comma-separated). */
  endpoint: string | readonly string[];
  /** Images as base64, used round-robin. */
  payloads: readonly string[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** A request with no matching reply after this long is lost. */
  replyTimeoutMs: number;
  /** Prefix of request ids, unique per step so a stray reply can never be taken for another's. */
  tag: string;
  onPhase?: (phase: StepPhase) => void;
}

export type StepPhase = 'warm-up' | 'measuring' | 'draining';

export interface Outcomes {
  sent: number;
  answered: number;
  errored: number;
  /** Error replies by code (`unparseable` for a reply that is not JSON). */
  errors: Record<string, number>;
  lost: number;
}

export interface StepResult {
  concurrency: number;
  durationS: number;
  measured: Outcomes;
  warmup: Outcomes;
  /** Successful replies received within the window, per second. */
  throughput: number;
  /** Client-side, send to reply, of the window's answered requests. */
  latencyMs: Summary;
  /** Means of the hub's own `timing` over the window's answered requests. */
  serverMs: { queue: number; preprocess: number; inference: number; total: number };
  /** Replies the client dropped: for requests already answered, or not its own (should be 0). */
  mismatched: number;
  drainMs: number;
  /** Results by the hub that answered (its --hub-id); absent in results older than the client library. */
  byHub?: Record<string, number>;
  /** Sends beyond each request's first (another hub after a refusal, a drop or a silence). */
  resends?: number;
}

/** Per client, so even an absurdly fast hub cannot make a step run away. */
const MAX_REQUESTS_PER_CLIENT = 1_000_000;

interface Recorder {
  windowStart: number;
  windowEnd: number;
  measured: Outcomes;
  warmup: Outcomes;
  inWindow: number;
  latencies: number[];
  server: { queue: number[]; preprocess: number[]; inference: number[]; total: number[] };
  byHub: Record<string, number>;
}

export async function runStep(options: StepOptions): Promise<StepResult> {
  const started = performance.now();
  const recorder: Recorder = {
    windowStart: started + options.warmupMs,
    windowEnd: started + options.warmupMs + options.durationMs,
    measured: emptyOutcomes(),
    warmup: emptyOutcomes(),
    inWindow: 0,
    latencies: [],
    server: { queue: [], preprocess: [], inference: [], total: [] },
    byHub: {},
  };
  // No per-try resend: a bench measures hubs, and a slow reply must not be sent twice.
  const client = new HubClient({ endpoints: options.endpoint, deadlineMs: options.replyTimeoutMs, perTryTimeoutMs: options.replyTimeoutMs });
  await client.ready(options.replyTimeoutMs);
  options.onPhase?.('warm-up');
  const phaseTimers = [
    setTimeout(() => options.onPhase?.('measuring'), options.warmupMs),
    setTimeout(() => options.onPhase?.('draining'), options.warmupMs + options.durationMs),
  ];
  try {
    await Promise.all(Array.from({ length: options.concurrency }, (_, lane) => runLane(lane, client, options, recorder)));
  } finally {
    for (const timer of phaseTimers) clearTimeout(timer);
  }
  const stats = client.stats();
  await client.close();
  const { measured, warmup, server } = recorder;
  return {
    concurrency: options.concurrency,
    durationS: options.durationMs / 1000,
    measured,
    warmup,
    throughput: recorder.inWindow / (options.durationMs / 1000),
    latencyMs: summarize(recorder.latencies),
    serverMs: { queue: mean(server.queue), preprocess: mean(server.preprocess), inference: mean(server.inference), total: mean(server.total) },
    mismatched: stats.hubs.reduce((sum, hub) => sum + hub.dropped, 0),
    drainMs: Math.max(0, performance.now() - recorder.windowEnd),
    byHub: recorder.byHub,
    resends: stats.resends,
  };
}

async function runLane(lane: number, client: HubClient, options: StepOptions, recorder: Recorder): Promise<void> {
  for (let seq = 0; seq < MAX_REQUESTS_PER_CLIENT; seq++) {
    const sentAt = performance.now();
    if (sentAt >= recorder.windowEnd) return;
    const outcomes = sentAt >= recorder.windowStart ? recorder.measured : recorder.warmup;
    outcomes.sent++;
    const payload = options.payloads[(lane + seq) % options.payloads.length];
    const result = await client.classify(payload, { requestId: `${options.tag}-${lane}-${seq}` });
    const doneAt = performance.now();
    if (!result.ok) {
      // No hub's answer by the deadline: lost. A hub's error reply: errored, by its code.
      if (!result.reply) {
        outcomes.lost++;
        continue;
      }
      outcomes.errored++;
      outcomes.errors[result.error.code] = (outcomes.errors[result.error.code] ?? 0) + 1;
      continue;
    }
    const { reply } = result;
    outcomes.answered++;
    if (doneAt >= recorder.windowStart && doneAt <= recorder.windowEnd) recorder.inWindow++;
    if (outcomes === recorder.measured) {
      recorder.latencies.push(doneAt - sentAt);
      recorder.server.queue.push(reply.timing.queue_ms);
      recorder.server.preprocess.push(reply.timing.preprocess_ms);
      recorder.server.inference.push(reply.timing.inference_ms);
      recorder.server.total.push(reply.timing.total_ms);
      const hubId = reply.hub?.id ?? result.endpoint ?? 'unknown';
      recorder.byHub[hubId] = (recorder.byHub[hubId] ?? 0) + 1;
    }
  }
}

function emptyOutcomes(): Outcomes {
  return { sent: 0, answered: 0, errored: 0, errors: {}, lost: 0 };
}

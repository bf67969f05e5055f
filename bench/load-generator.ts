/**
 * A closed-loop ZeroMQ load generator: C DEALER sockets, as the seed's clients are, each
 * sending one request and waiting for its reply before sending the next.
 *
 * A step has a warm-up (not recorded), a measured window of fixed length, then a drain in
 * which no new request is sent and every outstanding one is waited for (up to the reply
 * timeout). Accounting: a request belongs to the window if it was *sent* in it; sent,
 * answered, errored, lost and the latency percentiles are over those requests, whenever their
 * reply came. Throughput is the successful replies *received* within the window divided by
 * its length, so it is the steady rate and does not depend on how long the drain took.
 */
import * as zmq from 'zeromq';
import type { Reply } from '../shared/protocol/classify.ts';
import { mean, summarize } from '../shared/stats.ts';
import type { Summary } from '../shared/stats.ts';

export interface StepOptions {
  endpoint: string;
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
  /** Replies whose request_id matched no request waited for (should be 0). */
  mismatched: number;
  drainMs: number;
}

/** Per client, so even an absurdly fast hub cannot make a step run away. */
const MAX_REQUESTS_PER_CLIENT = 1_000_000;
/** Stray replies one wait will skip before calling the request lost. */
const MAX_STRAY_REPLIES = 100;

interface Recorder {
  windowStart: number;
  windowEnd: number;
  measured: Outcomes;
  warmup: Outcomes;
  inWindow: number;
  latencies: number[];
  server: { queue: number[]; preprocess: number[]; inference: number[]; total: number[] };
  mismatched: number;
}

export async function runStep(options: StepOptions): Promise<StepResult> {
  const payloadPrefixes = options.payloads.map((base64) => `{"payload":${JSON.stringify(base64)},"request_id":`);
  const started = performance.now();
  const recorder: Recorder = {
    windowStart: started + options.warmupMs,
    windowEnd: started + options.warmupMs + options.durationMs,
    measured: emptyOutcomes(),
    warmup: emptyOutcomes(),
    inWindow: 0,
    latencies: [],
    server: { queue: [], preprocess: [], inference: [], total: [] },
    mismatched: 0,
  };
  options.onPhase?.('warm-up');
  const phaseTimers = [
    setTimeout(() => options.onPhase?.('measuring'), options.warmupMs),
    setTimeout(() => options.onPhase?.('draining'), options.warmupMs + options.durationMs),
  ];
  try {
    await Promise.all(
      Array.from({ length: options.concurrency }, (_, client) => runClient(client, options, payloadPrefixes, recorder)),
    );
  } finally {
    for (const timer of phaseTimers) clearTimeout(timer);
  }
  const { measured, warmup, server } = recorder;
  return {
    concurrency: options.concurrency,
    durationS: options.durationMs / 1000,
    measured,
    warmup,
    throughput: recorder.inWindow / (options.durationMs / 1000),
    latencyMs: summarize(recorder.latencies),
    serverMs: { queue: mean(server.queue), preprocess: mean(server.preprocess), inference: mean(server.inference), total: mean(server.total) },
    mismatched: recorder.mismatched,
    drainMs: Math.max(0, performance.now() - recorder.windowEnd),
  };
}

async function runClient(client: number, options: StepOptions, prefixes: readonly string[], recorder: Recorder): Promise<void> {
  let socket = openSocket(options);
  try {
    for (let seq = 0; seq < MAX_REQUESTS_PER_CLIENT; seq++) {
      const sentAt = performance.now();
      if (sentAt >= recorder.windowEnd) return;
      const outcomes = sentAt >= recorder.windowStart ? recorder.measured : recorder.warmup;
      const requestId = `${options.tag}-${client}-${seq}`;
      outcomes.sent++;
      const frame = prefixes[(client + seq) % prefixes.length] + JSON.stringify(requestId) + '}';
      const reply = await exchange(socket, frame, requestId, options.replyTimeoutMs, recorder);
      const doneAt = performance.now();
      if (reply === 'lost') {
        outcomes.lost++;
        // A late reply to the lost request must not meet the next one: start afresh.
        socket.close();
        socket = openSocket(options);
        continue;
      }
      if (reply === 'unparseable' || 'error' in reply) {
        const code = reply === 'unparseable' ? 'unparseable' : reply.error.code;
        outcomes.errored++;
        outcomes.errors[code] = (outcomes.errors[code] ?? 0) + 1;
        continue;
      }
      outcomes.answered++;
      if (doneAt >= recorder.windowStart && doneAt <= recorder.windowEnd) recorder.inWindow++;
      if (outcomes === recorder.measured) {
        recorder.latencies.push(doneAt - sentAt);
        recorder.server.queue.push(reply.timing.queue_ms);
        recorder.server.preprocess.push(reply.timing.preprocess_ms);
        recorder.server.inference.push(reply.timing.inference_ms);
        recorder.server.total.push(reply.timing.total_ms);
      }
    }
  } finally {
    socket.close();
  }
}

function openSocket(options: StepOptions): zmq.Dealer {
  const socket = new zmq.Dealer({ linger: 0, sendTimeout: options.replyTimeoutMs });
  socket.connect(options.endpoint);
  return socket;
}

/** Sends one request and waits for the reply carrying its request_id; 'lost' if none in time. */
async function exchange(
  socket: zmq.Dealer,
  frame: string,
  requestId: string,
  timeoutMs: number,
  recorder: Recorder,
): Promise<Reply | 'unparseable' | 'lost'> {
  const deadline = performance.now() + timeoutMs;
  try {
    await socket.send(frame);
    for (let stray = 0; stray <= MAX_STRAY_REPLIES; stray++) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) return 'lost';
      socket.receiveTimeout = Math.ceil(remaining);
      const frames = await socket.receive();
      let reply: Reply;
      try {
        reply = JSON.parse(frames[frames.length - 1].toString()) as Reply;
      } catch {
        // Unparseable, so its request_id is unknown; as only one request is outstanding it is ours.
        return 'unparseable';
      }
      if (reply.request_id === requestId) return reply;
      recorder.mismatched++;
    }
    return 'lost';
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === 'EAGAIN') return 'lost';
    throw error;
  }
}

function emptyOutcomes(): Outcomes {
  return { sent: 0, answered: 0, errored: 0, errors: {}, lost: 0 };
}

/**
 * Closed-loop clients: each sends one request, waits for its reply (or gives it up as lost
 * after the reply timeout), then sends the next, until told to stop; then it still waits for
 * the reply it is owed, which is what checks the hub's drain on SIGTERM.
 *
 * ZeroMQ clients are DEALER sockets as the seed's clients are; the socket is kept after a
 * timeout, so a reply that comes after all is counted as late rather than silently dropped.
 */
import * as zmq from 'zeromq';
import type { Reply } from '../../shared/protocol/classify.ts';
import type { Ledger, SettledReply } from './ledger.ts';
import type { Random } from '../../kit/random.ts';
import type { RequestMix } from './requests.ts';

export interface ClientContext {
  ledger: Ledger;
  mix: RequestMix;
  random: Random;
  replyTimeoutMs: number;
  /** False once the soak stops sending (the request in flight is still waited for). */
  sending: () => boolean;
  /** Aborted once the hub has exited: no reply can come any more, stop waiting for one. */
  abandon: AbortSignal;
  /** Request ids are `${tag}-…`, unique across runs too. */
  tag: string;
}

const RECEIVE_SLICE_MS = 500;
const UNANSWERED = 'no reply before the hub exited';

export async function runZmqClient(endpoint: string, index: number, context: ClientContext): Promise<void> {
  const { ledger, mix, random, replyTimeoutMs } = context;
  const socket = new zmq.Dealer({ linger: 0, sendTimeout: replyTimeoutMs });
  socket.connect(endpoint);
  try {
    for (let seq = 0; context.sending(); seq++) {
      const id = `${context.tag}-z${index}-${seq}`;
      const request = mix.zmq(id, random);
      ledger.begin(id, request);
      const deadline = performance.now() + replyTimeoutMs;
      try {
        await socket.send(request.frames);
      } catch (error) {
        ledger.lose(id, `send failed: ${describe(error)}`);
        continue;
      }
      for (;;) {
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          ledger.lose(id, 'timeout');
          break;
        }
        if (context.abandon.aborted) {
          ledger.lose(id, UNANSWERED);
          break;
        }
        // In slices, so that a hub that has exited is noticed without waiting out the timeout.
        socket.receiveTimeout = Math.ceil(Math.min(remaining, RECEIVE_SLICE_MS));
        let frames: Buffer[];
        try {
          frames = await socket.receive();
        } catch (error) {
          if (isTimeout(error)) continue;
          ledger.lose(id, `receive failed: ${describe(error)}`);
          break;
        }
        const reply = settledFrom(frames[frames.length - 1].toString());
        // One request in flight per socket: a reply without an id (unreadable JSON) is this one's.
        if (reply.requestId !== undefined && reply.requestId !== id) {
          ledger.settle(reply.requestId, reply);
          continue;
        }
        ledger.settle(id, reply);
        break;
      }
    }
  } finally {
    socket.close();
  }
}

export async function runHttpClient(baseUrl: string, index: number, context: ClientContext & { apiToken?: string }): Promise<void> {
  const { ledger, mix, random, replyTimeoutMs } = context;
  const auth: Record<string, string> = context.apiToken ? { Authorization: `Bearer ${context.apiToken}` } : {};
  for (let seq = 0; context.sending(); seq++) {
    const id = `${context.tag}-h${index}-${seq}`;
    const request = mix.http(id, random);
    ledger.begin(id, request);
    let status: number;
    let text: string;
    try {
      const response = await fetch(baseUrl + request.path, {
        method: 'POST',
        headers: { ...auth, ...request.headers },
        body: request.body,
        signal: AbortSignal.any([AbortSignal.timeout(replyTimeoutMs), context.abandon]),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      ledger.lose(id, context.abandon.aborted ? UNANSWERED : isTimeout(error) ? 'timeout' : `HTTP failed: ${describe(error)}`);
      continue;
    }
    const reply = settledFrom(text);
    ledger.settle(id, { ...reply, status });
  }
}

function settledFrom(text: string): SettledReply {
  let reply: Reply;
  try {
    reply = JSON.parse(text) as Reply;
  } catch {
    return { outcome: 'unparseable', message: text.slice(0, 200) };
  }
  const requestId = typeof reply.request_id === 'string' ? reply.request_id : undefined;
  if ('error' in reply) return { outcome: String(reply.error?.code), requestId, message: reply.error?.message };
  return { outcome: 'ok', requestId, executor: reply.executor };
}

function isTimeout(error: unknown): boolean {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  return code === 'EAGAIN' || name === 'TimeoutError';
}

/** The root cause's code or message: fetch wraps socket errors in a generic "fetch failed". */
function describe(error: unknown): string {
  let current: unknown = error;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  const { code } = (current ?? {}) as { code?: unknown };
  const message = current instanceof Error ? current.message : String(current);
  return typeof code === 'string' ? `${code} (${message})` : message;
}

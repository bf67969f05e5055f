/**
 * Sends fuzz cases to the hub and accounts for every reply.
 *
 * A DEALER lane keeps up to `window` messages in flight on one socket. Replies are matched to
 * messages by the request_id they must echo; messages that carry none (garbage frames, an id
 * the hub cannot read) go one at a time, so a reply without an id answers the one such message
 * in flight. A reply that matches nothing is a stray: a second reply, or one for the wrong
 * message. A message still unanswered when the lane drains is missing.
 *
 * The HTTP lane posts images to /api/classify with a few requests in flight.
 */
import * as zmq from 'zeromq';
import { ERROR_CODES } from '../../../shared/protocol/errors.ts';
import { LOAD_OUTCOMES } from './cases.ts';
import type { Outcome } from './cases.ts';

export type Channel = 'message' | 'image-zmq' | 'image-http';

export interface Sendable {
  /** Global index of the case in the run, and what it is, for failure reports. */
  index: number;
  kind: string;
  describe: string;
  channel: Channel;
  expect: readonly Outcome[];
}

export interface ZmqSendable extends Sendable {
  frames: Buffer[];
  route: Buffer[];
  requestId: string | undefined;
}

export interface Result {
  case: Sendable;
  lane: string;
  outcome: Outcome | undefined;
  ms: number;
  status?: number;
  problems: string[];
}

interface Pending {
  item: ZmqSendable;
  sentAt: number;
}

const SEED_PREDS = /^[^,]+ : [0-9.e-]+, [^,]+ : [0-9.e-]+, [^,]+ : [0-9.e-]+$/;

/** What is wrong with a parsed reply body: the shape the README documents, the echoed id, an expected outcome. */
export function checkReplyBody(body: unknown, expect: readonly Outcome[], requestId: string | undefined): { outcome: Outcome | undefined; problems: string[] } {
  const problems: string[] = [];
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { outcome: undefined, problems: ['reply is not a JSON object'] };
  const reply = body as Record<string, unknown>;
  let outcome: Outcome | undefined;
  if ('error' in reply) {
    const error = reply.error as Record<string, unknown> | null;
    if (typeof error !== 'object' || error === null) problems.push('error is not an object');
    else {
      if (!(ERROR_CODES as readonly unknown[]).includes(error.code)) problems.push(`unknown error code ${JSON.stringify(error.code)}`);
      else outcome = error.code as Outcome;
      if (typeof error.message !== 'string' || error.message.length === 0) problems.push('error without a message');
    }
    const extra = Object.keys(reply).filter((key) => key !== 'error' && key !== 'request_id' && key !== 'hub');
    if (extra.length > 0) problems.push(`error reply with extra keys ${extra.join(',')}`);
  } else {
    outcome = 'ok';
    if (typeof reply.preds !== 'string' || !SEED_PREDS.test(reply.preds)) problems.push(`preds not in the seed's format: ${JSON.stringify(reply.preds)}`);
    const predictions = reply.predictions;
    if (!Array.isArray(predictions) || predictions.length < 1 || predictions.length > 20) problems.push('predictions is not a list of 1 to 20');
    else {
      for (const p of predictions as Array<Record<string, unknown>>) {
        if (typeof p.label !== 'string' || typeof p.probability !== 'number' || !(p.probability >= 0 && p.probability <= 1)) {
          problems.push(`bad prediction ${JSON.stringify(p)}`);
          break;
        }
      }
    }
    for (const key of ['executor', 'model', 'timing']) if (typeof reply[key] !== 'object' || reply[key] === null) problems.push(`success without ${key}`);
  }
  if (reply.request_id !== requestId) {
    problems.push(`request_id ${JSON.stringify(reply.request_id)}, expected ${JSON.stringify(requestId)}`);
  }
  if (outcome !== undefined && !expect.includes(outcome) && !LOAD_OUTCOMES.includes(outcome)) {
    problems.push(`outcome ${outcome}, expected one of ${expect.join('|')}`);
  }
  return { outcome, problems };
}

export class DealerLane {
  readonly results: Result[] = [];
  /** Replies that answered no message in flight. */
  readonly strays: string[] = [];
  private readonly socket: zmq.Dealer;
  private readonly byId = new Map<string, Pending>();
  private anonymous: Pending | undefined;
  private waiters: Array<() => void> = [];
  private readonly receiving: Promise<void>;

  constructor(
    readonly name: string,
    endpoint: string,
    private readonly window: number,
  ) {
    // No high-water mark: the window bounds what is queued, and nothing may be dropped.
    this.socket = new zmq.Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
    this.socket.connect(endpoint);
    this.receiving = this.receiveLoop();
  }

  get inFlight(): number {
    return this.byId.size + (this.anonymous ? 1 : 0);
  }

  async send(item: ZmqSendable): Promise<void> {
    while (this.inFlight >= this.window || (item.requestId === undefined ? this.anonymous !== undefined : this.byId.has(item.requestId))) {
      await this.changed();
    }
    const pending: Pending = { item, sentAt: performance.now() };
    if (item.requestId === undefined) this.anonymous = pending;
    else this.byId.set(item.requestId, pending);
    await this.socket.send(item.frames);
  }

  /** Waits for every reply, up to `timeoutMs`; what is still unanswered then is recorded as missing. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.inFlight > 0 && performance.now() < deadline) {
      await Promise.race([this.changed(), new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    for (const pending of [...this.byId.values(), ...(this.anonymous ? [this.anonymous] : [])]) {
      this.results.push({
        case: pending.item,
        lane: this.name,
        outcome: undefined,
        ms: performance.now() - pending.sentAt,
        problems: [`no reply after ${Math.round(performance.now() - pending.sentAt)} ms`],
      });
    }
    this.byId.clear();
    this.anonymous = undefined;
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.receiving;
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onReply(frames);
    } catch (error) {
      if (!this.socket.closed) this.strays.push(`receive failed: ${String(error)}`);
    }
  }

  private onReply(frames: Buffer[]): void {
    const at = performance.now();
    const last = frames[frames.length - 1];
    let body: unknown;
    try {
      body = JSON.parse(last.toString('utf8'));
    } catch {
      this.strays.push(`reply is not JSON: ${last.toString('utf8').slice(0, 200)}`);
      return;
    }
    const id = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).request_id : undefined;
    let pending: Pending | undefined;
    if (typeof id === 'string') {
      pending = this.byId.get(id);
      if (pending) this.byId.delete(id);
    } else if (id === undefined) {
      pending = this.anonymous;
      this.anonymous = undefined;
    }
    if (!pending) {
      this.strays.push(`reply matching no message in flight: ${last.toString('utf8').slice(0, 300)}`);
      return;
    }
    const { item } = pending;
    const { outcome, problems } = checkReplyBody(body, item.expect, item.requestId);
    const route = frames.slice(0, -1);
    if (route.length !== item.route.length || route.some((frame, i) => !frame.equals(item.route[i]))) {
      problems.push(`reply envelope of ${route.length} frames, expected the ${item.route.length} sent`);
    }
    this.results.push({ case: item, lane: this.name, outcome, ms: at - pending.sentAt, problems });
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** Runs `worker` over `items` with at most `concurrency` at a time. */
export async function pool<T>(items: readonly T[], concurrency: number, worker: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await worker(items[next++]);
    }),
  );
}

/** README's HTTP API: errors with 400/413/415/422/503/504, by code. */
export const HTTP_STATUS: Record<string, number> = {
  invalid_json: 400,
  invalid_request: 400,
  invalid_frames: 400,
  invalid_base64: 400,
  invalid_top: 400,
  payload_too_large: 413,
  too_many_pixels: 413,
  unsupported_image: 415,
  corrupt_image: 422,
  not_ready: 503,
  overloaded: 503,
  shutting_down: 503,
  timeout: 504,
};

export interface HttpSendable extends Sendable {
  body: Buffer;
  contentType: string;
  multipart: boolean;
  requestId: string;
}

export async function postImage(base: string, item: HttpSendable, timeoutMs: number): Promise<Result> {
  const started = performance.now();
  const url = `${base}/api/classify?request_id=${encodeURIComponent(item.requestId)}`;
  let body: BodyInit;
  const headers: Record<string, string> = {};
  if (item.multipart) {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(item.body)], { type: item.contentType }), 'upload.bin');
    body = form;
  } else {
    body = new Uint8Array(item.body);
    headers['content-type'] = item.contentType;
  }
  try {
    const response = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    const ms = performance.now() - started;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { case: item, lane: 'http', outcome: undefined, ms, status: response.status, problems: [`HTTP ${response.status} body is not JSON: ${text.slice(0, 200)}`] };
    }
    const { outcome, problems } = checkReplyBody(parsed, item.expect, item.requestId);
    const wanted = outcome === 'ok' ? 200 : outcome === undefined ? undefined : HTTP_STATUS[outcome];
    if (wanted === undefined || response.status !== wanted) problems.push(`HTTP ${response.status} for ${outcome ?? 'no outcome'}, expected ${wanted ?? '200/4xx/503/504'}`);
    if (!(response.headers.get('content-type') ?? '').startsWith('application/json')) problems.push(`content-type ${response.headers.get('content-type')}`);
    return { case: item, lane: 'http', outcome, ms, status: response.status, problems };
  } catch (error) {
    return { case: item, lane: 'http', outcome: undefined, ms: performance.now() - started, problems: [`request failed: ${String(error)}`] };
  }
}

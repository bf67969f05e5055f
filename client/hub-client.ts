/**
 * A client of several hubs (the ZeroMQ guide's "Freelance" pattern, with "Lazy Pirate"
 * resends): each request goes to the available hub with the fewest outstanding; an
 * `overloaded`, `shutting_down` or `not_ready` answer, a dropped connection, or silence past
 * the per-try timeout sends it to another hub, until the request's own deadline. Every send
 * carries an id of the client's own, so replies are matched whatever hub they come from; the
 * first final answer is handed to the caller and any later one dropped. The wire format is
 * the seed's (one JSON frame on a DEALER): hubs need nothing new to serve it.
 */
import { randomBytes } from 'node:crypto';
import type { ClassifyReply, ErrorReply, Reply } from '../shared/protocol/classify.ts';
import { checkEndpoint, splitEndpoints, systemResolver } from './endpoints.ts';
import type { HubConnection } from './hub-connection.ts';
import { HubSet } from './hub-set.ts';
import { HubPicker } from './pick-hub.ts';
import { RETRYABLE_CODES } from './types.ts';
import type { ClassifyOptions, ClassifyResult, ClientStats, HubClientOptions, RetryableCode } from './types.ts';

const DEFAULTS = {
  resolveIntervalMs: 5000,
  deadlineMs: 60_000,
  perTryTimeoutMs: 10_000,
  overloadBackoffMs: 100,
  notReadyBackoffMs: 500,
  heartbeatMs: 2000,
};
/** The hub refuses a deadline_ms above this (see ClassifyRequestSchema). */
const MAX_WIRE_DEADLINE_MS = 3_600_000;
/** How soon requests waiting for a hub look again when nothing else wakes them. */
const WAIT_POLL_MS = 50;
/** After EAGAIN on a hub that looked connected (its drop not reported yet), leave it alone this long. */
const SEND_FAILURE_COOL_MS = 50;

interface Pending {
  seq: number;
  /** The request's JSON without its closing brace: each send appends its own id and deadline. */
  head: string;
  callerId: string | undefined;
  startedAt: number;
  deadlineAt: number;
  sends: number;
  /** Wire id → the hub it was sent to, for sends not answered yet. */
  live: Map<string, HubConnection>;
  avoid: Set<HubConnection>;
  /** Hubs that refused this request (overloaded, not ready, stopping). */
  refusedBy: Set<HubConnection>;
  lastRefusal?: { reply: ErrorReply; endpoint: string };
  tryTimer?: NodeJS.Timeout;
  deadlineTimer: NodeJS.Timeout;
  resolve: (result: ClassifyResult) => void;
  settled: boolean;
}

export class HubClient {
  private readonly settings: typeof DEFAULTS;
  private readonly hubSet: HubSet;
  private readonly started: Promise<void>;
  private readonly picker = new HubPicker();
  /** Wire id → its request, for every send not answered yet. */
  private readonly bySendId = new Map<string, Pending>();
  private readonly waiting = new Set<Pending>();
  private waitTimer: NodeJS.Timeout | undefined;
  /** Distinguishes this client's ids from any other's sharing a hub. */
  private readonly tag = randomBytes(4).toString('hex');
  private seq = 0;
  private closed = false;
  private readonly totals = { requests: 0, results: 0, errors: 0, resends: 0 };

  constructor(options: HubClientOptions) {
    const endpoints = splitEndpoints(options.endpoints);
    if (endpoints.length === 0) throw new Error('no hub endpoint given');
    for (const endpoint of endpoints) checkEndpoint(endpoint);
    this.settings = {
      resolveIntervalMs: options.resolveIntervalMs ?? DEFAULTS.resolveIntervalMs,
      deadlineMs: options.deadlineMs ?? DEFAULTS.deadlineMs,
      perTryTimeoutMs: options.perTryTimeoutMs ?? DEFAULTS.perTryTimeoutMs,
      overloadBackoffMs: options.overloadBackoffMs ?? DEFAULTS.overloadBackoffMs,
      notReadyBackoffMs: options.notReadyBackoffMs ?? DEFAULTS.notReadyBackoffMs,
      heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
    };
    this.hubSet = new HubSet({
      endpoints,
      resolver: options.resolver ?? systemResolver,
      resolveIntervalMs: this.settings.resolveIntervalMs,
      connection: { heartbeatMs: this.settings.heartbeatMs, curve: options.curve },
      events: {
        message: (hub, body) => this.onMessage(hub, body),
        up: () => this.wakeWaiting(),
        down: (hub) => this.onDown(hub),
      },
    });
    this.started = this.hubSet.start();
    // A failed first resolution surfaces as requests that find no hub, not as a crash.
    this.started.catch(() => undefined);
  }

  /** Resolves once at least one hub is connected (or rejects after `timeoutMs`). */
  async ready(timeoutMs = this.settings.deadlineMs): Promise<void> {
    await this.started;
    const giveUpAt = performance.now() + timeoutMs;
    while (!this.hubSet.list().some((hub) => hub.connected)) {
      if (this.closed) throw new Error('the client is closed');
      if (performance.now() >= giveUpAt) throw new Error(`no hub reachable within ${timeoutMs} ms${this.resolveNote()}`);
      await sleep(WAIT_POLL_MS);
    }
  }

  /** Classifies one image (its bytes, or base64): a result, or an error with its code. Never rejects. */
  async classify(image: Uint8Array | string, options: ClassifyOptions = {}): Promise<ClassifyResult> {
    const startedAt = performance.now();
    const payload = typeof image === 'string' ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString('base64');
    const body: Record<string, unknown> = { payload };
    if (options.top !== undefined) body.top = options.top;
    if (options.offload !== undefined) body.offload = options.offload;
    const deadlineMs = options.deadlineMs ?? this.settings.deadlineMs;
    this.totals.requests++;
    if (this.closed) return this.closedResult(startedAt);
    await this.started.catch(() => undefined);
    return new Promise<ClassifyResult>((resolve) => {
      const pending: Pending = {
        seq: ++this.seq,
        head: JSON.stringify(body).slice(0, -1),
        callerId: options.requestId,
        startedAt,
        deadlineAt: startedAt + deadlineMs,
        sends: 0,
        live: new Map(),
        avoid: new Set(),
        refusedBy: new Set(),
        deadlineTimer: setTimeout(() => this.expire(pending), Math.max(0, startedAt + deadlineMs - performance.now())),
        resolve,
        settled: false,
      };
      this.dispatch(pending);
    });
  }

  stats(): ClientStats {
    return { ...this.totals, waiting: this.waiting.size, hubs: this.hubSet.list().map((hub) => hub.stats()) };
  }

  /** Resolves the configured names now instead of at the next interval. */
  refresh(): Promise<void> {
    return this.hubSet.refresh();
  }

  /** Answers every request still open with `closed`, and closes every socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.waitTimer);
    const open = new Set([...this.bySendId.values(), ...this.waiting]);
    for (const pending of open) this.settle(pending, this.closedResult(pending.startedAt, pending.sends));
    await this.started.catch(() => undefined);
    await this.hubSet.close();
  }

  /** Sends the request to the best hub now, or parks it until one is available. */
  private dispatch(pending: Pending): void {
    if (pending.settled || this.closed) return;
    const now = performance.now();
    const remaining = pending.deadlineAt - now;
    if (remaining <= 0) return this.expire(pending);
    const hub = this.picker.pick(this.hubSet.list(), { now, avoid: pending.avoid, busyWith: new Set(pending.live.values()) });
    if (!hub) {
      // With a send still live elsewhere there is no need to wait for a hub: that send may answer.
      if (pending.live.size === 0) this.park(pending);
      return;
    }
    this.waiting.delete(pending);
    pending.sends++;
    if (pending.sends > 1) this.totals.resends++;
    const sendId = `${this.tag}.${pending.seq}.${pending.sends}`;
    pending.live.set(sendId, hub);
    hub.live.add(sendId);
    this.bySendId.set(sendId, pending);
    const wireDeadline = Math.min(MAX_WIRE_DEADLINE_MS, Math.max(1, Math.floor(remaining)));
    const frame = `${pending.head},"request_id":${JSON.stringify(sendId)},"deadline_ms":${wireDeadline}}`;
    const unsent = () => {
      // Not connected after all (its drop is not reported yet), or closing: elsewhere, at once.
      hub.coolUntil = performance.now() + SEND_FAILURE_COOL_MS;
      if (pending.sends > 1) this.totals.resends--;
      pending.sends--;
      this.release(sendId);
      this.dispatch(pending);
    };
    void hub.send(frame).then((queued) => queued || unsent(), unsent);
    clearTimeout(pending.tryTimer);
    pending.tryTimer = setTimeout(() => this.onSilence(pending, hub), Math.min(this.settings.perTryTimeoutMs, remaining));
  }

  private onMessage(hub: HubConnection, body: Buffer): void {
    let reply: Reply;
    try {
      reply = JSON.parse(body.toString('utf8')) as Reply;
    } catch {
      hub.counts.dropped++;
      return;
    }
    const sendId = reply.request_id;
    const pending = sendId === undefined ? undefined : this.bySendId.get(sendId);
    if (reply.hub?.id !== undefined) hub.hubId = reply.hub.id;
    if (!pending || sendId === undefined) {
      // An answer to a request already answered by another hub, or to none of ours.
      hub.counts.dropped++;
      return;
    }
    this.release(sendId);
    if (!('error' in reply)) {
      hub.counts.results++;
      return this.settle(pending, this.outcome(pending, hub, { ok: true, reply: this.withCallerId(reply, pending) }));
    }
    const code = reply.error.code;
    if ((RETRYABLE_CODES as readonly string[]).includes(code)) {
      hub.refusals[code] = (hub.refusals[code] ?? 0) + 1;
      this.noteRefusal(hub, code as RetryableCode);
      pending.avoid.add(hub);
      pending.refusedBy.add(hub);
      pending.lastRefusal = { reply: this.withCallerId(reply, pending), endpoint: hub.endpoint };
      if (pending.live.size === 0) this.dispatch(pending);
      return;
    }
    hub.errors[code] = (hub.errors[code] ?? 0) + 1;
    const final = this.withCallerId(reply, pending);
    this.settle(pending, this.outcome(pending, hub, { ok: false, error: final.error, reply: final }));
  }

  private noteRefusal(hub: HubConnection, code: RetryableCode): void {
    const now = performance.now();
    if (code === 'shutting_down') hub.mode = hub.mode === 'retired' ? 'retired' : 'draining';
    else if (code === 'overloaded') hub.coolUntil = now + this.settings.overloadBackoffMs;
    else hub.coolUntil = now + this.settings.notReadyBackoffMs;
  }

  /** Silence past the per-try timeout: the send stays live (its answer is still welcome), and another hub gets it too. */
  private onSilence(pending: Pending, hub: HubConnection): void {
    if (pending.settled) return;
    hub.counts.silences++;
    pending.avoid.add(hub);
    const sendsBefore = pending.sends;
    this.dispatch(pending);
    const remaining = pending.deadlineAt - performance.now();
    if (pending.sends === sendsBefore && !pending.settled && remaining > 0) {
      // No other hub could take it: keep waiting on the silent one, which may still answer.
      pending.tryTimer = setTimeout(() => this.onSilence(pending, hub), Math.min(this.settings.perTryTimeoutMs, remaining));
    }
  }

  /** A dropped connection answers nothing it was sent: every such request goes elsewhere now. */
  private onDown(hub: HubConnection): void {
    const orphans = new Set<Pending>();
    for (const sendId of [...hub.live]) {
      const pending = this.bySendId.get(sendId);
      this.release(sendId);
      if (pending) orphans.add(pending);
    }
    for (const pending of orphans) {
      pending.avoid.add(hub);
      if (pending.live.size === 0) this.dispatch(pending);
    }
  }

  private release(sendId: string): void {
    const pending = this.bySendId.get(sendId);
    this.bySendId.delete(sendId);
    const hub = pending?.live.get(sendId);
    pending?.live.delete(sendId);
    if (hub) {
      hub.live.delete(sendId);
      this.hubSet.closeIfIdle(hub);
    }
    // A freed slot can change which hub has the fewest outstanding; waiting requests look again.
    if (this.waiting.size > 0) this.wakeWaiting();
  }

  private park(pending: Pending): void {
    this.waiting.add(pending);
    if (this.waitTimer) return;
    this.waitTimer = setTimeout(() => {
      this.waitTimer = undefined;
      this.wakeWaiting();
    }, WAIT_POLL_MS);
  }

  private wakeWaiting(): void {
    for (const pending of [...this.waiting]) {
      this.waiting.delete(pending);
      this.dispatch(pending);
    }
  }

  private expire(pending: Pending): void {
    if (pending.settled) return;
    const ms = performance.now() - pending.startedAt;
    if (pending.lastRefusal && [...pending.live.values()].every((hub) => pending.refusedBy.has(hub))) {
      // Every hub tried said why it would not (a send still out is to one that already refused
      // this request and was asked again): that reason says more than "timeout".
      const { reply, endpoint } = pending.lastRefusal;
      return this.settle(pending, { ok: false, error: reply.error, reply, endpoint, attempts: pending.sends, ms });
    }
    const hubs = this.hubSet.list();
    const why =
      hubs.length === 0
        ? `no hub known${this.resolveNote()}`
        : hubs.some((hub) => hub.connected)
          ? `no answer in time from ${pending.sends} send(s)`
          : `no hub reachable (${hubs.length} known)${this.resolveNote()}`;
    this.settle(pending, { ok: false, error: { code: 'timeout', message: `no result within ${Math.round(pending.deadlineAt - pending.startedAt)} ms: ${why}` }, attempts: pending.sends, ms });
  }

  private settle(pending: Pending, result: ClassifyResult): void {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.tryTimer);
    clearTimeout(pending.deadlineTimer);
    this.waiting.delete(pending);
    for (const sendId of [...pending.live.keys()]) this.release(sendId);
    if (result.ok) this.totals.results++;
    else this.totals.errors++;
    pending.resolve(result);
  }

  private outcome<T extends { ok: boolean }>(pending: Pending, hub: HubConnection, fields: T): T & { endpoint: string; attempts: number; ms: number } {
    return { ...fields, endpoint: hub.endpoint, attempts: pending.sends, ms: performance.now() - pending.startedAt };
  }

  /** The reply as the caller sent it: its own request_id back, or none. */
  private withCallerId<T extends ClassifyReply | ErrorReply>(reply: T, pending: Pending): T {
    const copy = { ...reply };
    if (pending.callerId === undefined) delete copy.request_id;
    else copy.request_id = pending.callerId;
    return copy;
  }

  private closedResult(startedAt: number, attempts = 0): ClassifyResult {
    return { ok: false, error: { code: 'closed', message: 'the client was closed before an answer came' }, attempts, ms: performance.now() - startedAt };
  }

  private resolveNote(): string {
    return this.hubSet.lastResolveError ? `; last resolution failure: ${this.hubSet.lastResolveError}` : '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

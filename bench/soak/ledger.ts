/**
 * Every request the soak sends, from send to reply: answered ok, answered with an error (by
 * code), or lost (no reply within the timeout, or the connection failed). Each reply is judged
 * against what its kind expects; anything else is "unexpected" and kept with its details
 * (a few of each, enough to reproduce). Requests in flight are held by id, so the counts add
 * up at any moment: sent = ok + errors + lost + in flight.
 */
import type { Expectation } from './requests.ts';

export interface SettledReply {
  /** `ok` or the error code; `unparseable` when the reply is not JSON. */
  outcome: string;
  /** The request_id the reply carried. */
  requestId?: string;
  executor?: { kind: string; id: string };
  /** HTTP only. */
  status?: number;
  message?: string;
}

interface InFlight extends Expectation {
  id: string;
  sentAt: number;
}

export interface Unexpected {
  at_s: number;
  request_id: string;
  kind: string;
  expected: readonly string[];
  got: string;
  status?: number;
  message?: string;
  why: string;
}

export interface LedgerCounts {
  sent: number;
  ok: number;
  /** Error replies, expected or not. */
  errored: number;
  lost: number;
  unexpected: number;
  inFlight: number;
  /** Successful replies computed by a volunteer tab. */
  volunteerServed: number;
}

/** Kept per (kind, problem) so a 10-minute soak does not keep thousands of the same line. */
const EXAMPLES_PER_PROBLEM = 3;

export class Ledger {
  private readonly inFlight = new Map<string, InFlight>();
  /** Ids declared lost, so a reply that comes after all is told apart from a stray one. */
  private readonly lostIds = new Set<string>();
  private stoppingAt: number | null = null;
  readonly counts: LedgerCounts = { sent: 0, ok: 0, errored: 0, lost: 0, unexpected: 0, inFlight: 0, volunteerServed: 0 };
  readonly errorsByCode: Record<string, number> = {};
  readonly lostByReason: Record<string, number> = {};
  readonly byKind: Record<string, { sent: number; outcomes: Record<string, number> }> = {};
  readonly servedBy: Record<string, number> = {};
  readonly unexpectedByProblem: Record<string, number> = {};
  readonly unexpectedExamples: Unexpected[] = [];
  readonly lostExamples: Array<{ at_s: number; request_id: string; kind: string; reason: string; waited_ms: number }> = [];
  /** Replies that came after their request was declared lost. */
  late = 0;
  /** Replies for no request this soak sent (should never happen). */
  stray = 0;
  /** Replies to requests sent while the hub was stopping, by outcome. */
  readonly atShutdown: Record<string, number> = {};
  readonly okLatencyMs: number[] = [];

  constructor(private readonly startedAt: number) {}

  begin(id: string, expectation: Expectation): void {
    this.inFlight.set(id, { ...expectation, id, sentAt: performance.now() });
    this.counts.sent++;
    this.counts.inFlight++;
    (this.byKind[expectation.kind] ??= { sent: 0, outcomes: {} }).sent++;
  }

  /** From now on the hub may answer `shutting_down` to whatever is in flight: it was told to stop. */
  markStopping(): void {
    this.stoppingAt = performance.now();
  }

  /** A reply arrived for request `id` (the one the client was waiting for). */
  settle(id: string, reply: SettledReply): void {
    const request = this.inFlight.get(id);
    if (!request) {
      if (this.lostIds.has(id)) this.late++;
      else this.stray++;
      return;
    }
    this.finish(request);
    const { outcome } = reply;
    const kind = this.byKind[request.kind];
    kind.outcomes[outcome] = (kind.outcomes[outcome] ?? 0) + 1;
    if (this.stoppingAt !== null) this.atShutdown[outcome] = (this.atShutdown[outcome] ?? 0) + 1;
    if (outcome === 'ok') {
      this.counts.ok++;
      this.okLatencyMs.push(performance.now() - request.sentAt);
      if (reply.executor) {
        this.servedBy[reply.executor.id] = (this.servedBy[reply.executor.id] ?? 0) + 1;
        if (reply.executor.kind === 'volunteer') this.counts.volunteerServed++;
      }
    } else {
      this.counts.errored++;
      this.errorsByCode[outcome] = (this.errorsByCode[outcome] ?? 0) + 1;
    }
    const why = this.judge(request, reply);
    if (why !== null) this.recordUnexpected(request, reply, why);
  }

  /**
   * No reply for request `id`: timed out, the connection failed, or the hub exited first.
   * Losses of requests in flight at SIGTERM are told apart from losses under load: the first
   * is the hub's drain failing, the second its steady state.
   */
  lose(id: string, reason: string): void {
    const request = this.inFlight.get(id);
    if (!request) return;
    this.finish(request);
    this.lostIds.add(id);
    this.counts.lost++;
    const phase = this.stoppingAt !== null && request.sentAt <= this.stoppingAt ? 'in flight at SIGTERM' : 'under load';
    reason = `${phase}: ${reason}`;
    this.lostByReason[reason] = (this.lostByReason[reason] ?? 0) + 1;
    const kind = this.byKind[request.kind];
    kind.outcomes.lost = (kind.outcomes.lost ?? 0) + 1;
    if (this.lostExamples.length < 20) {
      this.lostExamples.push({ at_s: this.secondsSinceStart(), request_id: id, kind: request.kind, reason, waited_ms: Math.round(performance.now() - request.sentAt) });
    }
  }

  /** Why a reply is not what the request's kind expects, or null when it is. */
  private judge(request: InFlight, reply: SettledReply): string | null {
    const shutdown = reply.outcome === 'shutting_down' && this.stoppingAt !== null;
    if (!request.expected.includes(reply.outcome) && !shutdown) return `expected ${request.expected.join(' or ')}`;
    // HTTP: success is 200 and only 200; an error reply must not pretend to be one.
    if (reply.status !== undefined && (reply.outcome === 'ok') !== (reply.status === 200)) return `HTTP status ${reply.status} for ${reply.outcome}`;
    if (request.echoesId && reply.requestId !== request.id) return `request_id not echoed (got ${JSON.stringify(reply.requestId)})`;
    return null;
  }

  private recordUnexpected(request: InFlight, reply: SettledReply, why: string): void {
    this.counts.unexpected++;
    const problem = `${request.kind} → ${reply.outcome}${reply.status === undefined ? '' : ` (HTTP ${reply.status})`}: ${why}`;
    const seen = (this.unexpectedByProblem[problem] = (this.unexpectedByProblem[problem] ?? 0) + 1);
    if (seen > EXAMPLES_PER_PROBLEM) return;
    this.unexpectedExamples.push({
      at_s: this.secondsSinceStart(),
      request_id: request.id,
      kind: request.kind,
      expected: request.expected,
      got: reply.outcome,
      ...(reply.status === undefined ? {} : { status: reply.status }),
      ...(reply.message === undefined ? {} : { message: reply.message }),
      why,
    });
  }

  private finish(request: InFlight): void {
    this.inFlight.delete(request.id);
    this.counts.inFlight--;
  }

  private secondsSinceStart(): number {
    return Math.round((performance.now() - this.startedAt) / 100) / 10;
  }
}

/**
 * The storm's book of every tracked request: sent, answered (by code), duplicated, stray and
 * lost. A request is settled by its first reply; a second reply for the same id is a
 * duplicate, a reply for an id never sent is stray, and whatever is unsettled at the end is
 * lost. Latency is kept per outcome so a test can bound the admitted requests' p99.
 */
export interface StormCounts {
  sent: number;
  answered: number;
  lost: number;
  duplicated: number;
  stray: number;
  inFlight: number;
}

const LATENCY_SAMPLES = 10_000;

export class StormLedger {
  private readonly pending = new Map<string, { sentAt: number; lane: string }>();
  private readonly settled = new Set<string>();
  readonly byCode: Record<string, number> = {};
  readonly byLane: Record<string, Record<string, number>> = {};
  /** Latencies by reply code: every result's, and the first LATENCY_SAMPLES of each error code (a storm has millions). */
  readonly latencyMs: Record<string, number[]> = {};
  /** Results' latencies by lane (the admitted requests of each kind of client). */
  readonly okLatencyByLane: Record<string, number[]> = {};
  /** HTTP statuses seen, for the HTTP lanes. */
  readonly httpStatuses: Record<string, number> = {};
  readonly counts: StormCounts = { sent: 0, answered: 0, lost: 0, duplicated: 0, stray: 0, inFlight: 0 };
  /** A few duplicate or stray ids, to reproduce. */
  readonly oddities: string[] = [];

  begin(id: string, lane: string): void {
    this.pending.set(id, { sentAt: performance.now(), lane });
    this.counts.sent++;
    this.counts.inFlight++;
  }

  /** Records a reply; false when it was a duplicate or answered nothing this ledger sent. */
  settle(id: string | undefined, code: string, httpStatus?: number): boolean {
    const entry = id === undefined ? undefined : this.pending.get(id);
    if (!entry || id === undefined) {
      const duplicate = id !== undefined && this.settled.has(id);
      if (duplicate) this.counts.duplicated++;
      else this.counts.stray++;
      if (this.oddities.length < 10) this.oddities.push(`${duplicate ? 'duplicate' : 'stray'} ${id ?? '(no id)'}: ${code}`);
      return false;
    }
    this.pending.delete(id);
    this.settled.add(id);
    this.counts.inFlight--;
    this.counts.answered++;
    this.byCode[code] = (this.byCode[code] ?? 0) + 1;
    const lane = (this.byLane[entry.lane] ??= {});
    lane[code] = (lane[code] ?? 0) + 1;
    const latency = performance.now() - entry.sentAt;
    const samples = (this.latencyMs[code] ??= []);
    if (code === 'ok' || samples.length < LATENCY_SAMPLES) samples.push(latency);
    if (code === 'ok') (this.okLatencyByLane[entry.lane] ??= []).push(latency);
    if (httpStatus !== undefined) this.httpStatuses[httpStatus] = (this.httpStatuses[httpStatus] ?? 0) + 1;
    return true;
  }

  /** Declares every request still unanswered lost (call once no more replies can come). */
  closeBooks(): void {
    this.counts.lost += this.pending.size;
    this.counts.inFlight = 0;
    this.pending.clear();
  }

  /** Ids still waiting, and when each was sent: a drain check needs to know which came before a signal. */
  unanswered(): Array<{ id: string; sentAt: number }> {
    return [...this.pending].map(([id, { sentAt }]) => ({ id, sentAt }));
  }
}

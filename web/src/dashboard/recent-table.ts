/** The last requests answered, newest first. */
import { RECENT_REQUESTS } from '../../../shared/protocol/events.ts';
import type { RecentRequest } from '../../../shared/protocol/events.ts';
import { el, fill } from '../common/dom.ts';
import { formatClock, formatMs, formatPercent, humanLabel } from '../common/format.ts';

export class RecentTable {
  private requests: RecentRequest[] = [];

  constructor(
    private readonly tbody: HTMLTableSectionElement,
    private readonly empty: HTMLElement,
  ) {}

  set(requests: readonly RecentRequest[]): void {
    this.requests = requests.slice(0, RECENT_REQUESTS);
    this.render();
  }

  add(request: RecentRequest): void {
    this.requests.unshift(request);
    if (this.requests.length > RECENT_REQUESTS) this.requests.length = RECENT_REQUESTS;
    this.render();
  }

  private render(): void {
    this.empty.hidden = this.requests.length > 0;
    fill(this.tbody, ...this.requests.map(row));
  }
}

function row(request: RecentRequest): HTMLTableRowElement {
  const ok = request.outcome === 'ok';
  const result = ok && request.top1 ? `${humanLabel(request.top1.label)} (${formatPercent(request.top1.probability)})` : request.outcome;
  return el(
    'tr',
    { attrs: { 'data-outcome': request.outcome } },
    el('td', { class: 'nowrap', text: formatClock(request.at) }),
    el('td', { class: 'mono small clip', text: request.request_id ?? request.id, attrs: { title: `${request.request_id ?? ''} (hub id ${request.id})` } }),
    el('td', { class: ok ? '' : 'bad-text', text: result }),
    el('td', { class: 'small nowrap', text: request.executor?.id ?? '—', attrs: { title: request.executor ? `${request.executor.kind}, ${request.executor.engine}` : '' } }),
    el('td', { class: 'num', text: formatMs(request.total_ms) }),
  );
}

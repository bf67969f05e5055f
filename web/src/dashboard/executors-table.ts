/**
 * The executors table: local workers with their engine and threads, volunteers with their GPU,
 * standing and record; the ones worth a look first, a page at a time, under a summary of the
 * volunteers by standing and speed.
 */
import type { ExecutorStatus, VolunteerStatus } from '../../../shared/protocol/status.ts';
import { el, fill } from '../common/dom.ts';
import { formatCount, formatMs } from '../common/format.ts';
import { orderExecutors, summarizeVolunteers } from './executor-order.ts';

export const EXECUTORS_PAGE_SIZE = 25;

export interface ExecutorsView {
  tbody: HTMLTableSectionElement;
  summary: HTMLElement;
  pager: HTMLElement;
}

/** Keeps the page the reader chose across the updates that come every second. */
export class ExecutorsTable {
  private page = 0;
  private shown: readonly ExecutorStatus[] = [];

  constructor(private readonly view: ExecutorsView) {}

  render(executors: readonly ExecutorStatus[]): void {
    this.shown = executors;
    const { tbody, summary, pager } = this.view;
    fill(summary, summaryText(executors));
    if (executors.length === 0) {
      fill(tbody, el('tr', {}, el('td', { text: 'No executors: the hub has no local workers and no volunteer is connected.', attrs: { colspan: '8' } })));
      fill(pager);
      return;
    }
    const pages = Math.ceil(executors.length / EXECUTORS_PAGE_SIZE);
    this.page = Math.min(this.page, pages - 1);
    const first = this.page * EXECUTORS_PAGE_SIZE;
    fill(tbody, ...orderExecutors(executors).slice(first, first + EXECUTORS_PAGE_SIZE).map(row));
    if (pages === 1) {
      fill(pager);
      return;
    }
    const turn = (by: number) => () => {
      this.page = Math.max(0, Math.min(pages - 1, this.page + by));
      this.render(this.shown);
    };
    const previous = el('button', { class: 'quiet', text: '← Previous', attrs: { type: 'button', 'data-page': 'previous' } });
    const next = el('button', { class: 'quiet', text: 'Next →', attrs: { type: 'button', 'data-page': 'next' } });
    previous.disabled = this.page === 0;
    next.disabled = this.page === pages - 1;
    previous.addEventListener('click', turn(-1));
    next.addEventListener('click', turn(1));
    const range = `${first + 1}–${Math.min(first + EXECUTORS_PAGE_SIZE, executors.length)} of ${executors.length}`;
    fill(pager, previous, el('span', { class: 'muted', text: range, attrs: { 'data-range': range } }), next);
  }
}

function summaryText(executors: readonly ExecutorStatus[]): string {
  const summary = summarizeVolunteers(executors);
  if (summary.connected === 0) return 'No volunteers connected.';
  const standings = Object.entries(summary.byStanding)
    .filter(([, count]) => count > 0)
    .map(([standing, count]) => `${count} ${standing.replace('_', ' ')}`);
  if (summary.joining > 0) standings.push(`${summary.joining} joining`);
  const speed = summary.trustedSpeed
    ? `; trusted tabs take ${formatMs(summary.trustedSpeed.median)} an image (median; ${formatMs(summary.trustedSpeed.fastest)} to ${formatMs(summary.trustedSpeed.slowest)})`
    : '';
  const hedges = summary.lateJobs > 0 ? `; ${formatCount(summary.lateJobs)} late jobs, hedge races ${formatCount(summary.hedgesWon)} won / ${formatCount(summary.hedgesLost)} lost` : '';
  return `${summary.connected} volunteers: ${standings.join(', ')}${speed}${hedges}.`;
}

function row(executor: ExecutorStatus): HTMLTableRowElement {
  const state = executor.busy && executor.state !== 'quarantined' ? 'busy' : executor.state;
  const tone = state === 'quarantined' || state === 'gone' || state === 'exited' ? 'bad' : state === 'busy' ? 'busy' : state === 'ready' ? 'ok' : 'warn';
  const cells =
    executor.kind === 'local'
      ? {
          kind: 'local worker',
          engine: executor.engine,
          hardware: `CPU, ${executor.threads} thread${executor.threads === 1 ? '' : 's'}${executor.solo_threads ? ` (${executor.solo_threads} when alone)` : ''}`,
          notes: executor.restarts > 0 ? `${executor.restarts} restart${executor.restarts === 1 ? '' : 's'}` : `warm-up ${formatMs(executor.warmup_ms)}`,
        }
      : {
          kind: 'volunteer',
          engine: executor.backend ?? '—',
          hardware: adapterText(executor),
          notes: volunteerNotes(executor),
        };
  return el(
    'tr',
    { attrs: { 'data-executor-id': executor.id, 'data-kind': executor.kind, 'data-state': state } },
    el('th', { text: executor.id, attrs: { scope: 'row' } }),
    el('td', { text: cells.kind }),
    el('td', { text: cells.engine }),
    el('td', { text: cells.hardware, class: 'wrap' }),
    el('td', {}, el('span', { class: 'state-chip', attrs: { 'data-tone': tone } }, el('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }), state)),
    el('td', { class: 'num', text: formatMs(executor.per_image_ms) }),
    el('td', { class: 'num', text: formatCount(executor.images) }),
    el('td', { class: 'wrap small', text: cells.notes }),
  );
}

function adapterText(volunteer: VolunteerStatus): string {
  const adapter = volunteer.adapter;
  if (!adapter) return volunteer.state === 'joining' ? 'loading the model…' : '—';
  const parts = [adapter.vendor, adapter.architecture, adapter.description].filter((part): part is string => Boolean(part));
  return parts.length > 0 ? parts.join(' · ') : 'unknown GPU';
}

function volunteerNotes(volunteer: VolunteerStatus): string {
  if (volunteer.quarantine_reason) return `quarantined: ${volunteer.quarantine_reason}`;
  const notes = [volunteer.standing === 'paused' ? `paused (${volunteer.paused_reason ?? 'by the tab'})` : (volunteer.standing ?? 'joining').replace('_', ' ')];
  notes.push(`${formatCount(volunteer.jobs)} jobs`);
  if (volunteer.failures > 0) notes.push(`${volunteer.failures} failed`);
  if (volunteer.late_jobs) notes.push(`${volunteer.late_jobs} late`);
  if (volunteer.hedges_won || volunteer.hedges_lost) notes.push(`hedges ${volunteer.hedges_won ?? 0} won / ${volunteer.hedges_lost ?? 0} lost`);
  if (volunteer.max_batch) notes.push(`batch ≤ ${volunteer.max_batch}`);
  return notes.join(', ');
}

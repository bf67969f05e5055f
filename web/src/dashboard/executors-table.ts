/** The executors table: local workers with their engine and threads, volunteers with their GPU and record. */
import type { ExecutorStatus, VolunteerStatus } from '../../../shared/protocol/status.ts';
import { el, fill } from '../common/dom.ts';
import { formatCount, formatMs } from '../common/format.ts';

export function renderExecutorsTable(tbody: HTMLTableSectionElement, executors: readonly ExecutorStatus[]): void {
  if (executors.length === 0) {
    fill(tbody, el('tr', {}, el('td', { text: 'No executors: the hub has no local workers and no volunteer is connected.', attrs: { colspan: '8' } })));
    return;
  }
  fill(tbody, ...executors.map(row));
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
  const notes = [`${formatCount(volunteer.jobs)} jobs`];
  if (volunteer.failures > 0) notes.push(`${volunteer.failures} failed`);
  if (volunteer.max_batch) notes.push(`batch ≤ ${volunteer.max_batch}`);
  return notes.join(', ');
}

/** Volunteers joining, leaving and being quarantined, newest first. */
import { RECENT_ACTIVITY } from '../../../shared/protocol/events.ts';
import type { ExecutorEvent } from '../../../shared/protocol/events.ts';
import { el } from '../common/dom.ts';
import { formatClock } from '../common/format.ts';

export function logExecutorEvent(list: HTMLOListElement, empty: HTMLElement, event: ExecutorEvent): void {
  const who = event.executor.id;
  const text =
    event.type === 'executor.joined'
      ? `${who} joined${event.executor.kind === 'volunteer' && event.executor.backend ? ` (${event.executor.backend})` : ''}`
      : event.type === 'executor.left'
        ? `${who} left: ${event.reason}`
        : `${who} quarantined: ${event.reason}`;
  const tone = event.type === 'executor.joined' ? 'ok' : event.type === 'executor.left' ? 'warn' : 'bad';
  list.prepend(el('li', { attrs: { 'data-tone': tone } }, el('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }), el('time', { text: formatClock(event.at) }), ' ', text));
  while (list.children.length > RECENT_ACTIVITY) list.lastElementChild?.remove();
  empty.hidden = true;
}

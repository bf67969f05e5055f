/** Volunteers joining, leaving and being quarantined, and model swaps, newest first. */
import { RECENT_ACTIVITY } from '../../../shared/protocol/events.ts';
import type { ExecutorEvent, ModelSwapEvent } from '../../../shared/protocol/events.ts';
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

/** A step of a model swap, in the same log: what started it, where it is, and why it failed. */
export function logSwapEvent(list: HTMLOListElement, empty: HTMLElement, event: ModelSwapEvent): void {
  const { swap } = event;
  const to = swap.to ? ` to ${swap.to.slice(0, 12)}…` : '';
  const text =
    swap.state === 'done'
      ? `model swap #${swap.id}${to} done (switched after ${swap.to_switch_ms ?? '?'} ms)`
      : swap.state === 'failed' || swap.state === 'refused'
        ? `model swap #${swap.id}${to} ${swap.state}: ${swap.reason ?? ''}; the old model serves on`
        : `model swap #${swap.id}${to}: ${swap.state} (asked by ${swap.trigger})`;
  const tone = swap.state === 'done' ? 'ok' : swap.state === 'failed' || swap.state === 'refused' ? 'bad' : 'warn';
  list.prepend(el('li', { attrs: { 'data-tone': tone, 'data-swap': swap.state } }, el('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }), el('time', { text: formatClock(Date.parse(event.at)) }), ' ', text));
  while (list.children.length > RECENT_ACTIVITY) list.lastElementChild?.remove();
  empty.hidden = true;
}

/** A line of chips, one per executor, showing at a glance who is working. */
import type { ExecutorStatus } from '../../../shared/protocol/status.ts';
import { el, fill } from '../common/dom.ts';

export function renderExecutorStrip(strip: HTMLElement, executors: readonly ExecutorStatus[]): void {
  if (executors.length === 0) {
    fill(strip, el('span', { class: 'chip', attrs: { 'data-tone': 'warn' } }, el('span', { class: 'dot' }), 'no executors'));
    return;
  }
  fill(
    strip,
    ...executors.map((executor) => {
      const tone = executor.state === 'quarantined' || executor.state === 'gone' ? 'bad' : executor.busy ? 'busy' : executor.state === 'ready' || executor.state === 'idle' ? 'ok' : 'warn';
      const engine = executor.kind === 'local' ? executor.engine : (executor.backend ?? 'joining');
      const title = `${executor.id}: ${executor.kind === 'local' ? 'local worker' : 'volunteer GPU'}, ${engine}, ${executor.busy ? 'busy' : executor.state}`;
      return el(
        'span',
        { class: `chip chip-${executor.kind}`, attrs: { 'data-tone': tone, title, 'data-executor-id': executor.id } },
        el('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }),
        `${executor.kind === 'volunteer' ? 'GPU ' : ''}${executor.id.replace(/^volunteer-/, '#')}`,
        el('span', { class: 'chip-engine', text: engine }),
      );
    }),
  );
}

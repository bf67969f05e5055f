/** The header's badge saying whether the page is receiving the hub's live events. */
import type { EventStream, StreamState } from './events-client.ts';

const LABELS: Record<StreamState, { text: string; tone: string }> = {
  connecting: { text: 'connecting…', tone: 'warn' },
  live: { text: 'live', tone: 'ok' },
  offline: { text: 'hub unreachable, retrying', tone: 'bad' },
};

export function showLiveBadge(stream: EventStream): void {
  const badge = document.getElementById('live-badge');
  if (!badge) return;
  badge.hidden = false;
  stream.onState((state) => {
    badge.dataset.tone = LABELS[state].tone;
    badge.dataset.state = state;
    const text = badge.querySelector('.live-text');
    if (text) text.textContent = LABELS[state].text;
  });
}

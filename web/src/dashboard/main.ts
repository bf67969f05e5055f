/**
 * The dashboard: the hub's snapshot on connect, then one statistics event per second (charts,
 * figures, executors) and every request and executor event as it happens.
 */
import type { HubEvent } from '../../../shared/protocol/events.ts';
import type { StatusReport } from '../../../shared/protocol/status.ts';
import { byId, el, fill } from '../common/dom.ts';
import { EventStream } from '../common/events-client.ts';
import { showLiveBadge } from '../common/live-badge.ts';
import { carryApiToken } from '../common/api-token.ts';
import { showModelBanner } from '../common/model-banner.ts';
import { logExecutorEvent, logSwapEvent } from './activity-log.ts';
import { TrafficCharts } from './charts.ts';
import { ExecutorsTable } from './executors-table.ts';
import { RecentTable } from './recent-table.ts';
import { Tiles } from './tiles.ts';

const charts = new TrafficCharts({ throughput: byId('chart-throughput'), latency: byId('chart-latency'), queue: byId('chart-queue') });
const executorsTable = new ExecutorsTable({
  tbody: byId<HTMLTableElement>('executors').tBodies[0],
  summary: byId('volunteer-summary'),
  pager: byId('executors-pager'),
});
const recent = new RecentTable(byId<HTMLTableElement>('recent').tBodies[0], byId('recent-empty'));
const tiles = new Tiles();
const activity = byId<HTMLOListElement>('activity');
const activityEmpty = byId('activity-empty');

/** The last status seen, kept up to date by model.swap events between snapshots. */
let shown: StatusReport | undefined;

function swapFact(status: StatusReport): string {
  const swap = status.model_swap?.current ?? status.model_swap?.history.at(-1);
  if (!swap) return 'none since start';
  const to = swap.to ? ` → ${swap.to.slice(0, 12)}…` : '';
  return `#${swap.id}${to}: ${swap.state}${swap.reason ? ` (${swap.reason})` : ''}`;
}

function showModel(status: StatusReport): void {
  shown = status;
  showModelBanner(byId('model-banner'), status.model);
  fill(
    byId('model-facts'),
    // With several hubs behind one address, this page is of the hub that served it, only.
    el('dt', { text: 'Hub' }),
    el('dd', { class: 'mono', text: status.hub.id }),
    el('dt', { text: 'Model' }),
    el('dd', { text: status.model.name }),
    el('dt', { text: 'Weights' }),
    el('dd', { text: status.model.weights, attrs: { 'data-weights': status.model.weights } }),
    el('dt', { text: 'SHA-256' }),
    el('dd', { class: 'mono', text: `${status.model.sha256.slice(0, 12)}…`, attrs: { title: status.model.sha256 } }),
    el('dt', { text: 'Local engine' }),
    el('dd', { text: status.engine.chosen ?? '—' }),
    el('dt', { text: 'Model swap' }),
    el('dd', { text: swapFact(status), attrs: { 'data-swap-state': status.model_swap?.current?.state ?? status.model_swap?.history.at(-1)?.state ?? 'none' } }),
  );
}

function onEvent(event: HubEvent): void {
  switch (event.type) {
    case 'snapshot':
      showModel(event.status);
      charts.setHistory(event.history);
      recent.set(event.recent);
      activity.replaceChildren();
      activityEmpty.hidden = false;
      // Oldest first, so that each lands on top of the one before.
      for (const past of [...event.activity].reverse()) logExecutorEvent(activity, activityEmpty, past);
      executorsTable.render([...event.status.executors, ...event.status.volunteers]);
      return;
    case 'stats':
      charts.push(event.sample);
      tiles.update(event.sample, event.requests, event.executors);
      executorsTable.render(event.executors);
      return;
    case 'request.finished':
      tiles.recordLatency(event.at, event.timing.total_ms);
      recent.add({ id: event.id, request_id: event.request_id, at: event.at, outcome: 'ok', executor: event.executor, total_ms: event.timing.total_ms, top1: event.top1 });
      return;
    case 'request.failed':
      recent.add({ id: event.id, request_id: event.request_id, at: event.at, outcome: event.code });
      return;
    case 'executor.joined':
    case 'executor.left':
    case 'executor.quarantined':
      logExecutorEvent(activity, activityEmpty, event);
      return;
    case 'model.swap': {
      logSwapEvent(activity, activityEmpty, event);
      if (!shown) return;
      const finished = ['done', 'failed', 'refused'].includes(event.swap.state);
      const history = shown.model_swap?.history ?? [];
      showModel({ ...shown, model: event.model, model_swap: { current: finished ? undefined : event.swap, history: finished ? [...history, event.swap] : history } });
      return;
    }
    default:
      return;
  }
}

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-range]')) {
  button.addEventListener('click', () => {
    for (const other of document.querySelectorAll('[data-range]')) other.setAttribute('aria-pressed', String(other === button));
    charts.setRange(Number(button.dataset.range));
  });
}

carryApiToken();
const stream = new EventStream().onEvent(onEvent).start();
showLiveBadge(stream);

/**
 * One image's card: preview, live state, the top 3 as labelled bars, the timing breakdown and
 * who served it. State moves forward only (waiting → uploading → queued → running → done or
 * error): events can arrive after the reply they announce, and must not move a card back.
 */
import type { ClassifyReply, ExecutorInfo, Timing } from '../../../shared/protocol/classify.ts';
import { el, fill } from '../common/dom.ts';
import { formatBytes, formatMs, formatPercent, humanLabel } from '../common/format.ts';

export type CardState = 'waiting' | 'uploading' | 'queued' | 'running' | 'done' | 'error';

const ORDER: Record<CardState, number> = { waiting: 0, uploading: 1, queued: 2, running: 3, done: 4, error: 4 };

export class ResultCard {
  readonly element: HTMLLIElement;
  state: CardState = 'waiting';
  private readonly stateLabel: HTMLSpanElement;
  private readonly thumb: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly details: HTMLDivElement;
  /** Timing and executor, across the whole card's width. */
  private readonly footer: HTMLDivElement;

  constructor(
    readonly file: File,
    readonly requestId: string,
  ) {
    this.stateLabel = el('span', { class: 'state-pill', text: 'Waiting to upload' });
    this.thumb = el('div', { class: 'thumb', attrs: { 'aria-hidden': 'true' } }, el('span', { class: 'thumb-placeholder', text: extensionOf(file.name) }));
    this.details = el('div', { class: 'card-details' }, placeholderBars());
    this.body = el(
      'div',
      { class: 'card-body' },
      el('div', { class: 'card-title' }, el('span', { class: 'file-name', text: file.name || 'image', attrs: { title: file.name } }), this.stateLabel),
      el('p', { class: 'file-meta muted small', text: `${formatBytes(file.size)}${file.type ? ` · ${file.type}` : ''}` }),
      this.details,
    );
    this.footer = el('div', { class: 'card-footer' });
    this.element = el(
      'li',
      { class: 'result-card', attrs: { 'data-state': 'waiting', 'data-request-id': requestId, 'aria-busy': 'true' } },
      this.thumb,
      this.body,
      this.footer,
    );
  }

  setThumbnail(canvas: HTMLCanvasElement | null): void {
    if (canvas) fill(this.thumb, canvas);
    else this.thumb.classList.add('no-preview');
  }

  markUploading(): void {
    this.advance('uploading', 'Uploading…');
  }

  markQueued(queueDepth: number): void {
    this.advance('queued', queueDepth > 1 ? `Queued (${queueDepth - 1} ahead)` : 'Queued');
  }

  markRunning(executor: ExecutorInfo, hedge: boolean): void {
    if (ORDER[this.state] > ORDER.running) return;
    this.setState('running', `${hedge ? 'Also running' : 'Running'} on ${executorName(executor)}`);
    this.element.dataset.executor = executor.id;
  }

  showResult(reply: ClassifyReply, roundTripMs: number): void {
    this.setState('done', 'Done');
    this.element.dataset.finishedAt = String(performance.now());
    fill(this.details, el('ol', { class: 'preds', attrs: { 'aria-label': 'Top 3 predictions' } }, ...reply.predictions.map((p, rank) => predictionRow(p.label, p.probability, rank))));
    fill(
      this.footer,
      timingView(reply.timing, roundTripMs),
      el('p', { class: 'served-by small muted' }, 'Served by ', el('strong', { text: executorName(reply.executor) }), ` · ${reply.model.weights} weights`),
    );
  }

  showError(code: string, message: string): void {
    this.setState('error', 'Failed');
    this.element.dataset.errorCode = code;
    fill(this.details, el('p', { class: 'card-error', attrs: { role: 'alert' } }, el('strong', { text: `${code}: ` }), el('span', { class: 'error-text', text: message })));
  }

  get finished(): boolean {
    return this.state === 'done' || this.state === 'error';
  }

  private advance(state: CardState, label: string): void {
    if (ORDER[state] <= ORDER[this.state]) return;
    this.setState(state, label);
  }

  private setState(state: CardState, label: string): void {
    this.state = state;
    this.element.dataset.state = state;
    this.stateLabel.textContent = label;
    if (this.finished) this.element.removeAttribute('aria-busy');
  }
}

export function executorName(executor: ExecutorInfo): string {
  return executor.kind === 'volunteer' ? `volunteer GPU ${executor.id} (${executor.engine})` : `${executor.id} (${executor.engine} on this hub's CPU)`;
}

function predictionRow(label: string, probability: number, rank: number): HTMLLIElement {
  const percent = formatPercent(probability);
  const bar = el('span', { class: 'bar-fill' });
  bar.style.width = `${Math.max(0.5, Math.min(100, probability * 100))}%`;
  return el(
    'li',
    { class: `pred rank-${rank + 1}`, attrs: { 'data-label': label } },
    el('span', { class: 'label', text: humanLabel(label), attrs: { title: label } }),
    el('span', { class: 'pct', text: percent }),
    el('span', { class: 'bar', attrs: { role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': (probability * 100).toFixed(1), 'aria-label': `${humanLabel(label)} ${percent}` } }, bar),
  );
}

function placeholderBars(): HTMLElement {
  return el('ol', { class: 'preds pending', attrs: { 'aria-hidden': 'true' } }, ...[0, 1, 2].map(() => el('li', { class: 'pred' }, el('span', { class: 'bar' }))));
}

/** The server's stages as one stacked bar, then the figures. */
function timingView(timing: Timing, roundTripMs: number): HTMLElement {
  const parts = [
    { key: 'preprocess', label: 'Preprocess', ms: timing.preprocess_ms },
    { key: 'queue', label: 'Queue', ms: timing.queue_ms },
    { key: 'inference', label: 'Inference', ms: timing.inference_ms },
  ];
  const other = Math.max(0, timing.total_ms - parts.reduce((sum, p) => sum + p.ms, 0));
  const stack = el('div', { class: 'timing-bar', attrs: { 'aria-hidden': 'true' } });
  for (const part of [...parts, { key: 'other', label: 'Other', ms: other }]) {
    const segment = el('span', { class: `seg seg-${part.key}`, attrs: { title: `${part.label} ${formatMs(part.ms)}` } });
    segment.style.flexGrow = String(Math.max(part.ms, 0.01));
    stack.append(segment);
  }
  const figures = el('dl', { class: 'timing' });
  for (const part of parts) {
    figures.append(el('div', { class: `fig fig-${part.key}` }, el('dt', {}, el('span', { class: `swatch seg-${part.key}`, attrs: { 'aria-hidden': 'true' } }), part.label), el('dd', { text: formatMs(part.ms) })));
  }
  figures.append(el('div', { class: 'fig fig-total' }, el('dt', { text: 'Total' }), el('dd', { text: formatMs(timing.total_ms) })));
  figures.append(el('div', { class: 'fig fig-roundtrip' }, el('dt', { text: 'Round trip' }), el('dd', { text: formatMs(roundTripMs) })));
  return el('div', { class: 'timing-view' }, stack, figures);
}

function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1, dot + 6).toUpperCase() : 'FILE';
}

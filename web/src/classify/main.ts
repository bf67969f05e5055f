/**
 * The classify page: images in (picker, drop, paste), one card per image, each updated live
 * from the hub's event stream (queued, running on which executor) and completed by its own
 * HTTP reply.
 */
import type { HubEvent } from '../../../shared/protocol/events.ts';
import type { ExecutorStatus } from '../../../shared/protocol/status.ts';
import { byId } from '../common/dom.ts';
import { EventStream } from '../common/events-client.ts';
import { showLiveBadge } from '../common/live-badge.ts';
import { carryApiToken } from '../common/api-token.ts';
import { showModelBanner } from '../common/model-banner.ts';
import { classifyFile, newRequestId } from './classify-api.ts';
import { renderExecutorStrip } from './executor-strip.ts';
import { acceptFiles } from './intake.ts';
import { setUpLendDialog } from './lend-dialog.ts';
import { ResultCard } from './result-card.ts';
import { ThumbnailQueue } from './thumbnail.ts';
import { UploadQueue } from './upload-queue.ts';

const UPLOADS_AT_ONCE = 4;

const cardsList = byId<HTMLOListElement>('cards');
const summary = byId('results-summary');
const clearButton = byId<HTMLButtonElement>('clear');
const strip = byId('executor-strip');

const cards = new Map<string, ResultCard>();
const uploads = new UploadQueue(UPLOADS_AT_ONCE);
const thumbnails = new ThumbnailQueue();

function addFiles(files: File[]): void {
  // Newest batch on top, each batch in the order its files were given.
  const batch = document.createDocumentFragment();
  const newCards: ResultCard[] = [];
  for (const file of files) {
    const card = new ResultCard(file, newRequestId());
    cards.set(card.requestId, card);
    newCards.push(card);
    batch.append(card.element);
    thumbnails.add(file, (canvas) => card.setThumbnail(canvas));
  }
  cardsList.prepend(batch);
  // Uploads start once the cards are on the page, so every state change shows.
  for (const card of newCards) uploads.add(() => upload(card));
  updateSummary();
}

async function upload(card: ResultCard): Promise<void> {
  card.markUploading();
  updateSummary();
  const { reply, roundTripMs } = await classifyFile(card.file, card.requestId);
  if ('error' in reply) card.showError(reply.error.code, reply.error.message);
  else card.showResult(reply, roundTripMs);
  updateSummary();
}

function updateSummary(): void {
  const all = [...cards.values()];
  if (all.length === 0) {
    summary.textContent = 'No images yet.';
    clearButton.disabled = true;
    return;
  }
  const count = (state: ResultCard['state']) => all.filter((card) => card.state === state).length;
  const pending = all.length - count('done') - count('error');
  const parts = [`${count('done')} done`];
  if (count('error') > 0) parts.push(`${count('error')} failed`);
  if (pending > 0) parts.push(`${pending} in progress`);
  summary.textContent = `${all.length} image${all.length === 1 ? '' : 's'}: ${parts.join(', ')}.`;
  clearButton.disabled = all.every((card) => !card.finished);
}

function clearFinished(): void {
  for (const [id, card] of cards) {
    if (!card.finished) continue;
    card.element.remove();
    cards.delete(id);
  }
  updateSummary();
}

function onEvent(event: HubEvent): void {
  switch (event.type) {
    case 'snapshot':
      showModelBanner(byId('model-banner'), event.status.model);
      renderExecutorStrip(strip, [...event.status.executors, ...event.status.volunteers] satisfies ExecutorStatus[]);
      return;
    case 'stats':
      renderExecutorStrip(strip, event.executors);
      return;
    case 'model.swap':
      // New weights while the page is open: the banner follows without a reload.
      showModelBanner(byId('model-banner'), event.model);
      return;
    case 'request.queued':
      if (event.request_id) cards.get(event.request_id)?.markQueued(event.queue_depth);
      return;
    case 'request.started':
      if (event.request_id) cards.get(event.request_id)?.markRunning(event.executor, event.hedge);
      return;
    default:
      return; // the reply itself completes the card
  }
}

acceptFiles({ dropzone: byId('dropzone'), picker: byId<HTMLButtonElement>('pick'), input: byId<HTMLInputElement>('file-input') }, addFiles);
clearButton.addEventListener('click', clearFinished);
setUpLendDialog(byId<HTMLButtonElement>('lend'), byId<HTMLDialogElement>('lend-dialog'), byId('lend-webgpu'), byId<HTMLAnchorElement>('lend-go'));

carryApiToken();
const stream = new EventStream().onEvent(onEvent).start();
showLiveBadge(stream);

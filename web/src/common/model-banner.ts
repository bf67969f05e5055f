/** The banner that says, on every page, when the hub's weights are untrained (and what to do about it). */
import type { ModelInfo } from '../../../shared/protocol/classify.ts';
import { el, fill } from './dom.ts';

export function showModelBanner(banner: HTMLElement, model: ModelInfo & { warning?: string }): void {
  if (model.weights !== 'untrained') {
    banner.hidden = true;
    return;
  }
  fill(
    banner,
    el('strong', { text: 'Untrained weights. ' }),
    'This hub runs a ResNet50 with random weights: the labels are real ImageNet classes, but the predictions mean nothing. ',
    'To get real predictions, run ',
    el('code', { text: 'npm run model:fetch' }),
    ' (needs internet) or ',
    el('code', { text: 'npm run model:import -- weights.h5' }),
    ': the hub takes the new weights while it serves, and this notice goes away.',
  );
  banner.hidden = false;
}

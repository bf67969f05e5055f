/**
 * ImageNet labels (Keras' class index) and the seed's `preds` string.
 */
import classIndex from './imagenet_class_index.json' with { type: 'json' };
import { formatProbability } from './python-float.ts';

export const NUM_CLASSES = 1000;
export const MAX_TOP = 20;
export const DEFAULT_TOP = 3;

export interface Prediction {
  label: string;
  wnid: string;
  index: number;
  probability: number;
}

/** Top-k class indices with their probabilities, best first. */
export interface TopK {
  indices: number[];
  probabilities: number[];
}

const entries: ReadonlyArray<readonly [string, string]> = Array.from({ length: NUM_CLASSES }, (_, i) => {
  const entry = (classIndex as Record<string, string[]>)[String(i)];
  if (entry?.length !== 2) throw new Error(`imagenet_class_index.json has no class ${i}`);
  return [entry[0], entry[1]] as const;
});

export function classLabel(index: number): { wnid: string; label: string } {
  const entry = entries[index];
  if (!entry) throw new RangeError(`class index ${index} is outside 0..${NUM_CLASSES - 1}`);
  return { wnid: entry[0], label: entry[1] };
}

/**
 * The k largest probabilities, best first; ties keep the lower class index first, as
 * numpy's argsort does on the seed's side for equal values in practice.
 */
export function topK(probabilities: ArrayLike<number>, k: number): TopK {
  const indices: number[] = [];
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i];
    let at = indices.length;
    while (at > 0 && probabilities[indices[at - 1]] < p) at--;
    if (at < k) {
      indices.splice(at, 0, i);
      if (indices.length > k) indices.pop();
    }
  }
  return { indices, probabilities: indices.map((i) => probabilities[i]) };
}

export function toPredictions(top: TopK): Prediction[] {
  return top.indices.map((index, i) => ({ ...classLabel(index), index, probability: top.probabilities[i] }));
}

/** The seed's reply string: `label : prob` for each prediction, joined by `, `. */
export function predsString(predictions: readonly Prediction[]): string {
  return predictions.map((p) => `${p.label} : ${formatProbability(p.probability)}`).join(', ');
}

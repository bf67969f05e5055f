/**
 * Calibration: the fp32 model runs over the calibration images with every activation tensor
 * exposed, and each tensor's range is read from its histogram (min/max, or a percentile that
 * ignores the rarest extremes so the common values keep more resolution).
 */
import type { Model } from '../ir.ts';
import { RangeHistogram, type RangeMethod } from './range-histogram.ts';
import { createSession, imageCount, runImage, withOutputs } from './ort-runs.ts';

/** Float activations a QDQ pass may quantize: the graph input and every node output. */
export function activationTensors(model: Model): string[] {
  return [...model.graph.input.map((i) => i.name), ...model.graph.node.flatMap((n) => n.output)];
}

export async function collectHistograms(
  model: Model,
  rgb: Uint8Array,
  tensors: readonly string[],
  onImage?: (done: number, total: number) => void,
): Promise<Map<string, RangeHistogram>> {
  const inputName = model.graph.input[0].name;
  const outputs = tensors.filter((t) => t !== inputName);
  const session = await createSession(withOutputs(model, outputs));
  const histograms = new Map(tensors.map((t) => [t, new RangeHistogram()]));
  const total = imageCount(rgb);
  try {
    for (let i = 0; i < total; i++) {
      const values = await runImage(session, rgb, i, outputs);
      for (const [name, data] of values) histograms.get(name)!.add(data);
      onImage?.(i + 1, total);
    }
  } finally {
    await session.release();
  }
  return histograms;
}

export function rangesOf(histograms: ReadonlyMap<string, RangeHistogram>, method: RangeMethod): Map<string, [number, number]> {
  return new Map([...histograms].map(([name, h]) => [name, h.range(method)]));
}

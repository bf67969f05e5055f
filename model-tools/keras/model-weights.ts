/**
 * The TF.js side of the import: which weights the built model expects (names and shapes, for
 * map-weights' checks), and putting a checked plan's values into its layers.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { ExpectedLayer, WeightPlan } from './map-weights.ts';

type Tf = typeof import('@tensorflow/tfjs');

/** The model's layers that have weights, in model order, with each weight's own name and shape. */
export function expectedLayers(model: LayersModel): ExpectedLayer[] {
  return model.layers
    .filter((layer) => layer.weights.length > 0)
    .map((layer) => ({
      name: layer.name,
      className: layer.getClassName(),
      weights: layer.weights.map((w) => ({
        // originalName is `layer/kernel`; `name` may carry a uniquifying suffix.
        name: w.originalName.split('/').at(-1) ?? w.originalName,
        shape: w.shape.map((d) => {
          if (d === null) throw new Error(`weight ${w.originalName} has an unknown dimension`);
          return d;
        }),
      })),
    }));
}

/** Sets every planned layer's weights (shapes already checked by planWeights). */
export function applyPlan(tf: Tf, model: LayersModel, plan: WeightPlan, onProgress?: (done: number, total: number) => void): void {
  plan.assignments.forEach((assignment, i) => {
    const layer = model.getLayer(assignment.layer);
    const tensors = layer.weights.map((w, j) => tf.tensor(assignment.values[j], w.shape as number[], 'float32'));
    try {
      layer.setWeights(tensors); // copies into the layer's variables
    } finally {
      tf.dispose(tensors);
    }
    onProgress?.(i + 1, plan.assignments.length);
  });
}

/**
 * Pass 3 of the export: float64 constants that no pass consumed (e.g. a BatchNorm with no
 * conv to fold into) are rounded to float32, the type the graph computes in; a DOUBLE
 * constant would make onnxruntime refuse the Mul/Add it feeds.
 */
import { DataType } from './ir.ts';
import type { Model } from './ir.ts';

export function roundConstantsToFloat32(model: Model): void {
  for (const t of model.graph.initializer) {
    if (t.data_type !== DataType.DOUBLE) continue;
    t.data = Float32Array.from(t.data as Float64Array);
    t.data_type = DataType.FLOAT;
  }
}

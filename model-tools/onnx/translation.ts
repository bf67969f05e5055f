/**
 * What pass 1 of the export (layers-to-graph.ts) hands each layer's emitter (layer-emitters.ts):
 * the graph under construction and the Keras graph around the layer. Its own module, so that
 * the pass and its emitters both stand on it rather than on each other.
 */
import type { SymbolicTensor } from '@tensorflow/tfjs';

import type { GraphBuilder } from './graph-builder.ts';
import type { Step } from './keras-graph.ts';

/** What a Keras tensor is in the ONNX graph. */
export interface Value {
  /** ONNX tensor name. Rank-4 tensors are NCHW there, everything else as in Keras. */
  name: string;
  /** Keras (NHWC) shape, batch first, null where unknown. */
  shape: Array<number | null>;
  /**
   * Zero padding [top, left, bottom, right] not applied yet: a ZeroPadding2D whose only consumer
   * is a Conv2D or MaxPooling2D, which takes it into its own padding.
   */
  pendingPads?: [number, number, number, number];
  /** Known to be ≥ 0 (or NaN) everywhere, e.g. a ReLU output. */
  nonNegative?: boolean;
}

/** What a layer's emitter may use: the graph so far and the Keras graph around its layer. */
export interface Translation {
  readonly g: GraphBuilder;
  /** The ONNX value of an input that may still carry deferred padding (Conv2D, MaxPooling2D). */
  valueOf(step: Step, t: SymbolicTensor): Value;
  /** A materialised input (no pending padding), for every other layer. */
  plainInput(step: Step, t: SymbolicTensor): Value;
  outName(step: Step, index?: number): string;
  define(t: SymbolicTensor, value: Value): void;
  /** The one layer reading `t` (never when `t` is the model output), else undefined. */
  soleConsumer(t: SymbolicTensor): Step | undefined;
  /**
   * The layer that really reads `t`, looking through identity layers (which emit no node): what
   * onnxruntime sees once it has removed no-op nodes, which is what its fusions match on.
   */
  effectiveConsumer(t: SymbolicTensor): Step | undefined;
  readonly inputShape: Array<number | null>;
}

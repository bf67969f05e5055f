/**
 * ResNet50 through TensorFlow.js, on the tfjs-node (libtensorflow) or WebAssembly backend.
 */
import type { Tensor } from '@tensorflow/tfjs';
import { loadLayersModelFromStore } from '../../model-store/store.ts';
import { INPUT_SIZE, toCaffeInput } from '../../shared/caffe.ts';
import type { Engine, EngineOptions } from './engine.ts';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';

/** `options.threads` is not used: tfjs' wasm backend runs single-threaded under Node. */
export async function createTfjsEngine(name: 'tfjs-node' | 'wasm', options: EngineOptions): Promise<Engine> {
  const tf = await loadTfjs(name);
  const model = await loadLayersModelFromStore(tf, options.modelDir);
  return {
    name,
    async infer(rgb, batch) {
      const input = tf.tensor4d(rgb instanceof Float32Array ? rgb : toCaffeInput(rgb, batch), [batch, INPUT_SIZE, INPUT_SIZE, 3]);
      const output = model.predict(input) as Tensor;
      try {
        return (await output.data()) as Float32Array;
      } finally {
        input.dispose();
        output.dispose();
      }
    },
    dispose() {
      model.dispose();
    },
  };
}

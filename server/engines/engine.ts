/**
 * An engine runs the model on a batch of preprocessed images, inside one worker thread.
 * Every engine takes the same input and must give the same output.
 */
export const ENGINE_NAMES = ['tfjs-node', 'wasm'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

export interface Engine {
  readonly name: EngineName;
  /**
   * @param rgb `batch` images of 224×224×3 uint8 RGB, one after another
   * @returns softmax probabilities, `batch` × 1000
   */
  infer(rgb: Uint8Array, batch: number): Promise<Float32Array>;
  dispose(): void;
}

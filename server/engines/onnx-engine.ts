/**
 * ResNet50 through onnxruntime-node (CPU execution provider), from the store's model.onnx.
 *
 * The ONNX file is made by model-tools/onnx-export.ts; the hub runs `ensureOnnxModel` before
 * starting workers, so an engine only ever checks that the file is current
 * (model-store/derived-files.ts) and refuses if not
 * (exporting here would have every worker thread export the same 100 MB file at once).
 * With precision int8 it serves model.int8.onnx (ensured by `ensureInt8Model`), and computes
 * the batches that verify a volunteer on model.onnx, in a session made on first use: volunteers
 * run fp32, so they are judged against fp32.
 */
import * as ort from 'onnxruntime-node';
import { INT8_FILE, int8Staleness, ONNX_FILE, ONNX_INPUT, ONNX_OUTPUT, onnxStaleness } from '../../model-store/derived-files.ts';
import { INPUT_CHANNELS, INPUT_SIZE, INPUT_VALUES_PER_IMAGE, toCaffeInput } from '../../shared/caffe.ts';
import { NUM_CLASSES } from '../../shared/labels.ts';
import type { Engine, EngineOptions } from './engine.ts';

export async function createOnnxEngine(options: EngineOptions): Promise<Engine> {
  const int8 = options.precision === 'int8';
  const file = int8 ? INT8_FILE : ONNX_FILE;
  const stale = int8 ? await int8Staleness(options.modelDir) : await onnxStaleness(options.modelDir);
  if (stale !== null) {
    throw new Error(`onnx engine: ${options.modelDir}/${file} cannot be used (${stale}); run ${int8 ? 'ensureInt8Model' : 'ensureOnnxModel'} first`);
  }
  if (!Number.isInteger(options.threads) || options.threads < 1) {
    throw new RangeError(`onnx engine: threads must be a positive integer, got ${options.threads}`);
  }
  const session = await createSession(options.modelDir, file, options.threads, options.spin ?? true);
  // Solo runs have the cores to themselves, so their threads may spin.
  const soloSession =
    options.soloThreads && options.soloThreads > options.threads ? await createSession(options.modelDir, file, options.soloThreads, true) : session;
  let referenceSession: Promise<ort.InferenceSession> | undefined;
  const fp32Session = (): Promise<ort.InferenceSession> => {
    if (!int8) return Promise.resolve(session);
    referenceSession ??= createSession(options.modelDir, ONNX_FILE, options.threads, options.spin ?? true);
    return referenceSession;
  };

  // The caffe input is 600 KB per image; keep one buffer, grown to the largest batch seen. Only
  // one run at a time can use it (onnxruntime reads it during run()), so an overlapping call
  // gets a fresh one rather than waiting.
  let buffer = new Float32Array(0);
  let busy = false;

  return {
    name: 'onnx',
    async infer(rgb, batch, solo = false, reference = false) {
      if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
      const n = batch * INPUT_VALUES_PER_IMAGE;
      if (rgb instanceof Float32Array && rgb.length !== n) throw new RangeError(`expected ${n} floats for ${batch} image(s), got ${rgb.length}`);
      let input: Float32Array;
      const reuse = !busy && !(rgb instanceof Float32Array);
      if (rgb instanceof Float32Array) {
        input = rgb;
      } else if (reuse) {
        if (buffer.length < n) buffer = new Float32Array(n);
        input = buffer.subarray(0, n);
        busy = true;
      } else {
        input = new Float32Array(n);
      }
      try {
        if (!(rgb instanceof Float32Array)) toCaffeInput(rgb, batch, input);
        const feeds = { [ONNX_INPUT]: new ort.Tensor('float32', input, [batch, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS]) };
        const results = await (reference ? await fp32Session() : solo ? soloSession : session).run(feeds);
        const output = results[ONNX_OUTPUT];
        if (!output || output.type !== 'float32' || output.data.length !== batch * NUM_CLASSES) {
          throw new Error(`onnx engine: unexpected output ${output ? `${output.type} [${output.dims.join(',')}]` : 'missing'}`);
        }
        // A fresh array per run (onnxruntime allocates outputs), so it is the caller's to keep.
        return output.data as Float32Array;
      } finally {
        if (reuse) busy = false;
      }
    },
    dispose() {
      void session.release().catch(() => {});
      if (soloSession !== session) void soloSession.release().catch(() => {});
      void referenceSession?.then((s) => s.release()).catch(() => {});
    },
  };
}

function createSession(modelDir: string, file: string, threads: number, spin: boolean): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(`${modelDir}/${file}`, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    // One graph, run op after op: there is no branch-level parallelism worth a second pool.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    ...(spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  });
}

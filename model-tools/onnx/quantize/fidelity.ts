/**
 * How far the int8 model is from fp32, on images the calibration never saw:
 *  - SQNR (dB) of every quantized activation, the pooled features and the logits, each summed
 *    over all images: 10·log10(Σ fp32² / Σ (int8 − fp32)²);
 *  - top-1 agreement and "int8's top-1 is among fp32's top 5", from the int8 model as served.
 * Activations come from diagnostic copies (extra outputs); the top-1 figures from the real file.
 */
import type { Model } from '../ir.ts';
import type { FidelityReport } from '../../../model-store/fidelity-schema.ts';
import { createSession, imageCount, runImage, withOutputs } from './ort-runs.ts';
import type { QdqPlan } from './qdq.ts';

/** The classifier's input (pooled features) and output (logits), found by structure. */
export function classifierTensors(model: Model): { pooled: string; logits: string } {
  const gemms = model.graph.node.filter((n) => n.op_type === 'Gemm' || n.op_type === 'MatMul');
  const last = gemms[gemms.length - 1];
  if (!last) throw new Error('the model has no classifier (Gemm) to measure pooled features and logits at');
  return { pooled: last.input[0], logits: last.output[0] };
}

class Sqnr {
  private signal = 0;
  private noise = 0;

  add(reference: Float32Array, test: Float32Array): void {
    if (reference.length !== test.length) throw new Error(`SQNR of tensors of ${reference.length} and ${test.length} values`);
    for (let i = 0; i < reference.length; i++) {
      const d = test[i] - reference[i];
      this.signal += reference[i] * reference[i];
      this.noise += d * d;
    }
  }

  get db(): number {
    if (this.noise === 0) return Infinity;
    return 10 * Math.log10(this.signal / this.noise);
  }
}

function ranking(p: Float32Array): number[] {
  return Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
}

const round2 = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : 999);

export async function measureFidelity(
  fp32: Model,
  int8: Model,
  int8Bytes: Uint8Array,
  plan: QdqPlan,
  images: { rgb: Uint8Array; names: string[] },
  onImage?: (done: number, total: number) => void,
): Promise<FidelityReport> {
  const { pooled, logits } = classifierTensors(fp32);
  const probabilities = fp32.graph.output[0].name;
  const layers = [...plan.tensors.keys()];
  // In the int8 graph a quantized tensor's consumers read its DequantizeLinear output.
  const int8Name = (t: string) => plan.dequantized.get(t) ?? t;
  const fp32Outputs = [...new Set([probabilities, pooled, logits, ...layers])];
  const int8Outputs = [...new Set([int8Name(pooled), logits, ...layers.map(int8Name)])];

  const fp32Session = await createSession(withOutputs(fp32, fp32Outputs));
  const diagSession = await createSession(withOutputs(int8, int8Outputs));
  const servedSession = await createSession(int8Bytes);
  const perLayer = new Map(layers.map((t) => [t, new Sqnr()]));
  const pooledSqnr = new Sqnr();
  const logitsSqnr = new Sqnr();
  const perImage: FidelityReport['images'] = [];
  const total = imageCount(images.rgb);
  try {
    for (let i = 0; i < total; i++) {
      const ref = await runImage(fp32Session, images.rgb, i, fp32Outputs);
      const diag = await runImage(diagSession, images.rgb, i, int8Outputs);
      const served = await runImage(servedSession, images.rgb, i, [probabilities]);
      for (const t of layers) perLayer.get(t)!.add(ref.get(t)!, diag.get(int8Name(t))!);
      pooledSqnr.add(ref.get(pooled)!, diag.get(int8Name(pooled))!);
      logitsSqnr.add(ref.get(logits)!, diag.get(logits)!);
      const fpRank = ranking(ref.get(probabilities)!);
      const q = served.get(probabilities)!;
      const int8Top1 = ranking(q)[0];
      perImage.push({
        name: images.names[i],
        fp32_top1: fpRank[0],
        int8_top1: int8Top1,
        int8_top1_rank_in_fp32: fpRank.indexOf(int8Top1) + 1,
        max_probability_diff: round4(maxAbsDiff(ref.get(probabilities)!, q)),
      });
      onImage?.(i + 1, total);
    }
  } finally {
    await Promise.all([fp32Session.release(), diagSession.release(), servedSession.release()]);
  }
  const agree = perImage.filter((r) => r.fp32_top1 === r.int8_top1).length;
  const inTop5 = perImage.filter((r) => r.int8_top1_rank_in_fp32 <= 5).length;
  return {
    held_apart_images: total,
    pooled_sqnr_db: round2(pooledSqnr.db),
    logits_sqnr_db: round2(logitsSqnr.db),
    top1_agreement: agree / total,
    int8_top1_in_fp32_top5: inTop5 / total,
    max_probability_diff: Math.max(...perImage.map((r) => r.max_probability_diff)),
    layers: layers.map((t) => ({ tensor: t, sqnr_db: round2(perLayer.get(t)!.db) })),
    images: perImage,
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

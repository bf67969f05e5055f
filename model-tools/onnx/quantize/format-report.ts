/**
 * The fidelity report as text, for `npm run model:quantize` and the hub's start-up log.
 */
import type { FidelityReport, QuantizationSettings } from '../../../model-store/fidelity-schema.ts';

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

export function summarizeReport(report: FidelityReport): string {
  return (
    `pooled features ${report.pooled_sqnr_db} dB SQNR, logits ${report.logits_sqnr_db} dB; on ${report.held_apart_images} held-apart images ` +
    `top-1 agreement ${pct(report.top1_agreement)}, int8 top-1 within fp32 top-5 ${pct(report.int8_top1_in_fp32_top5)}, ` +
    `largest probability difference ${report.max_probability_diff}`
  );
}

export function formatReport(report: FidelityReport, settings: QuantizationSettings): string {
  const calibration = settings.calibration.kind === 'minmax' ? 'min/max' : `${settings.calibration.percentile}th percentile`;
  const lines = [
    `int8: weights s8 per channel, activations ${settings.activationType}, ranges ${calibration}, fp32 kept: ${settings.keepFloat.join(', ') || 'none'}`,
    '',
    'per-layer SQNR of the int8 activations against fp32 (dB):',
  ];
  const width = Math.max(...report.layers.map((l) => l.tensor.length));
  for (const l of report.layers) lines.push(`  ${l.tensor.padEnd(width)}  ${l.sqnr_db.toFixed(1).padStart(6)}`);
  lines.push('', 'held-apart images (class index; rank of int8 top-1 in the fp32 ranking):');
  for (const i of report.images) {
    lines.push(`  ${i.name.padEnd(28)} fp32 ${String(i.fp32_top1).padStart(4)}  int8 ${String(i.int8_top1).padStart(4)}  rank ${i.int8_top1_rank_in_fp32}  max |Δp| ${i.max_probability_diff}`);
  }
  lines.push('', summarizeReport(report));
  return lines.join('\n');
}

/**
 * npm run model:quantize -- [--model-dir models/resnet50] [--activations u8|s8]
 *   [--calibration percentile|minmax] [--percentile 99.99] [--keep-float first-conv,classifier]
 *
 * Makes the store's int8 model (model.int8.onnx) when it is missing or was made from other
 * weights or settings, with a progress bar, and prints its fidelity report.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import { formatReport } from './onnx/quantize/format-report.ts';
import { quantizationSettingsSchema, type QuantizationSettings } from '../model-store/fidelity-schema.ts';
import { ensureInt8Model } from './onnx/quantize/int8-model.ts';
import { DEFAULT_QUANTIZATION } from './onnx/quantize/quantize.ts';
import { createProgressBar } from '../lib/progress.ts';
import { DEFAULT_MODEL_DIR } from '../model-store/store.ts';

function parsePercentile(value: string): number {
  const p = Number(value);
  if (!(p > 50 && p <= 100)) throw new InvalidArgumentError('expected a number in (50, 100]');
  return p;
}

const defaultPercentile = DEFAULT_QUANTIZATION.calibration.kind === 'percentile' ? DEFAULT_QUANTIZATION.calibration.percentile : 99.99;
const program = new Command()
  .name('model:quantize')
  .description('Make the store\'s int8 model (static post-training quantization, QDQ) and print its fidelity report.')
  .option('--model-dir <dir>', 'store folder', DEFAULT_MODEL_DIR)
  .addOption(new Option('--activations <type>', 'activation type').choices(['u8', 's8']).default(DEFAULT_QUANTIZATION.activationType))
  .addOption(new Option('--calibration <method>', 'how ranges are read').choices(['percentile', 'minmax']).default(DEFAULT_QUANTIZATION.calibration.kind))
  .option('--percentile <p>', 'with --calibration percentile', parsePercentile, defaultPercentile)
  .option('--keep-float <list>', "comma-separated: first-conv, classifier, node names; '' for none", DEFAULT_QUANTIZATION.keepFloat.join(','))
  .option('--json', 'print the report as JSON', false)
  .parse();

const options = program.opts<{ modelDir: string; activations: 'u8' | 's8'; calibration: 'percentile' | 'minmax'; percentile: number; keepFloat: string; json: boolean }>();

async function main(): Promise<number> {
  const settings: QuantizationSettings = quantizationSettingsSchema.parse({
    ...DEFAULT_QUANTIZATION,
    activationType: options.activations,
    calibration: options.calibration === 'minmax' ? { kind: 'minmax' } : { kind: 'percentile', percentile: options.percentile },
    keepFloat: options.keepFloat.split(',').map((s) => s.trim()).filter(Boolean),
  });
  const bar = createProgressBar('Quantizing to int8');
  let result;
  try {
    result = await ensureInt8Model(options.modelDir, { settings, onProgress: (stage, done, total) => bar.update(stage, done, total) });
  } finally {
    bar.stop();
  }
  if (options.json) {
    process.stdout.write(JSON.stringify({ path: result.path, quantized: result.quantized, ms: Math.round(result.ms), settings, report: result.report }, null, 2) + '\n');
    return 0;
  }
  const what = result.quantized ? `quantized in ${(result.ms / 1000).toFixed(1)} s (${result.reason})` : 'already current, not re-made';
  process.stdout.write(`${result.path}: ${what}\n\n${formatReport(result.report, settings)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`model:quantize failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);

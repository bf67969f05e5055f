/**
 * npm run model:import -- <file.h5> [--model-dir models/resnet50] [--md5 <hex>]
 *
 * Installs Keras ResNet50 ImageNet weights from an HDF5 file (weights-only or full model, the
 * keras-applications or the legacy layer names) as the model store, with model.onnx. Runs the
 * import in a worker thread with a progress bar on stderr; prints what it wrote on stdout.
 * Exit code 1 with a plain message when the file cannot be used; the store is then unchanged.
 */
import { pickUpNotice } from '../model-store/serving-marker.ts';
import { Command, Option } from 'commander';
import { ARCHITECTURES } from '../shared/model/resnet50.ts';
import type { ArchitectureName } from '../shared/model/resnet50.ts';
import { importKerasWeightsInWorker, KerasImportError } from './keras/import-weights.ts';
import { createProgressBar } from '../lib/progress.ts';
import { DEFAULT_MODEL_DIR, readManifest } from '../model-store/store.ts';
import type { ModelManifest } from '../model-store/store.ts';

const program = new Command()
  .name('model:import')
  .description('Import Keras ResNet50 weights (HDF5, e.g. resnet50_weights_tf_dim_ordering_tf_kernels.h5) as the model store.')
  .argument('<file>', 'Keras HDF5 weights or model file')
  .option('--model-dir <dir>', 'store folder to write (replaced only once the import succeeded)', DEFAULT_MODEL_DIR)
  .option('--md5 <hex>', "the file's expected MD5 (checked, and the import refused if it differs)")
  .option('--url <url>', 'where the file came from (recorded in the manifest)')
  .addOption(
    new Option('--architecture <name>', 'resnet50, or tiny-resnet for tests (same layer names, a fraction of the size)')
      .choices(Object.keys(ARCHITECTURES))
      .default('resnet50'),
  )
  .parse();

const [file] = program.args;
const options = program.opts<{ modelDir: string; md5?: string; url?: string; architecture: ArchitectureName }>();

async function main(): Promise<number> {
  // The store being replaced, to say so; a broken one is about to be replaced anyway.
  const previous = await readManifest(options.modelDir).catch(() => null);
  const tty = process.stderr.isTTY === true;
  const bar = createProgressBar('Importing Keras weights');
  let stage = '';
  const started = performance.now();
  let manifest: ModelManifest;
  try {
    manifest = await importKerasWeightsInWorker(file, {
      modelDir: options.modelDir,
      architecture: options.architecture,
      source: { ...(options.md5 ? { md5: options.md5 } : {}), ...(options.url ? { url: options.url } : {}) },
      onProgress: (next, done, total) => {
        if (tty) bar.update(next.padEnd(8), done, total);
        else if (next !== stage) process.stderr.write(`  ${next}…\n`);
        stage = next;
      },
    });
  } catch (error) {
    bar.stop();
    if (error instanceof KerasImportError) {
      process.stderr.write(`\nImport failed, ${options.modelDir} left unchanged:\n${error.message}\n`);
    } else {
      process.stderr.write(`\nImport failed (${options.modelDir} left unchanged): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    return 1;
  }
  bar.stop();

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const source = manifest.source.kind === 'keras-h5' ? manifest.source : undefined;
  const lines = [
    `Imported ${file} into ${options.modelDir} in ${seconds} s`,
    `  model:        ${manifest.name}, ${manifest.weights} weights`,
    `  naming:       ${source?.naming ?? '?'} layer names (${source?.layout === 'full-model' ? 'full model file, model_weights group' : 'weights-only file'})`,
    `  weights:      sha256 ${manifest.weightsSha256}`,
    `  source file:  sha256 ${source?.sha256 ?? '?'}, md5 ${source?.md5 ?? '?'}`,
    `  written:      model.json, weight shards, manifest.json, model.onnx`,
  ];
  if (previous) lines.push(`  replaced:     ${previous.name}, ${previous.weights} weights, sha256 ${previous.weightsSha256}`);
  lines.push(await pickUpNotice(options.modelDir));
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

process.exitCode = await main();

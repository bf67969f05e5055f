/**
 * npm run model:generate -- [--model-dir models/resnet50] [--seed N] [--force]
 *
 * Writes a deterministic UNTRAINED ResNet50 store (see generate.ts), with a progress bar on
 * stderr. Leaves an existing store alone unless --force.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { DEFAULT_SEED, generateUntrainedModel, type GenerateStage } from './generate.ts';
import { DEFAULT_MODEL_DIR, readManifest, type ModelManifest } from '../model-store/store.ts';
import { ARCHITECTURES } from '../shared/model/resnet50.ts';
import type { ArchitectureName } from '../shared/model/resnet50.ts';

const WARNING = [
  '',
  '  ################################################################################',
  '  #  UNTRAINED MODEL: these ResNet50 weights are random (seeded) and calibrated  #',
  '  #  only so that outputs look varied. Its PREDICTIONS ARE MEANINGLESS. Use it   #',
  '  #  to build, test and benchmark the service, never to classify anything.       #',
  '  ################################################################################',
  '',
].join('\n');

function parseSeed(value: string): number {
  const seed = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(seed) || seed > 0xffffffff) {
    throw new InvalidArgumentError('expected an integer between 0 and 4294967295');
  }
  return seed;
}

const program = new Command()
  .name('model:generate')
  .description('Generate a deterministic UNTRAINED ResNet50 model store (predictions are meaningless).')
  .option('--model-dir <dir>', 'store folder', DEFAULT_MODEL_DIR)
  .option('--seed <n>', 'PRNG seed (same seed, same weights)', parseSeed, DEFAULT_SEED)
  .option('--force', 'replace an existing store (including real ImageNet weights)', false)
  .addOption(
    new Option('--architecture <name>', 'resnet50, or tiny-resnet for tests (same layers, a fraction of the cost)')
      .choices(Object.keys(ARCHITECTURES))
      .default('resnet50'),
  )
  .parse();

const options = program.opts<{ modelDir: string; seed: number; force: boolean; architecture: ArchitectureName }>();

async function main(): Promise<number> {
  let existing: ModelManifest | null = null;
  try {
    existing = await readManifest(options.modelDir);
  } catch (error) {
    if (!options.force) {
      process.stderr.write(`${(error as Error).message}\nRe-run with --force to replace it.\n`);
      return 1;
    }
  }
  if (existing && !options.force) {
    process.stderr.write(
      `A model store already exists in ${options.modelDir} (${existing.weights} weights, sha256 ${existing.weightsSha256.slice(0, 12)}…). ` +
        'Nothing to do; use --force to replace it.\n',
    );
    return 0;
  }

  process.stderr.write(WARNING + '\n');
  const bar = new cliProgress.SingleBar(
    { format: '  {stage} [{bar}] {percentage}% {detail}', hideCursor: true, clearOnComplete: false, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const tty = process.stderr.isTTY === true;
  let current: GenerateStage | undefined;
  const started = performance.now();

  const onProgress = (stage: GenerateStage, done: number, total: number): void => {
    const detail = stage === 'saving' ? `${(done / 2 ** 20).toFixed(0)}/${(total / 2 ** 20).toFixed(0)} MiB` : `${done}/${total}`;
    if (stage !== current) {
      if (current && tty) bar.stop();
      current = stage;
      if (tty) bar.start(total, done, { stage: stage.padEnd(11), detail });
      else process.stderr.write(`  ${stage}…\n`);
      return;
    }
    if (tty) bar.update(done, { detail });
  };

  try {
    const manifest = await generateUntrainedModel(options.modelDir, { seed: options.seed, architecture: options.architecture, onProgress });
    if (tty) bar.stop();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(
      `\n  Wrote ${options.modelDir} in ${seconds} s: seed ${options.seed}, weights sha256 ${manifest.weightsSha256}\n` + WARNING + '\n',
    );
    return 0;
  } catch (error) {
    if (tty) bar.stop();
    process.stderr.write(`\nGeneration failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

process.exitCode = await main();

/**
 * npm run model:fetch -- [--model-dir models/resnet50] [--url URL] [--md5 MD5] [--force] [--retries N]
 *
 * Downloads the official keras-applications ResNet50 ImageNet weights (about 98 MiB; resumed
 * when interrupted, retried with backoff, md5-checked) and imports them into the model store.
 * An existing store of ImageNet weights is left alone unless --force; an untrained one is
 * replaced. The store changes only once the import is complete.
 */
import { pickUpNotice } from '../model-store/serving-marker.ts';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isDownloadError } from './fetch/download-error.ts';
import { partFileOf } from './fetch/download.ts';
import { createFetchProgress } from './fetch/fetch-progress.ts';
import {
  cacheFileFor,
  DEFAULT_CACHE_DIR,
  fetchImagenetWeights,
  ImportError,
  type FetchLog,
} from './fetch/keras-weights.ts';
import { KERAS_RESNET50_MD5, KERAS_RESNET50_URL, MD5_PATTERN, MODEL_MD5_ENV, MODEL_URL_ENV } from '../model-store/official-weights.ts';
import { ARCHITECTURES, type ArchitectureName } from '../shared/model/resnet50.ts';
import { DEFAULT_MODEL_DIR, ModelStoreError, readManifest, type ModelManifest } from '../model-store/store.ts';

function parseCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 100) throw new InvalidArgumentError('expected an integer from 0 to 100');
  return Number(value);
}

function parseMs(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer (milliseconds)');
  return Number(value);
}

function parseMd5(value: string): string {
  if (!MD5_PATTERN.test(value)) throw new InvalidArgumentError('expected an md5: 32 hex digits');
  return value.toLowerCase();
}

function parseUrl(value: string): string {
  if (!/^https?:\/\/[^/]/i.test(value) || !URL.canParse(value)) throw new InvalidArgumentError('expected an http:// or https:// URL');
  return value;
}

const program = new Command()
  .name('model:fetch')
  .description('Download the official Keras ResNet50 ImageNet weights and import them into the model store.')
  .option('--model-dir <dir>', 'store folder', DEFAULT_MODEL_DIR)
  .addOption(new Option('--url <url>', 'where to download the Keras .h5 from (a mirror)').env(MODEL_URL_ENV).argParser(parseUrl).default(KERAS_RESNET50_URL))
  .addOption(new Option('--md5 <md5>', 'the md5 the file must have').env(MODEL_MD5_ENV).argParser(parseMd5).default(KERAS_RESNET50_MD5))
  .option('--force', 'replace an existing store even if it already holds ImageNet weights', false)
  .option('--retries <n>', 'retries after failed attempts in a row', parseCount, 5)
  .option('--connect-timeout-ms <ms>', 'how long to wait for a connection', parseMs, 10_000)
  .option('--cache-dir <dir>', 'where the downloaded .h5 is kept (and resumed from)', DEFAULT_CACHE_DIR)
  .addOption(
    new Option('--architecture <name>', 'the model the file is for: resnet50, or tiny-resnet for tests').choices(Object.keys(ARCHITECTURES)).default('resnet50'),
  )
  .parse();

const options = program.opts<{
  modelDir: string;
  url: string;
  md5: string;
  force: boolean;
  retries: number;
  connectTimeoutMs: number;
  cacheDir: string;
  architecture: ArchitectureName;
}>();

const tty = process.stderr.isTTY === true;
/** On a terminal, clears the progress bar's line first; the bar redraws itself below. */
const say = (text: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${text}\n`);

/** Log lines for a person: the message and the one or two fields that matter. */
const log: FetchLog = {
  info: (fields, message) => say(`  ${message}${detail(fields)}`),
  warn: (fields, message) => say(`  warning: ${message}${detail(fields)}`),
};

function detail(fields: object): string {
  const entries = Object.entries(fields);
  return entries.length ? ` (${entries.map(([key, value]) => `${key}: ${String(value)}`).join(', ')})` : '';
}

/** Whether to go ahead, given what the store holds now. */
async function checkExistingStore(): Promise<boolean> {
  let existing: ModelManifest | null;
  try {
    existing = await readManifest(options.modelDir);
  } catch (error) {
    if (!(error instanceof ModelStoreError)) throw error;
    say(`${error.message}\n  It will be replaced by the ImageNet weights.`);
    return true;
  }
  if (!existing) return true;
  if (existing.weights === 'imagenet' && !options.force) {
    say(
      `${options.modelDir} already holds ImageNet weights (sha256 ${existing.weightsSha256.slice(0, 12)}…). ` +
        'Nothing to do; use --force to fetch and import them again.',
    );
    return false;
  }
  say(`${options.modelDir} holds ${existing.weights} weights; they will be replaced once the import is complete.`);
  return true;
}

async function main(): Promise<number> {
  if (!(await checkExistingStore())) return 0;
  const progress = createFetchProgress('ResNet50 ImageNet weights', {
    // The bar says it all on a terminal; elsewhere a line per stage and per 10%.
    onMilestone: tty ? undefined : (_stage, _done, _total, text) => say(`  ${text}`),
  });
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  const started = performance.now();
  try {
    const result = await fetchImagenetWeights({
      modelDir: options.modelDir,
      url: options.url,
      md5: options.md5,
      cacheDir: options.cacheDir,
      architecture: options.architecture,
      retries: options.retries,
      connectTimeoutMs: options.connectTimeoutMs,
      signal: abort.signal,
      onProgress: progress.onProgress,
      log,
    });
    progress.stop();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    say(
      `\nImported ImageNet weights into ${options.modelDir} in ${seconds} s (weights sha256 ${result.manifest.weightsSha256}).\n` +
        `The downloaded file stays in ${result.file}; delete it to save space.\n` +
        (await pickUpNotice(options.modelDir)),
    );
    return 0;
  } catch (error) {
    progress.stop();
    say(`\n${explain(error)}`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** One clear paragraph per expected failure; a stack trace only for the unexpected. */
function explain(error: unknown): string {
  const part = partFileOf(cacheFileFor(options.url, options.cacheDir));
  if (isDownloadError(error)) {
    switch (error.kind) {
      case 'offline':
        return `Download failed: ${error.message}.\nThis machine seems to be offline. Check the connection (or use --url with a mirror) and run it again.`;
      case 'aborted':
        return `Interrupted. What was downloaded is kept in ${part}; run the same command again to resume.`;
      case 'checksum':
        return `Download refused: ${error.message}.\nThe model store was not touched. Check --url and --md5.`;
      default:
        return `Download failed: ${error.message}.\nWhat was downloaded is kept in ${part}; run the same command again to resume.`;
    }
  }
  if (error instanceof ImportError) {
    const cause = error.cause instanceof Error && !error.userError ? `\n${error.cause.stack ?? ''}` : '';
    return `${error.message}\nThe model store was not touched.${cause}`;
  }
  if (error instanceof ModelStoreError) return `${error.message}\nThe model store was not touched.`;
  if (typeof (error as { code?: unknown } | null)?.code === 'string') return `Failed: ${(error as Error).message}`;
  return `Failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
}

process.exitCode = await main();

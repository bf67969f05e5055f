/**
 * `npm run bench` flags, and how they combine with the hub flags passed through: the bench
 * owns the flags that decide what is measured (engine, model, endpoints), the user may add
 * any other hub flag. By default the hub runs with its own parallelism and the ceiling is the
 * best the raw engine does in one process, at 1 thread and at every core; `--threads N` pins
 * both to N threads (the hub's workers with no solo mode) for a like-for-like comparison.
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ENGINE_NAMES } from '../server/engines/engine.ts';
import type { EngineName } from '../server/engines/engine.ts';
import { resolveParallelism } from '../server/engines/parallelism.ts';
import { PRECISION_CHOICES } from '../server/config.ts';
import type { Precision } from '../shared/protocol/classify.ts';
import { defaultModelDir } from './model.ts';
import { REPO_ROOT } from '../lib/repo-root.ts';
import { splitEndpoints } from '../client/index.ts';

export interface BenchOptions {
  engine: EngineName;
  /** `--precision`: the model the ceiling and the hub run (the hub's `--precision`). */
  precision: Precision;
  modelDir: string;
  concurrency: number[];
  durationS: number;
  warmupS: number;
  replyTimeoutS: number;
  startupTimeoutS: number;
  /** `--threads`, as the engine honours it: the ceiling's only thread count and each hub worker's; null when not given. */
  threads: number | null;
  /** Thread counts the ceiling is measured at, in this order. */
  ceilingThreads: number[];
  images: string[];
  outDir: string;
  skipCeiling: boolean;
  ceilingBatchSizes: number[];
  ceilingS: number;
  /** Everything after the hub's fixed flags, as given to the child process. */
  hubArgs: string[];
  /** `--endpoints`: drive these running hubs through the client library; nothing is spawned. */
  endpoints: string[] | null;
  /** `--compare-fleet`: one hub of two workers against two hubs of one worker through the client. */
  compareFleet: boolean;
  /** `--compare-precision`: fp32 then int8, each with its ceiling and its hub's sweep, and the ratios. */
  comparePrecision: boolean;
  /** `--compare-fronts`: every way in (ZeroMQ, HTTP, v2 REST, v2 gRPC) against one hub, side by side. */
  compareFronts: boolean;
}

const DEFAULT_IMAGES = ['chelsea', 'coffee', 'astronaut', 'rocket'].map((name) => `test/fixtures/photos/${name}.jpg`);
/** Set by the bench itself; a second value in the passthrough would make the ceiling measure something else. */
const OWNED_HUB_FLAGS = ['--engine', '--precision', '--model-dir', '--zmq', '--http-port', '--http-host', '--grpc-port'];

export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const command = new Command('npm run bench')
    .description(
      'Benchmarks the hub: the raw engine ceiling, hub start-up, then a closed-loop ZeroMQ sweep over concurrency.\n' +
        'Hub flags: repeat --hub-arg, or put them after `--` (e.g. npm run bench -- --engine wasm -- --max-batch 4).',
    )
    .addOption(new Option('--engine <name>', 'inference engine, for the ceiling and the hub').choices(ENGINE_NAMES).default('onnx'))
    .addOption(
      new Option('--precision <precision>', 'model precision, for the ceiling and the hub (int8: model.int8.onnx, quantized first when missing; onnx engine only)')
        .choices(PRECISION_CHOICES)
        .default('fp32'),
    )
    .option('--model-dir <dir>', 'model store', defaultModelDir())
    .option('--concurrency <list>', 'comma-separated client counts to sweep', intList(1, 1024), [1, 2, 4, 8, 16, 32])
    .option('--duration-s <s>', 'measured seconds per step', positive(3600), 15)
    .option('--warmup-s <s>', 'unrecorded seconds before each step', nonNegative(3600), 3)
    .option(
      '--threads <n>',
      'measure the ceiling at N threads only, and run each hub worker with N threads and no solo mode ' +
        '(default: the ceiling at 1 thread and at every core, the hub with its own defaults)',
      intRange(1, 64),
    )
    .option('--images <files...>', 'images sent round-robin (default: four photo fixtures)')
    .option('--out-dir <dir>', 'where the JSON and SVG go', 'bench-results')
    .option('--skip-ceiling', 'do not measure the raw engine', false)
    .option('--ceiling-batches <list>', 'batch sizes the ceiling tries', intList(1, 64), [1, 2, 4, 8])
    .option('--ceiling-s <s>', 'seconds spent timing each ceiling batch size (at least 3 runs)', positive(600), 3)
    .option('--reply-timeout-s <s>', 'a request with no reply after this long is lost', positive(3600), 60)
    .option('--startup-timeout-s <s>', 'give up when the hub is not ready after this long', positive(3600), 180)
    .option('--hub-arg <arg>', 'one more argument for the hub (repeatable)', (value: string, previous: string[]) => [...previous, value], [])
    .option('--endpoints <list>', 'drive hubs already running (comma-separated ZeroMQ endpoints) through the client library; no hub is started, no ceiling measured')
    .option(
      '--compare-fleet',
      'compare, in one run, one hub of two workers against two hubs of one worker each driven through the client library (threads per worker: --threads, default 1)',
      false,
    )
    .option(
      '--compare-precision',
      'measure, in one run, fp32 then int8 (onnx engine): each one\'s raw ceiling and hub sweep, the ratios between them and where the hub\'s time and CPU go',
      false,
    )
    .option(
      '--compare-fronts',
      'measure, in one run, every way into one hub (ZeroMQ, HTTP, Open Inference REST and gRPC) with the same images and clients (default --concurrency 1,8)',
      false,
    )
    .argument('[hub-args...]', 'after `--`: more arguments for the hub')
    .showHelpAfterError('(add --help for usage)');
  command.parse(argv as string[]);

  const opts = command.opts<{
    engine: EngineName;
    precision: Precision;
    modelDir: string;
    concurrency: number[];
    durationS: number;
    warmupS: number;
    threads?: number;
    images?: string[];
    outDir: string;
    skipCeiling: boolean;
    ceilingBatches: number[];
    ceilingS: number;
    replyTimeoutS: number;
    startupTimeoutS: number;
    hubArg: string[];
    endpoints?: string;
    compareFleet: boolean;
    comparePrecision: boolean;
    compareFronts: boolean;
  }>();
  if (opts.endpoints !== undefined && opts.compareFleet) command.error('--endpoints and --compare-fleet exclude each other: the comparison starts its own hubs');
  const modes = [opts.endpoints !== undefined && '--endpoints', opts.compareFleet && '--compare-fleet', opts.comparePrecision && '--compare-precision', opts.compareFronts && '--compare-fronts'].filter(Boolean);
  if (modes.length > 1) command.error(`${modes.join(' and ')} exclude each other: each is a run of its own`);
  if ((opts.precision === 'int8' || opts.comparePrecision) && opts.engine !== 'onnx') {
    command.error(`int8 runs only on the onnx engine; --engine ${opts.engine} computes in fp32`);
  }
  if (opts.comparePrecision && command.getOptionValueSource('precision') === 'cli') {
    command.error('--compare-precision measures both precisions; leave --precision out');
  }
  const operands = command.args;
  const separator = argv.indexOf('--');
  if (operands.length > 0 && (separator < 0 || argv.length - separator - 1 < operands.length)) {
    command.error(`unexpected argument(s) ${operands.join(' ')}: hub flags go after \`--\` or in --hub-arg`);
  }
  const userHubArgs = [...opts.hubArg, ...operands];
  for (const flag of OWNED_HUB_FLAGS) {
    if (flagValue(userHubArgs, flag) === undefined) continue;
    const instead = flag === '--engine' || flag === '--model-dir' || flag === '--precision' ? `use the bench's ${flag}` : 'the bench binds the hub to loopback on free ports';
    command.error(`hub flag ${flag} is set by the bench: ${instead}`);
  }

  const intFlag = (flag: string): number | undefined => {
    const text = flagValue(userHubArgs, flag);
    if (text === undefined) return undefined;
    const value = Number(text);
    return Number.isInteger(value) && value >= 1 ? value : command.error(`hub flag ${flag}: expected a positive integer, got '${text}'`);
  };
  const hubThreads = intFlag('--threads-per-worker');
  const hubSolo = flagValue(userHubArgs, '--solo-threads');
  if (opts.threads !== undefined && hubThreads !== undefined && opts.threads !== hubThreads) {
    command.error(`--threads ${opts.threads} and the hub's --threads-per-worker ${hubThreads} disagree`);
  }
  if (opts.threads !== undefined && hubSolo !== undefined && Number(hubSolo) !== 0) {
    command.error(`--threads ${opts.threads} runs the hub without solo mode; the hub's --solo-threads ${hubSolo} disagrees`);
  }
  const cores = availableParallelism();
  // As the engine honours it (wasm: always 1), the figure the hub would also settle on.
  const threads = opts.threads === undefined ? null : resolveParallelism(opts.engine, cores, { threadsPerWorker: opts.threads }).threadsPerWorker;
  const modelDir = path.resolve(REPO_ROOT, opts.modelDir);
  // Without --threads the hub runs as it would in production: its own workers, threads and solo mode.
  const pinned =
    threads === null
      ? []
      : [...(hubThreads === undefined ? ['--threads-per-worker', String(threads)] : []), ...(hubSolo === undefined ? ['--solo-threads', '0'] : [])];
  const hubArgs = ['--engine', opts.engine, '--precision', opts.precision, '--model-dir', modelDir, ...pinned, ...userHubArgs];
  return {
    engine: opts.engine,
    precision: opts.precision,
    modelDir,
    concurrency: opts.compareFronts && command.getOptionValueSource('concurrency') === 'default' ? [1, 8] : opts.concurrency,
    durationS: opts.durationS,
    warmupS: opts.warmupS,
    replyTimeoutS: opts.replyTimeoutS,
    startupTimeoutS: opts.startupTimeoutS,
    threads,
    ceilingThreads: ceilingThreadCounts(opts.engine, cores, threads),
    images: (opts.images ?? DEFAULT_IMAGES).map((file) => path.resolve(opts.images ? process.cwd() : REPO_ROOT, file)),
    outDir: path.resolve(opts.outDir),
    skipCeiling: opts.skipCeiling,
    ceilingBatchSizes: opts.ceilingBatches,
    ceilingS: opts.ceilingS,
    hubArgs,
    endpoints: opts.endpoints === undefined ? null : splitEndpoints(opts.endpoints),
    compareFleet: opts.compareFleet,
    comparePrecision: opts.comparePrecision,
    compareFronts: opts.compareFronts,
  };
}

/**
 * The thread counts the ceiling is measured at: the one asked for, or 1 and the most one
 * engine uses on this machine (every core; 1 for an engine that is single-threaded anyway).
 */
export function ceilingThreadCounts(engine: EngineName, cores: number, requested: number | null): number[] {
  if (requested !== null) return [requested];
  const oneEngine = resolveParallelism(engine, cores, { workers: 1 }).threadsPerWorker;
  return [...new Set([1, oneEngine])];
}

/** The hub's arguments with its `--precision` set to `precision` (the bench always puts one in). */
export function withPrecision(hubArgs: readonly string[], precision: Precision): string[] {
  const at = hubArgs.indexOf('--precision');
  return at < 0 ? [...hubArgs, '--precision', precision] : hubArgs.map((arg, i) => (i === at + 1 ? precision : arg));
}

/** The value of `--flag v` or `--flag=v` in an argument list (the last one, as commander takes it). */
export function flagValue(args: readonly string[], flag: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) value = args[i + 1] ?? '';
    else if (args[i].startsWith(`${flag}=`)) value = args[i].slice(flag.length + 1);
  }
  return value;
}

export function intRange(min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return value;
  };
}

function intList(min: number, max: number) {
  const one = intRange(min, max);
  return (text: string): number[] => {
    const values = text.split(',').map((part) => one(part.trim()));
    if (new Set(values).size !== values.length) throw new InvalidArgumentError('values repeat');
    return values;
  };
}

export function positive(max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!(value > 0 && value <= max)) throw new InvalidArgumentError(`expected a number above 0, at most ${max}`);
    return value;
  };
}

export function nonNegative(max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!(value >= 0 && value <= max)) throw new InvalidArgumentError(`expected a number from 0 to ${max}`);
    return value;
  };
}

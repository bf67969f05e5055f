/**
 * The hub's command line: flags, their environment variables, defaults and validation.
 */
import { Command, Option } from 'commander';
import { z } from 'zod';
import { OFFLOAD_MODES } from './scheduler/dispatch-policy.ts';
import { ENGINE_CHOICES } from './engines/engine.ts';
import { KERAS_RESNET50_MD5, KERAS_RESNET50_URL, MD5_PATTERN, MODEL_MD5_ENV, MODEL_URL_ENV } from '../model-store/official-weights.ts';

export const PRECISION_CHOICES = ['fp32', 'int8'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const MiB = 1024 * 1024;
/**
 * int8 inference gains per image from batches where fp32 does not: measured with `npm run bench
 * -- --precision int8 --concurrency 16`, batches of up to 4 served 5–9 % more images per second
 * than single images at the same p99; up to 8 no more than 4, at a worse p99.
 */
const INT8_DEFAULT_MAX_BATCH = 4;
/**
 * Read here rather than by commander: commander sets a negated flag from any value of its
 * variable, so HUB_MODEL_FETCH=1 would turn the fetch off.
 */
const MODEL_FETCH_ENV = 'HUB_MODEL_FETCH';

const ConfigSchema = z.object({
  zmq: z.string().min(1),
  httpPort: z.coerce.number().int().min(0).max(65535),
  httpHost: z.string().min(1),
  /** The Open Inference Protocol over gRPC, on the HTTP front's address. */
  grpcPort: z.coerce.number().int().min(0).max(65535),
  /** Undefined: derived from the engine and the cores (see parallelism.ts). */
  workers: z.coerce.number().int().min(0).max(64).optional(),
  threadsPerWorker: z.coerce.number().int().min(1).max(64).optional(),
  soloThreads: z.coerce.number().int().min(0).max(64).optional(),
  engine: z.enum(ENGINE_CHOICES),
  /** int8: the onnx engine on model.int8.onnx (quantized at start when missing or stale). */
  precision: z.enum(PRECISION_CHOICES),
  modelDir: z.string().min(1),
  /** With no model store: try to fetch the ImageNet weights before generating untrained ones. */
  modelFetch: z.boolean(),
  modelUrl: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  modelMd5: z.string().regex(MD5_PATTERN, 'expected an md5: 32 hex digits'),
  maxImageBytes: z.coerce.number().int().min(1024),
  maxPixels: z.coerce.number().int().min(1),
  maxBatch: z.coerce.number().int().min(1).max(64),
  batchWaitMs: z.coerce.number().min(0).max(1000),
  preprocessWorkers: z.coerce.number().int().min(1).max(16),
  graceMs: z.coerce.number().int().min(0),
  logLevel: z.enum(LOG_LEVELS),
  offload: z.enum(OFFLOAD_MODES),
  verifyFraction: z.coerce.number().min(0).max(1),
  volunteerToken: z.string().min(8, 'use a token of at least 8 characters').optional(),
  volunteerOrigins: z.string().optional(),
  /** Volunteer connections held at once; more are refused at the upgrade. */
  maxVolunteers: z.coerce.number().int().min(0).max(100_000),
  /** Requests accepted but not yet running (decoding or queued) beyond which new ones get `overloaded`. */
  maxQueue: z.coerce.number().int().min(1).max(1_000_000),
  /** Deadline for requests that carry none; 0: none. */
  defaultDeadlineMs: z.coerce.number().int().min(0).max(3_600_000),
  /** Bearer token required by the HTTP API, /metrics and the event WebSocket. */
  apiToken: z.string().min(8, 'use a token of at least 8 characters').optional(),
  /** The hub's CURVE secret key (Z85, 40 characters): turns on ZeroMQ encryption and client authentication. */
  curveSecretKey: z.string().regex(/^[0-9a-zA-Z.:+=^!/*?&<>()[\]{}@%$#-]{40}$/, 'expected a Z85 CURVE key (40 characters)').optional(),
  /** Client public keys (Z85) allowed in, comma-separated, or @file with one per line. */
  curveClients: z.string().optional(),
  /** Names this hub in replies, /api/status, the ready line and metrics; undefined: `<hostname>:<zmq port>` (see hub-id.ts). */
  hubId: z.string().trim().min(1).max(200).optional(),
  /** How often the store's manifest is looked at for new weights; 0: only SIGHUP and the reload API. */
  modelPollMs: z.coerce.number().int().min(0).max(3_600_000),
  /** A model swap that would take the process past this is refused; undefined: 90% of the memory it may use. */
  swapMemoryLimitMib: z.coerce.number().int().min(64).optional(),
});

export type Config = z.infer<typeof ConfigSchema>;

function buildCommand(): Command {
  const opt = (flags: string, description: string, env: string, value: unknown) =>
    new Option(flags, description).env(env).default(value);
  return new Command('resnet-hub')
    .description('ResNet50 image classification over ZeroMQ (seed-compatible) and HTTP')
    .addOption(opt('--zmq <endpoint>', 'ZeroMQ ROUTER endpoint to bind', 'HUB_ZMQ', 'tcp://*:5576'))
    .addOption(opt('--http-port <port>', 'HTTP port for the web UI and API (0 picks a free one)', 'HUB_HTTP_PORT', 8080))
    .addOption(opt('--http-host <host>', 'HTTP address to bind', 'HUB_HTTP_HOST', '0.0.0.0'))
    .addOption(opt('--grpc-port <port>', 'gRPC port for the Open Inference Protocol (KServe v2), on the HTTP address (0 picks a free one)', 'HUB_GRPC_PORT', 8001))
    .addOption(
      new Option('--workers <n>', 'inference worker threads (default: one per core; 0: only volunteers compute)').env('HUB_WORKERS'),
    )
    .addOption(
      new Option('--threads-per-worker <n>', 'intra-op threads of each worker (default: cores / workers)').env(
        'HUB_THREADS_PER_WORKER',
      ),
    )
    .addOption(
      new Option('--solo-threads <n>', 'onnx: threads for a batch run while every other worker is idle; 0: off (default: all cores)').env(
        'HUB_SOLO_THREADS',
      ),
    )
    .addOption(
      new Option('--engine <engine>', 'inference engine in the workers')
        .choices(ENGINE_CHOICES)
        .env('HUB_ENGINE')
        .default('auto'),
    )
    .addOption(
      new Option('--precision <precision>', 'fp32, or int8 (onnx engine only: the quantized model.int8.onnx, see npm run model:quantize)')
        .choices(PRECISION_CHOICES)
        .env('HUB_PRECISION')
        .default('fp32'),
    )
    .addOption(opt('--model-dir <dir>', 'model store to serve (generated when missing)', 'HUB_MODEL_DIR', 'models/resnet50'))
    .addOption(
      new Option('--no-model-fetch', `with no model store, generate the untrained model without trying to download the ImageNet weights (env ${MODEL_FETCH_ENV}=0)`),
    )
    .addOption(opt('--model-url <url>', 'where the first start downloads the Keras ImageNet weights from', MODEL_URL_ENV, KERAS_RESNET50_URL))
    .addOption(opt('--model-md5 <md5>', 'the md5 those weights must have', MODEL_MD5_ENV, KERAS_RESNET50_MD5))
    .addOption(opt('--max-image-bytes <n>', 'largest accepted image, in bytes', 'HUB_MAX_IMAGE_BYTES', 20 * MiB))
    .addOption(opt('--max-pixels <n>', 'largest accepted image, in pixels (checked before decoding)', 'HUB_MAX_PIXELS', 40_000_000))
    .addOption(opt('--max-batch <n>', `most waiting requests one worker takes as one batch (with --precision int8 the default is ${INT8_DEFAULT_MAX_BATCH})`, 'HUB_MAX_BATCH', 1))
    .addOption(opt('--batch-wait-ms <ms>', 'how long a free worker may wait for a batch to fill', 'HUB_BATCH_WAIT_MS', 0))
    .addOption(opt('--preprocess-workers <n>', 'image decoding worker threads', 'HUB_PREPROCESS_WORKERS', 1))
    .addOption(opt('--grace-ms <ms>', 'on SIGINT/SIGTERM, how long to wait for requests in flight', 'HUB_GRACE_MS', 10_000))
    .addOption(
      new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).env('HUB_LOG_LEVEL').default('info'),
    )
    .addOption(
      new Option('--offload <mode>', 'volunteers: off, auto (where a request finishes first) or prefer (free volunteers first)')
        .choices(OFFLOAD_MODES)
        .env('HUB_OFFLOAD')
        .default('auto'),
    )
    .addOption(opt('--verify-fraction <f>', 'share of volunteer answers recomputed locally to check them (1: all, before replying)', 'HUB_VERIFY_FRACTION', 0.05))
    .addOption(new Option('--volunteer-token <token>', 'volunteers must present this token to join').env('HUB_VOLUNTEER_TOKEN'))
    .addOption(
      new Option('--volunteer-origins <list>', 'comma-separated origins whose pages may open the volunteer and event WebSockets (default: this host and localhost)').env(
        'HUB_VOLUNTEER_ORIGINS',
      ),
    )
    .addOption(opt('--max-volunteers <n>', 'volunteer tabs connected at once; more are refused at the upgrade', 'HUB_MAX_VOLUNTEERS', 256))
    .addOption(opt('--max-queue <n>', 'requests waiting (decoding or queued) beyond which new ones are refused as overloaded', 'HUB_MAX_QUEUE', 256))
    .addOption(opt('--default-deadline-ms <ms>', 'deadline for requests that carry no deadline_ms; 0: none', 'HUB_DEFAULT_DEADLINE_MS', 0))
    .addOption(new Option('--api-token <token>', 'require "Authorization: Bearer <token>" on the HTTP API, /metrics and /ws/events').env('HUB_API_TOKEN'))
    .addOption(
      new Option('--curve-secret-key <z85>', 'ZeroMQ CURVE: the hub\'s secret key (see npm run keys); clients must then use CURVE with its public key').env(
        'HUB_CURVE_SECRET_KEY',
      ),
    )
    .addOption(
      new Option('--curve-clients <keys>', 'ZeroMQ CURVE: client public keys allowed in, comma-separated, or @file with one per line').env(
        'HUB_CURVE_CLIENTS',
      ),
    )
    .addOption(new Option('--hub-id <id>', 'names this hub in every reply, /api/status, the ready line and metrics (default: <hostname>:<zmq port>)').env('HUB_HUB_ID'))
    .addOption(opt('--model-poll-ms <ms>', 'how often to look for new weights in the model store (0: only on SIGHUP or POST /api/model/reload)', 'HUB_MODEL_POLL_MS', 1000))
    .addOption(
      new Option('--swap-memory-limit-mib <n>', "refuse a model swap that would take the hub past this resident memory (default: 90% of the machine's or container's memory)").env(
        'HUB_SWAP_MEMORY_LIMIT_MIB',
      ),
    )
    .showHelpAfterError();
}

export interface FlagSpec {
  /** `--zmq`, `--no-model-fetch`, … */
  flag: string;
  env: string | undefined;
  defaultValue: unknown;
}

/** Every hub flag with its variable and default, for what must agree with them (deployment manifests, their test). */
export function hubFlags(): FlagSpec[] {
  return buildCommand().options.map((option) => ({
    flag: option.long ?? option.flags,
    env: option.long === '--no-model-fetch' ? MODEL_FETCH_ENV : option.envVar,
    defaultValue: option.defaultValue,
  }));
}

/** Parses argv (as process.argv) and the environment into a validated Config; exits on bad input. */
export function parseConfig(argv: readonly string[]): Config {
  const command = buildCommand();
  command.parse(argv as string[]);
  const options = command.opts();
  if (command.getOptionValueSource('modelFetch') !== 'cli' && process.env[MODEL_FETCH_ENV] !== undefined) {
    const value = parseSwitch(process.env[MODEL_FETCH_ENV]);
    if (value === undefined) return command.error(`invalid options:\n  ${MODEL_FETCH_ENV}: expected 1/0, true/false, yes/no or on/off`);
    options.modelFetch = value;
  }
  const result = ConfigSchema.safeParse(options);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `--${kebab(String(issue.path[0]))}: ${issue.message}`);
    return command.error(`invalid options:\n  ${problems.join('\n  ')}`);
  }
  if (result.data.precision === 'int8' && command.getOptionValueSource('maxBatch') === 'default') result.data.maxBatch = INT8_DEFAULT_MAX_BATCH;
  // Without local workers nothing can recompute a volunteer's answer.
  if (result.data.workers === 0) result.data.verifyFraction = 0;
  if (result.data.precision === 'int8' && result.data.engine !== 'auto' && result.data.engine !== 'onnx') {
    return command.error(
      `invalid options:\n  --precision int8 runs only on the onnx engine; --engine ${result.data.engine} computes in fp32. Use --engine onnx (or auto), or --precision fp32.`,
    );
  }
  return result.data;
}

function parseSwitch(value: string): boolean | undefined {
  const text = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(text)) return true;
  if (['0', 'false', 'no', 'off'].includes(text)) return false;
  return undefined;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

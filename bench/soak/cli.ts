/**
 * `npm run soak` flags. The soak owns the flags that decide where the hub listens and what it
 * serves (endpoints, model, engine, workers); any other hub flag passes through after `--`.
 * A few passed-through flags change what the soak itself must do (the image size limit sets
 * the oversized payloads, the tokens must be presented), so they are read back here.
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import { ENGINE_CHOICES, type EngineChoice } from '../../server/engines/engine.ts';
import { flagValue, intRange, nonNegative, positive } from '../cli.ts';
import { REPO_ROOT } from '../../lib/repo-root.ts';

export interface SoakOptions {
  minutes: number;
  /** The storm tests' attacks at full strength instead of the mixed load (bench/storm/storm-soak.ts). */
  storm: boolean;
  /** This many hubs, killed and restarted in turn under client load, instead of one (bench/soak/fleet-soak.ts). */
  fleet?: number;
  /** This many protocol-level volunteer peers, honest then mixed, instead of the mixed load (bench/soak/swarm-soak.ts). */
  swarm?: number;
  /** Measured seconds of each swarm run. */
  swarmSeconds: number;
  modelDir: string;
  engine: EngineChoice;
  workers: number;
  /** Closed-loop clients in all; `httpClients` of them speak HTTP, the rest ZeroMQ. */
  clients: number;
  httpClients: number;
  /** Share of requests that are bad input, 0..1. */
  badShare: number;
  replyTimeoutS: number;
  warmupS: number;
  sampleS: number;
  volunteers: boolean;
  volunteerEveryS: number;
  maxTabs: number;
  /** Share of tab departures that wait for the tab to be busy first. */
  midJobShare: number;
  joinTimeoutS: number;
  startupTimeoutS: number;
  seed: number;
  /** Request kinds left out of the mix (`http:oversized`, …). */
  exclude: string[];
  outDir: string;
  /** As given to the child process, after the loopback flags. */
  hubArgs: string[];
  /** Passed-through hub flags the soak has to honour. */
  maxImageBytes: number;
  apiToken: string | undefined;
  volunteerToken: string | undefined;
}

/** The hub's default `--max-image-bytes` (server/config.ts). */
const HUB_DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024;
/** Set by the soak: a second value in the passthrough would silently change what is soaked. */
const OWNED_HUB_FLAGS: Record<string, string> = {
  '--model-dir': "use the soak's --model-dir",
  '--engine': "use the soak's --engine",
  '--workers': "use the soak's --workers",
  '--zmq': 'the soak binds the hub to loopback on free ports',
  '--http-port': 'the soak binds the hub to loopback on free ports',
  '--http-host': 'the soak binds the hub to loopback on free ports',
  '--grpc-port': 'the soak binds the hub to loopback on free ports',
  '--curve-secret-key': 'the soak\'s clients do not speak CURVE',
};

export function parseSoakOptions(argv: readonly string[]): SoakOptions {
  const command = new Command('npm run soak')
    .description(
      'Soaks the hub: mixed valid and bad requests over ZeroMQ and HTTP, volunteer tabs joining and leaving, ' +
        'memory sampled throughout; at the end, SIGTERM with requests in flight. Exits 1 if a request is lost, ' +
        'a reply is not the documented one, or the hub does not exit 0. ' +
        'Hub flags go after `--` (e.g. npm run soak -- --minutes 2 -- --max-batch 4).',
    )
    .option('--minutes <n>', 'how long the load runs (warm-up included)', positive(24 * 60), 10)
    .option('--fleet <n>', 'instead of the mixed load: n hubs on loopback behind the client library, one killed (SIGKILL or SIGTERM) and restarted every 20 s', intRange(2, 8))
    .option('--swarm <n>', 'instead of the mixed load: n protocol-level volunteer peers, an honest swarm then a mixed one (silent, vanishing, failing, crawling)', intRange(1, 5000))
    .option('--swarm-seconds <s>', 'measured seconds of each swarm run', positive(3600), 20)
    .option('--storm', 'instead of the mixed load: floods, pipelining, vanishing clients, HTTP aborts and silent WebSockets in turn', false)
    .option('--model-dir <dir>', 'model store the hub serves (models/test-resnet50: the full ResNet50)', 'models/test-tiny')
    .addOption(new Option('--engine <name>', "the hub's inference engine").choices(ENGINE_CHOICES).default('onnx'))
    .option('--workers <n>', "the hub's local worker threads", intRange(0, 64), 1)
    .option('--clients <n>', 'closed-loop clients in all', intRange(1, 256), 8)
    .option('--http-clients <n>', 'how many of those speak HTTP (the rest ZeroMQ DEALER)', intRange(0, 256), 2)
    .option('--bad-share <f>', 'share of requests that are bad input', fraction(), 0.2)
    .option('--reply-timeout-s <s>', 'a request with no reply after this long is lost', positive(3600), 60)
    .option('--warmup-s <s>', 'load before the start RSS is taken', nonNegative(3600), 30)
    .option('--sample-s <s>', "how often the hub's RSS and /api/status are sampled", positive(600), 5)
    .option('--no-volunteers', 'no browser: local workers only')
    .option('--volunteer-every-s <s>', 'a tab joins or leaves this often', positive(3600), 45)
    .option('--max-tabs <n>', 'most volunteer tabs open at once', intRange(1, 8), 2)
    .option('--mid-job-share <f>', 'share of departures that wait until the tab is computing, then close it', fraction(), 0.5)
    .option('--join-timeout-s <s>', 'a tab not ready after this long counts as a failed join', positive(3600), 180)
    .option('--startup-timeout-s <s>', 'give up when the hub is not ready after this long', positive(3600), 300)
    .option('--seed <n>', 'seed of the request mix and the tab churn (same seed, same sequence of choices)', intRange(0, 2 ** 31 - 1), 1)
    .option('--exclude <kinds...>', 'request kinds to leave out of the mix, as the final table names them (e.g. http:oversized)', [])
    .option('--out-dir <dir>', 'where the JSON and SVG go', 'bench-results')
    .argument('[hub-args...]', 'after `--`: more arguments for the hub')
    .showHelpAfterError('(add --help for usage)');
  command.parse(argv as string[]);

  // What commander parses; the rest is derived below.
  const opts = command.opts<Omit<SoakOptions, 'hubArgs' | 'maxImageBytes' | 'apiToken' | 'volunteerToken'>>();
  const passthrough = command.args;
  const separator = argv.indexOf('--');
  if (passthrough.length > 0 && (separator < 0 || argv.length - separator - 1 < passthrough.length)) {
    command.error(`unexpected argument(s) ${passthrough.join(' ')}: hub flags go after \`--\``);
  }
  for (const [flag, instead] of Object.entries(OWNED_HUB_FLAGS)) {
    if (flagValue(passthrough, flag) !== undefined) command.error(`hub flag ${flag} is set by the soak: ${instead}`);
  }
  if (opts.httpClients > opts.clients) command.error(`--http-clients ${opts.httpClients} is more than --clients ${opts.clients}`);
  if (opts.workers === 0 && !opts.volunteers) command.error('--workers 0 with --no-volunteers: nothing would compute');

  const maxImageBytesText = flagValue(passthrough, '--max-image-bytes') ?? process.env.HUB_MAX_IMAGE_BYTES;
  const maxImageBytes = maxImageBytesText === undefined ? HUB_DEFAULT_MAX_IMAGE_BYTES : Number(maxImageBytesText);
  if (!Number.isInteger(maxImageBytes) || maxImageBytes < 1024) command.error(`--max-image-bytes: expected an integer of at least 1024, got '${maxImageBytesText}'`);

  const modelDir = path.resolve(REPO_ROOT, opts.modelDir);
  // Volunteers only get work when they are preferred (auto rarely picks a software-GPU tab);
  // given first, so `-- --offload auto` still wins.
  const hubArgs = ['--offload', 'prefer', '--engine', opts.engine, '--model-dir', modelDir, '--workers', String(opts.workers), ...passthrough];
  return {
    ...opts,
    modelDir,
    outDir: path.resolve(opts.outDir),
    hubArgs,
    maxImageBytes,
    apiToken: flagValue(passthrough, '--api-token') ?? process.env.HUB_API_TOKEN,
    volunteerToken: flagValue(passthrough, '--volunteer-token') ?? process.env.HUB_VOLUNTEER_TOKEN,
  };
}

function fraction() {
  return nonNegative(1);
}

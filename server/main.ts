/**
 * `npm start`: the hub. Makes sure a model is there, starts the worker threads, opens the
 * ZeroMQ and HTTP fronts, and on SIGINT/SIGTERM answers what it accepted before it exits.
 */
import { parseConfig } from './config.ts';
import { createLogger } from '../lib/log.ts';
import { ensureModel, prepareEngineFiles, prepareSwapFiles } from './model-bootstrap.ts';
import { startHub } from './start-hub.ts';
import type { RunningHub } from './start-hub.ts';
import { ensureWebBuild } from './web-build.ts';
import { installLastResort } from './last-resort.ts';

const config = parseConfig(process.argv);
const log = createLogger(config.logLevel);

/** The ZeroMQ and HTTP APIs do not need the web UI: a failed build is reported, not fatal. */
async function buildWebUi(): Promise<void> {
  try {
    await ensureWebBuild(log);
  } catch (error) {
    log.error({ err: error }, 'the web UI could not be built; serving the APIs without it (an earlier build, if any, is still served)');
  }
}

let hub: RunningHub | undefined;
let stopping: Promise<boolean> | undefined;

/** Drains once, however many signals or failures ask for it; resolves whether every request was answered. */
function drainOnce(): Promise<boolean> {
  stopping ??= hub ? hub.stop(config.graceMs) : Promise.resolve(true);
  return stopping;
}

installLastResort({
  log,
  graceMs: config.graceMs,
  drainAndStop: async () => {
    const drained = await drainOnce();
    log.info({ drained }, 'stopped after an unexpected error');
  },
});

function stop(signal: string): void {
  if (stopping) return;
  if (!hub) {
    // Until the hub is ready nothing is accepted (requests during warm-up are answered
    // `not_ready`), so there is nothing to drain; half-written model or web builds live in
    // temporary folders that are only swapped in when complete.
    log.info({ signal }, 'stopped before the hub was ready');
    process.exit(0);
  }
  log.info({ signal, grace_ms: config.graceMs }, 'stopping: answering requests in flight');
  drainOnce().then(
    (drained) => {
      log.info({ drained }, 'stopped');
      process.exit(0);
    },
    (error: unknown) => {
      log.error({ err: error }, 'error while stopping');
      process.exit(1);
    },
  );
}

async function main(): Promise<void> {
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // The conventional "reload your configuration": here, look for new weights and swap to them.
  process.on('SIGHUP', () => {
    if (hub) hub.reloadModel('sighup');
    else log.info('SIGHUP before the hub is ready: it starts with whatever the store holds');
  });
  await buildWebUi();
  const manifest = await ensureModel(config.modelDir, log, {
    fetch: { enabled: config.modelFetch, url: config.modelUrl, md5: config.modelMd5 },
  });
  const candidates = await prepareEngineFiles(config, log, manifest.weightsSha256);
  hub = await startHub(config, manifest, log, {
    candidates,
    prepareModel: (_next, engine) => prepareSwapFiles(config, log, engine),
  });
}

main().catch((error: unknown) => {
  log.fatal({ err: error }, 'could not start');
  process.exit(1);
});

/**
 * `npm start`: the hub. Makes sure a model is there, starts the worker threads, opens the
 * ZeroMQ and HTTP fronts, and on SIGINT/SIGTERM answers what it accepted before it exits.
 */
import { parseConfig } from './config.ts';
import { createLogger } from './log.ts';
import { ensureModel } from './model-bootstrap.ts';
import { startHub } from './start-hub.ts';

const config = parseConfig(process.argv);
const log = createLogger(config.logLevel);

async function main(): Promise<void> {
  const manifest = await ensureModel(config.modelDir, log);
  const hub = await startHub(config, manifest, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, grace_ms: config.graceMs }, 'stopping: answering requests in flight');
    hub.stop(config.graceMs).then(
      (drained) => {
        log.info({ drained }, 'stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  log.fatal({ err: error }, 'could not start');
  process.exit(1);
});

/**
 * The last line of defence: an exception (or a rejected promise) that escaped every handler.
 *
 * Serving on after one is a gamble: whatever state it interrupted (a half-updated queue, a
 * socket loop that stopped) may leave the hub alive but answering nobody, which is worse than
 * down because nothing restarts it. So the hub treats it as fatal, but not abruptly: readiness
 * turns 503 at once, new requests get `shutting_down`, every request already accepted is
 * answered within the grace period, and then the process exits with EXIT_FATAL so that its
 * supervisor (Kubernetes, systemd, Docker's restart policy) starts a fresh one. Clients that
 * spread over several hubs move to the others meanwhile.
 */
import type { Logger } from '../lib/log.ts';

/** EX_SOFTWARE (sysexits.h): an internal software error. */
export const EXIT_FATAL = 70;

/** Beyond the drain's own grace, time to close sockets and workers before the exit is forced. */
const FORCED_EXIT_MARGIN_MS = 10_000;
/** Further escaped errors during the drain: the first few are logged, the rest counted. */
const LOGGED_REPEATS = 5;

export interface LastResortOptions {
  log: Logger;
  graceMs: number;
  /** Drains and stops the hub (or does nothing when it is not running yet); resolves when done. */
  drainAndStop: () => Promise<void>;
  exit?: (code: number) => never;
}

export function installLastResort(options: LastResortOptions): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let failed = false;
  let repeats = 0;
  const onEscaped = (error: unknown, origin: string) => {
    if (failed) {
      repeats++;
      if (repeats <= LOGGED_REPEATS) options.log.error({ err: error, origin, repeats }, 'another unexpected error while draining');
      return;
    }
    failed = true;
    options.log.fatal(
      { err: error, origin, grace_ms: options.graceMs, exit_code: EXIT_FATAL },
      'unexpected error: the hub drains (answers what it accepted) and exits so that its supervisor restarts it',
    );
    // Whatever happens to the drain, the process must not outlive it by much.
    setTimeout(() => exit(EXIT_FATAL), options.graceMs + FORCED_EXIT_MARGIN_MS).unref();
    options.drainAndStop().then(
      () => exit(EXIT_FATAL),
      (drainError: unknown) => {
        options.log.error({ err: drainError }, 'error while draining after an unexpected error');
        exit(EXIT_FATAL);
      },
    );
  };
  process.on('uncaughtException', (error, origin) => onEscaped(error, origin));
  process.on('unhandledRejection', (reason) => onEscaped(reason, 'unhandledRejection'));
}

/**
 * Ctrl-C during a benchmark: stop the hub it started (whichever is running now), then exit 130,
 * so no hub is left behind holding the ports and the cores.
 */
import type { SpawnedHub } from './hub.ts';
import type { Progress } from './progress.ts';

/** Returns the function that takes the handler off again. */
export function stopHubOnInterrupt(progress: Progress, currentHub: () => SpawnedHub | undefined, stopTimeoutMs: number): () => void {
  const interrupt = () => {
    progress.stop();
    process.stderr.write('interrupted: stopping the hub\n');
    const hub = currentHub();
    void (hub ? hub.stop(stopTimeoutMs) : Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  return () => {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
  };
}

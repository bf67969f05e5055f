/**
 * A note beside a model store saying which running hub serves it, so that the model tools can
 * tell the user what happens to the weights they just wrote: a running hub picks them up by
 * itself (it watches its store), or on SIGHUP when it does not watch. The note lives beside
 * the store, not in it, because the whole store folder is replaced when new weights arrive.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';

export interface ServingMarker {
  pid: number;
  http: string;
  /** How often the hub looks at the store; 0: only on SIGHUP or POST /api/model/reload. */
  poll_ms: number;
  started_at: string;
}

export function markerPath(modelDir: string): string {
  return `${modelDir.replace(/\/+$/, '')}.serving.json`;
}

export async function writeServingMarker(modelDir: string, marker: ServingMarker): Promise<void> {
  await writeFile(markerPath(modelDir), `${JSON.stringify(marker, null, 2)}\n`);
}

export async function removeServingMarker(modelDir: string, pid: number): Promise<void> {
  // Only our own: another hub may have started on the same store since.
  if ((await readServingMarker(modelDir))?.pid === pid) await rm(markerPath(modelDir), { force: true });
}

/** The hub serving this store, if its note is there and its process is alive. */
export async function readServingMarker(modelDir: string): Promise<ServingMarker | undefined> {
  let marker: ServingMarker;
  try {
    marker = JSON.parse(await readFile(markerPath(modelDir), 'utf8')) as ServingMarker;
  } catch {
    return undefined;
  }
  try {
    process.kill(marker.pid, 0);
    return marker;
  } catch {
    return undefined; // a note left by a hub that died
  }
}

/** What the model tools print after writing new weights into `modelDir`. */
export async function pickUpNotice(modelDir: string): Promise<string> {
  const hub = await readServingMarker(modelDir);
  if (!hub) return `The next \`npm start -- --model-dir ${modelDir}\` serves them.`;
  if (hub.poll_ms > 0) {
    return `A running hub (pid ${hub.pid}, ${hub.http}) serves this store: it picks the new weights up by itself within seconds, without a restart, and answers every request meanwhile (see /api/status or the dashboard).`;
  }
  return `A running hub (pid ${hub.pid}, ${hub.http}) serves this store without watching it: send it SIGHUP (kill -HUP ${hub.pid}) or POST ${hub.http}/api/model/reload to switch to the new weights without a restart.`;
}

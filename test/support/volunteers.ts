/**
 * Volunteer tabs as the end-to-end tests see them: the hub's list of volunteers, waiting for a
 * condition, and opening a volunteer page that joins by itself.
 */
import type { LaunchedBrowser, TrackedPage } from '../../kit/browser.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import type { VolunteerStatus } from '../../shared/protocol/status.ts';

/** A tab as `/api/status` lists it. */
export type VolunteerView = VolunteerStatus;

export async function volunteers(hub: HubProcess): Promise<VolunteerView[]> {
  const status = (await (await fetch(`${hub.http}/api/status`)).json()) as { volunteers: VolunteerView[] };
  return status.volunteers;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Opens the volunteer page, which starts by itself, and waits until the hub lists it ready. */
export async function joinVolunteer(browser: LaunchedBrowser, hub: HubProcess, query = '', timeoutMs = 120_000): Promise<{ tab: TrackedPage; id: string }> {
  const before = new Set((await volunteers(hub)).map((v) => v.id));
  const tab = await browser.newPage();
  await tab.page.goto(`${hub.http}/volunteer?autostart=1${query}`);
  const id = await waitFor(
    'the volunteer to join',
    async () => (await volunteers(hub)).find((v) => !before.has(v.id) && (v.state === 'ready' || v.state === 'busy'))?.id,
    timeoutMs,
  );
  return { tab, id };
}

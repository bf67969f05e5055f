/**
 * Volunteer tabs joining and leaving during the soak: headless Chromium (WebGPU on
 * SwiftShader) opening `/volunteer?autostart=1`. The first tab joins at once; then every
 * interval one joins or one leaves, keeping between 0 and --max-tabs open. Some departures
 * wait until the tab is computing and close it then, so the hub must hand its jobs to someone
 * else. A tab is known to the hub by the id that appears in /api/status after it opens (one
 * action at a time, so the new id is the tab's).
 */
import { launchChromium } from '../../kit/browser.ts';
import type { LaunchedBrowser, TrackedPage } from '../../kit/browser.ts';
import { fetchStatus } from './hub-status.ts';
import type { StatusSource } from './hub-status.ts';
import type { Random } from '../../kit/random.ts';

export interface VolunteerEvent {
  at_s: number;
  /** join-cancelled: the soak ended while the tab was still loading (not the tab's fault). */
  action: 'join' | 'leave' | 'join-failed' | 'join-cancelled';
  /** The hub's id of the tab. */
  id?: string;
  /** join: page open to listed ready by the hub; leave: how long it waited for a job. */
  ms: number;
  /** leave: the tab was computing a job when it was closed. */
  mid_job?: boolean;
  tabs_open: number;
  /** Console errors, page errors or crashes the tab had (first few). */
  problems?: string[];
  detail?: string;
}

export interface ChurnOptions {
  status: StatusSource;
  everyMs: number;
  maxTabs: number;
  midJobShare: number;
  joinTimeoutMs: number;
  volunteerToken?: string;
  random: Random;
  startedAt: number;
}

interface Tab {
  id: string;
  tracked: TrackedPage;
}

const POLL_MS = 250;
const STATUS_WAIT_MS = 10_000;
/** A departure that waits for a job gives up waiting after this long and closes the tab anyway. */
const MID_JOB_WAIT_MS = 20_000;
const PROBLEMS_KEPT = 3;

export class VolunteerChurn {
  readonly events: VolunteerEvent[] = [];
  private readonly tabs: Tab[] = [];
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  private constructor(
    private readonly browser: LaunchedBrowser,
    private readonly options: ChurnOptions,
  ) {}

  static async start(options: ChurnOptions): Promise<VolunteerChurn> {
    const churn = new VolunteerChurn(await launchChromium({ stockWebGpu: true }), options);
    churn.loop = churn.run();
    return churn;
  }

  get openTabs(): number {
    return this.tabs.length;
  }

  /** Ends the churn (an action under way is cut short); the tabs stay open until close(). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  async close(): Promise<void> {
    await this.browser.close();
  }

  private async run(): Promise<void> {
    // On a fixed schedule from the start of each change, so a slow join does not stretch it.
    let changedAt = performance.now();
    await this.join();
    while (!this.stopped) {
      await this.sleep(Math.max(0, changedAt + this.options.everyMs - performance.now()));
      if (this.stopped) break;
      changedAt = performance.now();
      const open = this.tabs.length;
      const leave = open >= this.options.maxTabs || (open > 0 && this.options.random() < 0.5);
      if (leave) await this.leave();
      else await this.join();
    }
  }

  private async join(): Promise<void> {
    const started = performance.now();
    // Which tabs the hub knows already: the new tab is the one that is not among them.
    const before = await this.poll(STATUS_WAIT_MS, () => fetchStatus(this.options.status).then((status) => status ?? undefined));
    if (before === undefined) {
      if (!this.stopped) this.record({ action: 'join-failed', ms: Math.round(performance.now() - started), detail: '/api/status did not answer' });
      return;
    }
    const known = new Set(before.volunteers.map((v) => v.id));
    const tracked = await this.browser.newPage();
    const token = this.options.volunteerToken ? `&token=${encodeURIComponent(this.options.volunteerToken)}` : '';
    let id: string | undefined;
    let detail: string | undefined;
    try {
      await tracked.page.goto(`${this.options.status.base}/volunteer?autostart=1${token}`);
      id = await this.poll(this.options.joinTimeoutMs, async () => {
        const fresh = (await fetchStatus(this.options.status))?.volunteers.find((v) => !known.has(v.id) && (v.state === 'ready' || v.state === 'busy'));
        return fresh?.id;
      });
      if (id === undefined && !this.stopped) detail = `not ready within ${this.options.joinTimeoutMs} ms`;
    } catch (error) {
      detail = error instanceof Error ? error.message : String(error);
    }
    const ms = Math.round(performance.now() - started);
    if (id === undefined) {
      await tracked.page.close().catch(() => {});
      const cancelled = this.stopped && detail === undefined;
      this.record({ action: cancelled ? 'join-cancelled' : 'join-failed', ms, detail, problems: problemsOf(tracked) });
      return;
    }
    this.tabs.push({ id, tracked });
    this.record({ action: 'join', id, ms });
  }

  private async leave(): Promise<void> {
    const tab = this.tabs.splice(Math.floor(this.options.random() * this.tabs.length), 1)[0];
    const started = performance.now();
    let midJob = false;
    if (this.options.random() < this.options.midJobShare) {
      const busy = await this.poll(MID_JOB_WAIT_MS, async () => {
        const state = (await fetchStatus(this.options.status))?.volunteers.find((v) => v.id === tab.id)?.state;
        return state === 'busy' ? true : undefined;
      }, 100);
      midJob = busy === true;
    }
    await tab.tracked.page.close().catch(() => {});
    this.record({ action: 'leave', id: tab.id, ms: Math.round(performance.now() - started), mid_job: midJob, problems: problemsOf(tab.tracked) });
  }

  /** Calls `probe` until it gives a value, the time is up, or the churn stops. */
  private async poll<T>(timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = POLL_MS): Promise<T | undefined> {
    const until = performance.now() + timeoutMs;
    while (!this.stopped && performance.now() < until) {
      const value = await probe();
      if (value !== undefined) return value;
      await this.sleep(everyMs);
    }
    return undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private record(event: Omit<VolunteerEvent, 'at_s' | 'tabs_open'>): void {
    const { problems, ...rest } = event;
    this.events.push({
      at_s: Math.round((performance.now() - this.options.startedAt) / 100) / 10,
      tabs_open: this.tabs.length,
      ...rest,
      ...(problems && problems.length > 0 ? { problems } : {}),
    });
  }
}

function problemsOf(tracked: TrackedPage): string[] {
  return tracked.problems.slice(0, PROBLEMS_KEPT).map((p) => `${p.kind}: ${p.text.split('\n')[0].slice(0, 200)}`);
}

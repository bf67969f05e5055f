/**
 * New weights without downtime. When the store holds a new model (or on SIGHUP, or
 * POST /api/model/reload) the hub, while it keeps serving the old one:
 *   preparing  makes what the engines need of the new store (ONNX export, int8);
 *   warming    starts a second set of local workers on it and warms them;
 *   switching  moves admission to it at one instant (waiting jobs too), tells volunteer tabs,
 *              lets the old workers finish what they hold, then stops them.
 * If the new model cannot be prepared or warmed, the old one serves on, and the failure is
 * logged and kept in the history; a later change or reload tries again. A swap that would
 * take the process past its memory limit (two models are in memory meanwhile) is refused.
 * Requests that come during a swap are coalesced into one more swap after it.
 */
import { EventEmitter } from 'node:events';
import type { ModelManifest } from '../../model-store/store.ts';
import { readManifest } from '../../model-store/store.ts';
import type { ModelInfo } from '../../shared/protocol/classify.ts';
import type { ModelSwapRecord, ModelSwapStatus, SwapStep, SwapTrigger } from '../../shared/protocol/model-swap.ts';
import type { Logger } from '../../lib/log.ts';

/** One model's local workers, as the swapper starts and stops them. */
export interface ServingModel {
  readonly sha256: string;
  /** Stops its workers; work they still hold fails over to whatever serves next. */
  stop(): Promise<void>;
}

export interface ModelSwapperOptions {
  modelDir: string;
  log: Logger;
  /** The model admission runs on now. */
  current: () => ModelInfo;
  serving: () => ServingModel;
  /** ONNX export, int8: whatever the engines in use need of a store. Throws when it cannot. */
  prepare: (manifest: ModelManifest) => Promise<void>;
  /** Starts (and warms) local workers on the new model; they take no job of the old one. */
  start: (manifest: ModelManifest) => Promise<ServingModel>;
  /** The instant of the switch: admission, waiting jobs and volunteers move to `model`. */
  switchTo: (model: ModelInfo, serving: ServingModel) => void;
  /** Jobs still waiting or running on a model. */
  jobsFor: (sha256: string) => number;
  /** After the old workers stopped: fail what is still pinned to their model. */
  retired: (sha256: string) => void;
  modelInfo: (manifest: ModelManifest) => ModelInfo;
  /** The process' resident memory now, MiB. */
  rssMiB: () => number;
  /** The memory one more model's workers take (measured when the first ones started), MiB. */
  footprintMiB: () => number;
  /** Refuse a swap that would take the process past this, MiB. */
  memoryLimitMiB: number;
  /** Longest wait for the old workers to finish what they hold before they are stopped anyway. */
  retireTimeoutMs?: number;
}

export interface ModelSwapperEvents {
  swap: [record: ModelSwapRecord];
}

const HISTORY = 50;
const RSS_SAMPLE_MS = 100;

export class ModelSwapper extends EventEmitter<ModelSwapperEvents> {
  private readonly history: ModelSwapRecord[] = [];
  private current: ModelSwapRecord | undefined;
  private running: Promise<void> | undefined;
  private again: SwapTrigger | undefined;
  private closing = false;
  private swaps = 0;
  /** Workers started for a swap that has not switched yet: stopped if the hub stops first. */
  private starting: ServingModel | undefined;

  constructor(private readonly options: ModelSwapperOptions) {
    super();
  }

  status(): ModelSwapStatus {
    return { current: this.current && { ...this.current }, history: this.history.map((record) => ({ ...record })) };
  }

  /** Asks for a swap; returns the record of the one that will handle it (under way, or new). */
  request(trigger: SwapTrigger): ModelSwapRecord | undefined {
    if (this.closing) return undefined;
    if (this.running) {
      // A swap is under way: one more look at the store after it covers any number of asks.
      this.again = trigger;
      return this.current;
    }
    this.running = this.run(trigger).finally(() => {
      this.running = undefined;
      const next = this.again;
      this.again = undefined;
      if (next && !this.closing) this.request(next);
    });
    return this.current;
  }

  /** For shutdown: no new swap; one under way stops where it is (its new workers are stopped). */
  async close(): Promise<void> {
    this.closing = true;
    await this.starting?.stop();
    await this.running;
  }

  private async run(trigger: SwapTrigger): Promise<void> {
    const from = this.options.current();
    const record: ModelSwapRecord = {
      id: ++this.swaps,
      trigger,
      state: 'preparing',
      from: from.sha256,
      started_at: new Date().toISOString(),
      steps_ms: {},
      rss_before_mib: round(this.options.rssMiB()),
    };
    this.current = record;
    const startedAt = performance.now();
    let stepAt = startedAt;
    const rssTimer = setInterval(() => (record.rss_peak_mib = Math.max(record.rss_peak_mib ?? 0, round(this.options.rssMiB()))), RSS_SAMPLE_MS);
    const enter = (step: SwapStep) => {
      record.steps_ms[record.state as SwapStep] = Math.round(performance.now() - stepAt);
      stepAt = performance.now();
      record.state = step;
      this.emit('swap', { ...record });
    };
    try {
      const manifest = await readManifest(this.options.modelDir);
      if (trigger === 'store' && manifest?.weightsSha256 === from.sha256) {
        // The manifest was rewritten with the same weights (an int8 report added, say): no news.
        this.current = undefined;
        this.swaps--;
        return;
      }
      this.emit('swap', { ...record });
      if (!manifest) return this.end(record, 'refused', 'there is no model in the store');
      record.to = manifest.weightsSha256;
      if (manifest.weightsSha256 === from.sha256) return this.end(record, 'refused', 'the store holds the model already in use');
      const needMiB = this.options.rssMiB() + this.options.footprintMiB();
      if (needMiB > this.options.memoryLimitMiB) {
        return this.end(record, 'refused', `two models would need about ${Math.round(needMiB)} MiB, over the limit of ${this.options.memoryLimitMiB} MiB (--swap-memory-limit-mib)`);
      }
      this.options.log.info({ swap: record.id, trigger, from: from.sha256, to: manifest.weightsSha256 }, 'model swap: preparing the new model');
      await this.options.prepare(manifest);
      if (this.closing) return this.end(record, 'failed', 'the hub is stopping');
      enter('warming');
      const next = await this.startWorkers(manifest);
      if (this.closing) {
        await next.stop();
        return this.end(record, 'failed', 'the hub is stopping');
      }
      enter('switching');
      const old = this.options.serving();
      this.options.switchTo(this.options.modelInfo(manifest), next);
      record.to_switch_ms = Math.round(performance.now() - startedAt);
      this.options.log.info({ swap: record.id, to: manifest.weightsSha256, to_switch_ms: record.to_switch_ms }, 'model swap: switched; the old workers finish what they hold');
      await this.retire(old);
      record.steps_ms.switching = Math.round(performance.now() - stepAt);
      this.end(record, 'done');
    } catch (error) {
      this.end(record, 'failed', error instanceof Error ? error.message : String(error));
    } finally {
      clearInterval(rssTimer);
    }
  }

  private async startWorkers(manifest: ModelManifest): Promise<ServingModel> {
    const starting = this.options.start(manifest);
    // Known as soon as it exists, so that close() can stop it mid-warm-up.
    this.starting = { sha256: manifest.weightsSha256, stop: async () => (await starting.catch(() => undefined))?.stop() };
    try {
      return await starting;
    } finally {
      this.starting = undefined;
    }
  }

  /** Waits until the old model holds no job (or the timeout), then stops its workers. */
  private async retire(old: ServingModel): Promise<void> {
    const giveUpAt = performance.now() + (this.options.retireTimeoutMs ?? 60_000);
    while (this.options.jobsFor(old.sha256) > 0 && performance.now() < giveUpAt && !this.closing) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await old.stop();
    this.options.retired(old.sha256);
  }

  private end(record: ModelSwapRecord, state: 'done' | 'failed' | 'refused', reason?: string): void {
    record.state = state;
    record.finished_at = new Date().toISOString();
    record.rss_peak_mib = Math.max(record.rss_peak_mib ?? 0, round(this.options.rssMiB()));
    if (reason !== undefined) record.reason = reason;
    this.current = undefined;
    this.history.push(record);
    if (this.history.length > HISTORY) this.history.shift();
    const fields = { swap: record.id, trigger: record.trigger, from: record.from, to: record.to, reason, steps_ms: record.steps_ms, to_switch_ms: record.to_switch_ms, rss_peak_mib: record.rss_peak_mib };
    if (state === 'done') this.options.log.info(fields, 'model swap done');
    else if (state === 'failed') this.options.log.error(fields, 'model swap failed; the old model keeps serving');
    else this.options.log.warn(fields, 'model swap refused');
    this.emit('swap', { ...record });
  }
}

function round(mib: number): number {
  return Math.round(mib * 10) / 10;
}

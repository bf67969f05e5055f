/**
 * Headless Chromium for browser tests (playwright-core driving Debian's /usr/bin/chromium), with
 * WebGPU on SwiftShader, a fresh temporary profile per launch, and every console error and page
 * error collected per page so tests can assert there were none.
 *
 * Flags, as checked on this Chromium (156): `--enable-unsafe-webgpu` is what makes
 * `navigator.gpu.requestAdapter()` return an adapter (SwiftShader, "google"/"swiftshader",
 * a fallback adapter) — without it the adapter is null. `--enable-features=Vulkan` and
 * `--use-angle=swiftshader` change nothing here and are not passed. `--no-sandbox` is needed to
 * run as root (containers). WebGPU exists only in secure contexts: serve pages from
 * http://127.0.0.1 or http://localhost, not from data: or file: URLs.
 *
 * Tests also pass SKIP_WORKGROUP_ZERO_INIT (below) unless they ask for a stock browser.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, BrowserContextOptions, ConsoleMessage, Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * WebGPU guarantees that a shader's workgroup memory starts zeroed, and Dawn adds the code that
 * zeroes it to every shader. On SwiftShader compiling that code is most of a tab's start: the
 * tiny model's first inference took 13.5 s with it and 1.7 s without (Chromium 156, AMD EPYC
 * Zen 5). TF.js's kernels write their workgroup memory before reading it, so the answers are the
 * same. Tests that do not ask for a stock browser skip the zeroing; at least one test runs stock
 * (as a volunteer's browser is), and so do the benchmarks.
 */
export const SKIP_WORKGROUP_ZERO_INIT = '--enable-dawn-features=disable_workgroup_init';

/** One console error or uncaught page error, with where it came from. */
export interface PageProblem {
  kind: 'console' | 'pageerror' | 'worker-console' | 'crash';
  text: string;
  url?: string;
}

export interface TrackedPage {
  page: Page;
  /** Console errors and uncaught errors so far (live array). */
  problems: PageProblem[];
  /** Every console message, for diagnosis when a test fails. */
  log: string[];
}

export interface LaunchedBrowser {
  context: BrowserContext;
  /** The temporary profile folder (deleted by close()). */
  userDataDir: string;
  /** Opens a page whose console errors and page errors are collected. */
  newPage(): Promise<TrackedPage>;
  /** All problems of every page opened so far. */
  problems(): PageProblem[];
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** Extra Chromium flags. */
  args?: string[];
  /** WebGPU exactly as a volunteer's browser has it (no SKIP_WORKGROUP_ZERO_INIT). */
  stockWebGpu?: boolean;
  context?: BrowserContextOptions;
  /** Echo every console message to stderr (debugging). */
  echoConsole?: boolean;
}

/**
 * Launches headless Chromium with a new temporary user-data-dir (a persistent context, so
 * IndexedDB and the HTTP cache behave as in a real profile across reloads and pages).
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<LaunchedBrowser> {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'resnet-hub-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(options.stockWebGpu ? [] : [SKIP_WORKGROUP_ZERO_INIT]), ...(options.args ?? [])],
      ...options.context,
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const tracked: TrackedPage[] = [];

  // A persistent context opens with one blank page; keep it out of the way.
  for (const page of context.pages()) await page.close().catch(() => {});

  return {
    context,
    userDataDir,
    async newPage() {
      const page = await context.newPage();
      const entry = track(page, options.echoConsole ?? false);
      tracked.push(entry);
      return entry;
    },
    problems() {
      return tracked.flatMap((t) => t.problems);
    },
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

function describe(message: ConsoleMessage): string {
  const location = message.location();
  const where = location.url ? ` (${location.url}:${location.lineNumber})` : '';
  return `${message.text()}${where}`;
}

function track(page: Page, echo: boolean): TrackedPage {
  const problems: PageProblem[] = [];
  const log: string[] = [];
  page.on('console', (message) => {
    if (message.worker()) return; // recorded by the worker's own listener below
    const line = `[${message.type()}] ${describe(message)}`;
    log.push(line);
    if (echo) process.stderr.write(`page: ${line}\n`);
    if (message.type() === 'error') problems.push({ kind: 'console', text: message.text(), url: message.location().url });
  });
  page.on('pageerror', (error) => {
    log.push(`[pageerror] ${error.message}`);
    problems.push({ kind: 'pageerror', text: error.stack ?? error.message });
  });
  page.on('crash', () => problems.push({ kind: 'crash', text: 'the page crashed' }));
  page.on('worker', (worker) => {
    // Console output of dedicated workers arrives on the worker, not always on the page.
    worker.on('console', (message) => {
      const line = `[worker ${message.type()}] ${describe(message)}`;
      log.push(line);
      if (echo) process.stderr.write(`page: ${line}\n`);
      if (message.type() === 'error') problems.push({ kind: 'worker-console', text: message.text(), url: worker.url() });
    });
  });
  return { page, problems, log };
}

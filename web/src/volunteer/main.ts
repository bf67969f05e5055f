/**
 * The volunteer page: wires the Start/Stop buttons and the status panel to a VolunteerSession.
 *
 * Query parameters:
 *   ?autostart=1    start without a click (tests, kiosks)
 *   ?token=…        passed on to the hub (`/ws/volunteer?token=…`)
 *   ?backend=wasm   force one TF.js backend (webgpu | webgl | wasm), for troubleshooting
 *   ?background=1   keep taking work while the tab is hidden (by default a hidden tab pauses:
 *                   browsers throttle and freeze background tabs); a frozen tab always pauses
 *   ?fault=wrong    TEST HOOK: the tab returns deliberately wrong results (the top-k of the next
 *                   class index), so the hub's verification of volunteers can be tested. It can
 *                   only hurt this tab's own reputation: the hub verifies what volunteers send.
 *   ?fault=lose-device  TEST HOOK: the GPU device is destroyed as the first job starts, as a
 *                   driver reset would; the tab fails that job and rejoins with a new device.
 *
 * For tests: `window.volunteerState` is the live state object, `<body data-state="…">` its phase.
 */
import '../styles.css';
import { VOLUNTEER_BACKENDS, VOLUNTEER_PROTOCOL_VERSION } from '../../../shared/protocol/volunteer.ts';
import { followPageLifecycle } from './page-lifecycle.ts';
import { VolunteerSession } from './session.ts';
import type { Phase, VolunteerState } from './volunteer-state.ts';
import { FAULT_MODES } from './worker-messages.ts';
import type { FaultMode, VolunteerBackend } from './worker-messages.ts';

declare global {
  interface Window {
    volunteerState: VolunteerState;
  }
}

const params = new URLSearchParams(location.search);

/** A query flag: present and not 0 or false. */
function flag(name: string): boolean {
  const value = params.get(name);
  return value !== null && value !== '0' && value !== 'false';
}

function hubUrl(): string {
  const url = new URL('/ws/volunteer', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // The newest protocol this page speaks; a hub that does not know it welcomes the page with version 1.
  url.searchParams.set('protocol', String(VOLUNTEER_PROTOCOL_VERSION));
  const token = params.get('token');
  if (token) url.searchParams.set('token', token);
  return url.href;
}

const askedFault = params.get('fault');
const fault: FaultMode = FAULT_MODES.find((mode) => mode === askedFault) ?? null;
const forced = params.get('backend');
const backend = (VOLUNTEER_BACKENDS as readonly string[]).includes(forced ?? '') ? (forced as VolunteerBackend) : null;

const batchLimit = Number.parseInt(params.get('max_batch') ?? '', 10);
const maxBatch = Number.isInteger(batchLimit) && batchLimit >= 1 ? batchLimit : null;

const session = new VolunteerSession({ url: hubUrl(), baseUrl: location.href, fault, backend, maxBatch });
window.volunteerState = session.state;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`volunteer.html has no #${id}`);
  return found as T;
}

const ui = {
  status: element('status'),
  statusText: element('status-text'),
  progress: element<HTMLProgressElement>('progress'),
  start: element<HTMLButtonElement>('start'),
  stop: element<HTMLButtonElement>('stop'),
  problem: element('problem'),
  faultBanner: element('fault-banner'),
  backend: element('fact-backend'),
  adapter: element('fact-adapter'),
  time: element('fact-time'),
  jobs: element('fact-jobs'),
  images: element('fact-images'),
  model: element('fact-model'),
  id: element('fact-id'),
};

const TONES: Record<Phase, 'idle' | 'busy' | 'ok' | 'warn' | 'bad'> = {
  idle: 'idle',
  connecting: 'busy',
  loading: 'busy',
  downloading: 'busy',
  'warming-up': 'busy',
  ready: 'ok',
  computing: 'ok',
  paused: 'idle',
  reconnecting: 'warn',
  stopped: 'idle',
  quarantined: 'bad',
  refused: 'bad',
  error: 'bad',
};

const BACKEND_NAMES: Record<VolunteerBackend, string> = {
  webgpu: 'WebGPU',
  webgl: 'WebGL (WebGPU unavailable)',
  wasm: 'WebAssembly on the CPU (no usable GPU)',
};

function ms(value: number | null): string {
  if (value === null) return '—';
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

function setText(target: HTMLElement, text: string): void {
  if (target.textContent !== text) target.textContent = text;
}

function render(state: VolunteerState): void {
  document.body.dataset.state = state.state;
  ui.status.dataset.tone = TONES[state.state];
  setText(ui.statusText, state.detail);

  const downloading = state.state === 'downloading' && state.downloadProgress !== null;
  ui.progress.hidden = !downloading;
  if (downloading) ui.progress.value = state.downloadProgress ?? 0;

  const running = session.isRunning;
  ui.start.disabled = running;
  ui.stop.disabled = !running;
  setText(ui.start, running || state.state === 'idle' ? 'Start' : 'Start again');

  const terminal = state.state === 'quarantined' || state.state === 'refused' || state.state === 'error';
  ui.problem.hidden = !terminal || !state.lastError;
  if (terminal && state.lastError) {
    const lead = state.state === 'quarantined' ? 'The hub quarantined this tab: ' : state.state === 'refused' ? 'The hub refused this tab: ' : '';
    setText(ui.problem, lead + state.lastError);
  }
  ui.faultBanner.hidden = state.fault === null;

  const notes = state.backendNotes.length > 0 ? ` — ${state.backendNotes.join('; ')}` : '';
  setText(ui.backend, state.backend ? BACKEND_NAMES[state.backend] + (state.backend === 'webgpu' ? '' : notes) : '—');
  const adapter = state.adapter ? [state.adapter.vendor, state.adapter.architecture, state.adapter.description].filter(Boolean).join(' · ') : '';
  setText(ui.adapter, adapter || (state.backend === 'wasm' ? 'not used' : '—'));

  const parts: string[] = [];
  if (state.jobsDone > 0) parts.push(`last ${ms(state.perImageMs)}`, `average ${ms(state.averagePerImageMs)}`);
  if (state.warmupPerImageMs !== null) parts.push(`warm-up ${ms(state.warmupPerImageMs)}`);
  setText(ui.time, parts.length > 0 ? parts.join(' · ') : '—');
  setText(ui.jobs, String(state.jobsDone) + (state.jobsFailed > 0 ? ` (${state.jobsFailed} failed)` : ''));
  setText(ui.images, String(state.imagesDone));

  const source = { memory: 'already loaded', cache: 'from this browser’s storage', download: 'downloaded from the hub' } as const;
  const model = state.modelSha256
    ? `${state.modelSha256.slice(0, 12)}…` +
      (state.modelBytes !== null ? `, ${(state.modelBytes / 1024 / 1024).toFixed(1)} MB` : '') +
      (state.modelSource ? `, ${source[state.modelSource]}` : '')
    : '—';
  setText(ui.model, model);
  setText(ui.id, state.volunteerId ?? '—');
}

ui.start.addEventListener('click', () => session.start());
ui.stop.addEventListener('click', () => session.stop());
// Closing the tab ends everything anyway; saying bye lets the hub tell it from a crash.
window.addEventListener('pagehide', () => session.sayBye());

session.subscribe(render);
followPageLifecycle(session, { keepWorkingWhenHidden: flag('background') });

if (!('gpu' in navigator)) {
  console.info('volunteer: this browser has no WebGPU; the tab will fall back to WebGL or WebAssembly');
}

if (flag('autostart')) session.start();

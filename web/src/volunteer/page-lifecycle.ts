/**
 * The page's visibility and lifecycle (Page Visibility, Page Lifecycle) as the volunteer session
 * needs them: hidden → pause, shown → resume; `freeze` (the browser is about to stop the page's
 * script: a background tab, a closed laptop) → pause, `resume` → resume. The pause is sent in
 * the `freeze` handler, the last moment the page can still speak, so the hub takes back the job
 * in hand at once instead of waiting for it to be late.
 */
import type { PauseReason } from '../../../shared/protocol/volunteer.ts';

export interface Pausable {
  pause(reason: PauseReason): void;
  resume(reason: PauseReason): void;
}

/** `keepWorkingWhenHidden`: only freezing pauses (the volunteer chose to lend the GPU from a background tab). */
export function followPageLifecycle(session: Pausable, options: { keepWorkingWhenHidden: boolean }): void {
  const onVisibility = (): void => {
    if (options.keepWorkingWhenHidden) return;
    if (document.visibilityState === 'hidden') session.pause('hidden');
    else session.resume('hidden');
  };
  document.addEventListener('visibilitychange', onVisibility);
  document.addEventListener('freeze', () => session.pause('frozen'));
  document.addEventListener('resume', () => session.resume('frozen'));
  // A tab opened in the background starts hidden.
  onVisibility();
}

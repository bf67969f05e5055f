/**
 * "Lend this GPU": a dialog that says plainly what a volunteer tab shares and how to stop it,
 * then opens the volunteer page in its own tab (started at once), so this page keeps working.
 */
export function setUpLendDialog(button: HTMLButtonElement, dialog: HTMLDialogElement, webgpuNote: HTMLElement, go: HTMLAnchorElement): void {
  // The volunteer page's `?token=` is the volunteer token (--volunteer-token), not the API token.
  const token = new URLSearchParams(window.location.search).get('volunteer_token');
  if (token) {
    const url = new URL(go.href);
    url.searchParams.set('token', token);
    go.href = url.pathname + url.search;
  }
  button.addEventListener('click', () => {
    const hasWebGpu = 'gpu' in navigator;
    webgpuNote.hidden = hasWebGpu && window.isSecureContext;
    webgpuNote.textContent = !window.isSecureContext
      ? 'This page is not in a secure context (https or localhost), so the browser does not offer WebGPU here: open the hub over HTTPS to volunteer.'
      : 'This browser does not offer WebGPU. The volunteer tab will say so; a recent Chrome or Edge does.';
    dialog.showModal();
  });
  go.addEventListener('click', () => dialog.close('opened'));
}

/**
 * A hub started with `--api-token` needs the token on its API and event stream. Pages get it
 * from their own address (`/?api_token=…`, distinct from the volunteer page's `?token=`, which
 * is the volunteer token) and keep it when the user moves between pages.
 */
const PARAM = 'api_token';

export function apiToken(): string | null {
  return new URLSearchParams(window.location.search).get(PARAM);
}

/** Adds the token to the page's links to its sibling pages, so navigating keeps it. */
export function carryApiToken(): void {
  const token = apiToken();
  if (!token) return;
  for (const link of document.querySelectorAll<HTMLAnchorElement>('a[href^="/"]')) {
    const url = new URL(link.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith('/api/')) continue;
    url.searchParams.set(PARAM, token);
    link.href = url.pathname + url.search + url.hash;
  }
}

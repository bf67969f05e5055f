/**
 * A Vite plugin that writes the parts every page shares (head links, the site header with its
 * navigation) into each page at build time, so the pages stay static HTML that works before
 * any script runs, and the navigation is written once.
 *
 *   <!--site-head-->     charset, viewport, icon, stylesheet
 *   <!--site-header-->   brand, navigation (the current page marked), live-connection badge
 */
import type { Plugin } from 'vite';

const PAGES = [
  { path: '/', file: 'index.html', label: 'Classify' },
  { path: '/dashboard', file: 'dashboard.html', label: 'Dashboard' },
  { path: '/volunteer', file: 'volunteer.html', label: 'Lend your GPU' },
] as const;

const ICON =
  "data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27 viewBox=%270 0 16 16%27%3E%3Crect width=%2716%27 height=%2716%27 rx=%273%27 fill=%27%231f6feb%27/%3E%3C/svg%3E";

function head(): string {
  return [
    '<meta charset="utf-8" />',
    '<meta name="viewport" content="width=device-width, initial-scale=1" />',
    `<link rel="icon" href="${ICON}" />`,
    '<link rel="stylesheet" href="/src/styles.css" />',
  ].join('\n    ');
}

function header(file: string): string {
  const links = PAGES.map((page) => {
    const current = page.file === file ? ' aria-current="page"' : '';
    return `<li><a href="${page.path}"${current}>${page.label}</a></li>`;
  }).join('');
  return `<a class="skip-link" href="#main">Skip to content</a>
    <header class="site-header">
      <a class="brand" href="/">resnet-hub</a>
      <nav class="site-nav" aria-label="Main"><ul>${links}</ul></nav>
      <span id="live-badge" class="live-badge" data-tone="idle" role="status" aria-live="polite" hidden><span class="dot" aria-hidden="true"></span><span class="live-text">connecting</span></span>
    </header>`;
}

export function siteChrome(): Plugin {
  return {
    name: 'resnet-hub-site-chrome',
    transformIndexHtml: {
      order: 'pre',
      handler(html, context) {
        const file = context.path.replace(/^\//, '') || 'index.html';
        if (!html.includes('<!--site-head-->') || !html.includes('<!--site-header-->')) {
          throw new Error(`${file}: expected <!--site-head--> and <!--site-header--> markers`);
        }
        return html.replace('<!--site-head-->', head()).replace('<!--site-header-->', header(file));
      },
    },
  };
}

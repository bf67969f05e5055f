/**
 * Vite config of the web app: a multi-page app rooted at web/, built to web/dist/.
 *
 *   npx vite --config web/vite.config.ts          dev server (proxies the hub's routes to :8080)
 *   npx vite build --config web/vite.config.ts    production build (the hub does this itself,
 *                                                 see server/web-build.ts)
 *
 * Shared code is imported from ../shared/*.ts. Everything is bundled: no CDN, no remote fonts.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { siteChrome } from './site-chrome.ts';

const webRoot = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
/** Where the hub listens while developing (`npm start`). */
const hub = process.env.HUB_DEV_TARGET ?? 'http://127.0.0.1:8080';

export default defineConfig({
  root: webRoot,
  base: '/',
  publicDir: false,
  plugins: [siteChrome()],
  // The hub's build logs one line itself; keep Vite's own output to warnings.
  clearScreen: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // tfjs is one big chunk by nature, loaded once by the worker and cached as immutable.
    chunkSizeWarningLimit: 4096,
    // Keep every asset a file (the wasm binaries must be fetched by URL, not inlined).
    assetsInlineLimit: 0,
    sourcemap: false,
    rolldownOptions: {
      input: {
        index: fileURLToPath(new URL('index.html', import.meta.url)),
        volunteer: fileURLToPath(new URL('volunteer.html', import.meta.url)),
        dashboard: fileURLToPath(new URL('dashboard.html', import.meta.url)),
      },
    },
  },
  worker: {
    // The model worker imports tfjs (code-split, dynamic imports): module workers.
    format: 'es',
  },
  server: {
    host: '127.0.0.1',
    fs: { allow: [repoRoot] },
    proxy: {
      '/api': { target: hub, changeOrigin: false },
      '/ws': { target: hub, ws: true },
      '/models': { target: hub },
      '/healthz': { target: hub },
      '/readyz': { target: hub },
    },
  },
  preview: { host: '127.0.0.1' },
});

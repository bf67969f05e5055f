/**
 * The checkout's root folder, with a trailing slash: where the product finds its own files
 * (the web app, models/, fixtures for its tests) whatever the working directory.
 */
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/**
 * Puts a freshly written folder in place of an old one, so readers never see a half-written
 * one: a non-empty folder cannot be renamed over, so the old one is moved aside first, put
 * back if the swap fails, and removed once the new one is in place.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export async function swapFolderIntoPlace(temp: string, target: string): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const aside = `${temp}.old`;
  let movedAside = false;
  try {
    await rename(target, aside);
    movedAside = true;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
  }
  try {
    await rename(temp, target);
  } catch (error) {
    if (movedAside) await rename(aside, target).catch(() => {});
    throw error;
  }
  // The new folder is in place; failing to delete the old copy must not fail the swap.
  if (movedAside) await rm(aside, { recursive: true, force: true }).catch(() => {});
}

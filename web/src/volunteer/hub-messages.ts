/**
 * Reading what the hub sends the volunteer tab: text frames checked against the shared zod
 * schemas, and a welcome's model checked before anything is fetched for it. Each answer says
 * what was wrong, for the page to show; nothing here touches the session's state.
 */
import { z } from 'zod';
import { HubMessageSchema } from '../../../shared/protocol/volunteer.ts';
import type { HubMessage } from '../../../shared/protocol/volunteer.ts';

export type Welcome = Extract<HubMessage, { type: 'welcome' }>;

export function parseHubText(text: string): { message: HubMessage } | { problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: 'the hub sent a text frame that is not JSON; ignored' };
  }
  const parsed = HubMessageSchema.safeParse(json);
  if (!parsed.success) return { problem: `the hub sent an invalid message; ignored: ${z.prettifyError(parsed.error)}` };
  return { message: parsed.data };
}

/** Where the welcome's model is, resolved against the page; a problem when its hash or URL is malformed. */
export function welcomeModelUrl(welcome: Welcome, baseUrl: string): { url: string } | { problem: string } {
  if (!/^[0-9a-f]{64}$/.test(welcome.model.sha256)) {
    return { problem: `the hub's model hash ${JSON.stringify(welcome.model.sha256)} is not a SHA-256` };
  }
  try {
    return { url: new URL(welcome.model.url, baseUrl).href };
  } catch {
    return { problem: `the hub's model URL ${JSON.stringify(welcome.model.url)} is not a URL` };
  }
}

/**
 * The dashboard with hundreds of volunteers, in a real headless Chromium: 150 protocol-level
 * peers (kit/swarm/, 10% of them failing jobs) on a real hub under load. The page must stay
 * readable: one line summing the volunteers up by standing, a table of 25 rows a page with the
 * troubled tabs first, and pages to turn.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchChromium } from '../../../kit/browser.ts';
import { launchHub } from '../../../kit/hub-process.ts';
import { payloadOf, photo } from '../../../kit/zmq-clients.ts';
import { Swarm } from '../../../kit/swarm/swarm.ts';
import { runSwarmLoad } from '../../../kit/swarm/swarm-load.ts';
import { volunteers, waitFor } from '../../support/volunteers.ts';

const PEERS = 150;

test('the dashboard sums up 150 volunteers by standing and pages them, the troubled first', { timeout: 120_000 }, async () => {
  // --offload prefer: the tabs get the work first, so they earn (or lose) their standing in a few seconds.
  const hub = await launchHub({ args: ['--engine', 'onnx', '--workers', '1', '--verify-fraction', '0', '--offload', 'prefer'] });
  const browser = await launchChromium();
  const swarm = await Swarm.start({ http: hub.http, peers: PEERS, mix: { fail: 0.1 }, seed: 7 });
  try {
    await waitFor('the swarm to join', async () => ((await volunteers(hub)).filter((v) => v.state !== 'joining').length >= PEERS ? true : undefined), 30_000);
    const image = photo('chelsea');
    await runSwarmLoad({ endpoint: hub.zmq, clients: 16, body: (id) => payloadOf(image, { request_id: id }), durationMs: 4000 });

    const tab = await browser.newPage();
    await tab.page.goto(`${hub.http}/dashboard`);
    const summary = await tab.page.waitForSelector('#volunteer-summary:has-text("volunteers:")', { timeout: 15_000 });
    const text = (await summary.textContent()) ?? '';
    console.log(`# dashboard summary: ${text}`);
    assert.match(text, new RegExp(`^${PEERS} volunteers: `), 'every tab counted once');
    assert.match(text, /\d+ probation/, 'standings named');
    assert.match(text, /\d+ trusted/);
    assert.match(text, /trusted tabs take [\d.]+ ms an image/, 'and the trusted ones’ speed');

    const rows = tab.page.locator('#executors tbody tr');
    assert.equal(await rows.count(), 25, 'one page of 25 rows, not 151');
    assert.equal(await rows.first().getAttribute('data-kind'), 'local', 'local workers first');
    const listed = (await volunteers(hub)).filter((v) => v.state !== 'gone');
    // The failing peers fail their first job on a connection, rest, and work on: their record keeps the failure.
    const troubled = listed.filter((v) => v.standing === 'backing_off' || v.standing === 'quarantined' || v.failures > 0 || (v.late_jobs ?? 0) > 0).map((v) => v.id);
    assert.ok(troubled.length > 0, 'some peers failed jobs');
    const secondRowId = await rows.nth(1).getAttribute('data-executor-id');
    assert.ok(troubled.includes(String(secondRowId)), `a troubled tab comes right after the local worker (${secondRowId})`);

    const range = tab.page.locator('#executors-pager [data-range]');
    assert.match((await range.textContent()) ?? '', /^1–25 of 15\d$/);
    await tab.page.click('#executors-pager [data-page="next"]');
    assert.match((await range.textContent()) ?? '', /^26–50 of 15\d$/, 'the next page');
    // The table is redrawn every second: the page the reader chose stays.
    await tab.page.waitForTimeout(2500);
    assert.match((await range.textContent()) ?? '', /^26–50 of 15\d$/, 'still on the page chosen after the updates');
    assert.deepEqual(tab.problems, []);
  } finally {
    await swarm.stop();
    await browser.close();
    await hub.stop();
  }
});

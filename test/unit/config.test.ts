/**
 * Defaults that depend on other flags.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseConfig } from '../../server/config.ts';

const argv = (...flags: string[]) => ['node', 'server/main.ts', ...flags];

test('--max-batch defaults to 1 at fp32 and 4 at int8; a value given by flag or HUB_MAX_BATCH wins', () => {
  const saved = process.env.HUB_MAX_BATCH;
  try {
    delete process.env.HUB_MAX_BATCH;
    assert.equal(parseConfig(argv()).maxBatch, 1);
    assert.equal(parseConfig(argv('--precision', 'int8')).maxBatch, 4);
    assert.equal(parseConfig(argv('--precision', 'int8', '--max-batch', '1')).maxBatch, 1);
    process.env.HUB_MAX_BATCH = '2';
    assert.equal(parseConfig(argv('--precision', 'int8')).maxBatch, 2);
  } finally {
    if (saved === undefined) delete process.env.HUB_MAX_BATCH;
    else process.env.HUB_MAX_BATCH = saved;
  }
});

/**
 * The flags the docs list are the flags the hub has. docs/configuration.md's table must list
 * every flag of `hubFlags()` (server/config.ts) with its environment variable, and nothing
 * else; and every `--flag` given to `npm start` anywhere in README.md or docs/*.md must be one
 * of the hub's. Other commands (bench, soak, classify, the model tools) have flags of their own
 * and are not checked here.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { hubFlags } from '../../server/config.ts';
import type { FlagSpec } from '../../server/config.ts';

const ROOT = new URL('../../', import.meta.url);
const CONFIGURATION_DOC = 'docs/configuration.md';
/** The section of configuration.md that holds the flag table. */
const TABLE_SECTION = '## Command line';

interface TableRow {
  flag: string;
  env: string;
  /** The default cell when it is one code span, e.g. `tcp://*:5576`; otherwise undefined. */
  codeDefault: string | undefined;
  line: number;
}

async function readDoc(relativePath: string): Promise<string> {
  return readFile(new URL(relativePath, ROOT), 'utf8');
}

/** README.md and every Markdown file under docs/, as paths relative to the repo root. */
async function docFiles(): Promise<string[]> {
  const names = await readdir(fileURLToPath(new URL('docs/', ROOT)));
  return ['README.md', ...names.filter((name) => name.endsWith('.md')).sort().map((name) => `docs/${name}`)];
}

/** Splits a Markdown table row into its cells, keeping `\|` (an escaped pipe) inside a cell. */
function cells(row: string): string[] {
  const inner = row.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((cell) => cell.trim());
}

/** The rows of the flag table in configuration.md's "Command line" section. */
function flagTable(markdown: string): TableRow[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.trim() === TABLE_SECTION);
  assert.notEqual(start, -1, `${CONFIGURATION_DOC} has no "${TABLE_SECTION}" section`);
  const rows: TableRow[] = [];
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('## ')) break;
    if (!line.trimStart().startsWith('| `--')) continue;
    const [flagCell = '', envCell = '', defaultCell = ''] = cells(line);
    const flag = /^`(--[a-z][a-z0-9-]*)/.exec(flagCell)?.[1];
    assert.ok(flag, `${CONFIGURATION_DOC}:${i + 1}: no flag in "${flagCell}"`);
    // `HUB_MODEL_FETCH=0` names the variable with the value that turns the switch off.
    const env = /^`([A-Z][A-Z0-9_]*)(?:=[^`]*)?`$/.exec(envCell)?.[1];
    assert.ok(env, `${CONFIGURATION_DOC}:${i + 1}: ${flag} has no environment variable in "${envCell}"`);
    const codeDefault = /^`([^`]*)`$/.exec(defaultCell)?.[1];
    rows.push({ flag, env, codeDefault, line: i + 1 });
  }
  return rows;
}

/**
 * The `--flags` given to `npm start` on one line: what follows each `npm start` up to the end of
 * its code span (inline code) or up to the next command or comment (a line of a code block).
 */
function npmStartFlags(line: string): string[] {
  const flags: string[] = [];
  const starts = [...line.matchAll(/npm start/g)].map((match) => match.index ?? 0);
  for (const at of starts) {
    const backticksBefore = line.slice(0, at).split('`').length - 1;
    let rest = line.slice(at + 'npm start'.length);
    if (backticksBefore % 2 === 1) {
      const close = rest.indexOf('`');
      if (close !== -1) rest = rest.slice(0, close);
    }
    rest = rest.split(/&&|\|\||;|\||\s#/)[0] ?? '';
    for (const match of rest.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) flags.push(match[0]);
  }
  return flags;
}

const hub: FlagSpec[] = hubFlags();
const hubByFlag = new Map(hub.map((spec) => [spec.flag, spec]));
/** Flags commander answers for every command, not listed by hubFlags(). */
const BUILT_IN = new Set(['--help']);

test('hubFlags() gives every flag a name and an environment variable', () => {
  assert.ok(hub.length > 20, `only ${hub.length} flags: is hubFlags() still the hub's command line?`);
  for (const spec of hub) {
    assert.match(spec.flag, /^--[a-z][a-z0-9-]*$/, `a hub flag is named ${JSON.stringify(spec.flag)}`);
    assert.ok(spec.env, `${spec.flag} has no environment variable`);
  }
});

test(`every flag of the hub is in ${CONFIGURATION_DOC}'s table, with its environment variable`, async () => {
  const table = flagTable(await readDoc(CONFIGURATION_DOC));
  const byFlag = new Map(table.map((row) => [row.flag, row]));
  const missing = hub.filter((spec) => !byFlag.has(spec.flag)).map((spec) => spec.flag);
  assert.deepEqual(missing, [], `hub flags missing from ${CONFIGURATION_DOC}: ${missing.join(', ')}`);
  for (const spec of hub) {
    const row = byFlag.get(spec.flag);
    assert.equal(row?.env, spec.env, `${CONFIGURATION_DOC}:${row?.line}: ${spec.flag}'s variable is ${spec.env}`);
  }
});

test(`every flag in ${CONFIGURATION_DOC}'s table exists on the hub, once`, async () => {
  const table = flagTable(await readDoc(CONFIGURATION_DOC));
  const unknown = table.filter((row) => !hubByFlag.has(row.flag)).map((row) => `${row.flag} (line ${row.line})`);
  assert.deepEqual(unknown, [], `${CONFIGURATION_DOC} lists flags the hub does not have: ${unknown.join(', ')}`);
  const seen = new Set<string>();
  const twice = table.filter((row) => (seen.has(row.flag) ? true : (seen.add(row.flag), false))).map((row) => row.flag);
  assert.deepEqual(twice, [], `${CONFIGURATION_DOC} lists these flags more than once: ${twice.join(', ')}`);
});

test(`a default written as code in ${CONFIGURATION_DOC}'s table is the hub's default`, async () => {
  const table = flagTable(await readDoc(CONFIGURATION_DOC));
  for (const row of table) {
    const spec = hubByFlag.get(row.flag);
    if (row.codeDefault === undefined || spec === undefined) continue;
    if (spec.defaultValue === undefined) continue; // derived at start (cores, hostname, …): described in words
    assert.equal(row.codeDefault, String(spec.defaultValue), `${CONFIGURATION_DOC}:${row.line}: ${row.flag}'s default`);
  }
});

test('every --flag given to npm start in README.md and docs/*.md is a hub flag', async () => {
  const unknown: string[] = [];
  let checked = 0;
  for (const file of await docFiles()) {
    const lines = (await readDoc(file)).split('\n');
    lines.forEach((line, index) => {
      for (const flag of npmStartFlags(line)) {
        checked++;
        if (!hubByFlag.has(flag) && !BUILT_IN.has(flag)) unknown.push(`${file}:${index + 1}: ${flag}`);
      }
    });
  }
  assert.deepEqual(unknown, [], `npm start is given flags the hub does not have:\n  ${unknown.join('\n  ')}`);
  assert.ok(checked > 0, 'no npm start line with flags found: is the search still looking at the docs?');
});

test('the npm start line reader takes only what npm start is given', () => {
  assert.deepEqual(npmStartFlags('npm start -- --workers 2 --precision int8     # or --not-this'), ['--workers', '--precision']);
  assert.deepEqual(npmStartFlags('run `npm start -- --zmq tcp://*:5577` and `npm run bench -- --concurrency 4`'), ['--zmq']);
  assert.deepEqual(npmStartFlags('HUB_X=1 npm start -- --hub-id a && npm run classify -- --json'), ['--hub-id']);
  assert.deepEqual(npmStartFlags('`npm start` builds the web app'), []);
});

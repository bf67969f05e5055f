/**
 * Runs shell commands side by side, one lane each, and prints each lane's whole output when it
 * ends (so two test runners' reports do not interleave line by line), then how long each took.
 * Exits with the first non-zero exit code of any lane. Used by `npm run test:e2e`:
 *
 *   tsx scripts/run-lanes.ts '<command of lane 1>' '<command of lane 2>' …
 */
import { spawn } from 'node:child_process';

const lanes = process.argv.slice(2);
if (lanes.length === 0) {
  process.stderr.write('usage: tsx scripts/run-lanes.ts <command> [<command> …]\n');
  process.exit(2);
}

const started = performance.now();
const results = await Promise.all(
  lanes.map(
    (command, index) =>
      new Promise<{ index: number; code: number; seconds: number }>((resolve) => {
        const chunks: Buffer[] = [];
        const child = spawn(command, { shell: true, stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
        child.on('close', (code, signal) => {
          const seconds = (performance.now() - started) / 1000;
          process.stdout.write(`\n# lane ${index + 1}: ${command}\n${Buffer.concat(chunks).toString()}\n`);
          process.stdout.write(`# lane ${index + 1} ended after ${seconds.toFixed(0)} s with ${signal ?? `exit ${code}`}\n`);
          resolve({ index, code: code ?? 1, seconds });
        });
      }),
  ),
);
const failed = results.find((result) => result.code !== 0);
process.stdout.write(`# lanes: ${results.map((r) => `${r.index + 1}: ${r.seconds.toFixed(0)} s`).join(', ')}; all done after ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
process.exit(failed ? failed.code : 0);

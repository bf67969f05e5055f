/**
 * `npm run classify -- <image...>`: classifies images with one hub or several, through the
 * client library (client/), which spreads them over the hubs and resends elsewhere when a hub
 * refuses, drops or stays silent. Prints the top predictions as a table, or one JSON line per
 * image (`--json`), in the order given; a summary per hub goes to stderr. Exit 0 only when
 * every image got a result.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { HubClient } from '../../client/index.ts';
import type { ClassifyResult, ClientStats } from '../../client/index.ts';

const program = new Command('classify')
  .description('classify images with running hubs over ZeroMQ')
  .argument('<images...>', 'image files')
  .addOption(
    new Option('--endpoint <endpoints>', 'hub endpoints, comma-separated (a host name stands for every address it resolves to)')
      .env('HUB_ENDPOINT')
      .default('tcp://127.0.0.1:5576'),
  )
  .addOption(new Option('--top <n>', 'how many predictions per image').default(3).argParser(intFrom(1)))
  .addOption(new Option('--timeout-ms <ms>', 'each image\'s deadline: no result by then is an error').default(60_000).argParser(intFrom(1)))
  .addOption(new Option('--try-timeout-ms <ms>', 'silence from a hub this long sends the image to another hub as well').default(10_000).argParser(intFrom(1)))
  .addOption(new Option('--concurrency <n>', 'images in flight at once, over all hubs').default(16).argParser(intFrom(1)))
  .option('--json', 'print each reply as a JSON line instead of a table')
  .parse();

/** An image that never reached a hub: its file could not be read. */
type Outcome = ClassifyResult | { ok: false; error: { code: 'unreadable'; message: string } };

const options = program.opts<{ endpoint: string; top: number; timeoutMs: number; tryTimeoutMs: number; concurrency: number; json?: boolean }>();
const files = program.args;

async function main(): Promise<number> {
  let client: HubClient;
  try {
    client = new HubClient({ endpoints: options.endpoint, deadlineMs: options.timeoutMs, perTryTimeoutMs: options.tryTimeoutMs });
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  const results = new Array<Outcome>(files.length);
  const started = performance.now();
  let next = 0;
  // Each lane reads its next file only when it has a free slot, so memory stays bounded.
  const lane = async () => {
    for (let i = next++; i < files.length; i = next++) {
      let bytes: Buffer;
      try {
        bytes = await readFile(files[i]);
      } catch (error) {
        results[i] = { ok: false, error: { code: 'unreadable', message: (error as Error).message } };
        continue;
      }
      results[i] = await client.classify(bytes, { top: options.top, requestId: String(i) });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, files.length) }, lane));
  } finally {
    const stats = client.stats();
    await client.close();
    console.error(summary(stats, results.filter((r) => r.ok).length, files.length, performance.now() - started));
  }
  for (const [i, file] of files.entries()) {
    const result = results[i];
    if (options.json) console.log(JSON.stringify({ file, ...jsonOf(result) }));
    else printResult(file, result);
  }
  return results.every((result) => result.ok) ? 0 : 1;
}

/** The hub's reply as it came (with the caller's request_id), or the client's own error. */
function jsonOf(result: Outcome): object {
  if (result.ok) return result.reply;
  return 'reply' in result && result.reply ? result.reply : { error: result.error };
}

function summary(stats: ClientStats, ok: number, total: number, ms: number): string {
  const hubs = stats.hubs.map((hub) => `${hub.hubId ?? hub.endpoint} ${hub.results}`).join(', ');
  return `${ok}/${total} images classified in ${(ms / 1000).toFixed(1)} s; results by hub: ${hubs || 'none'}; resends: ${stats.resends}`;
}

function printResult(file: string, result: Outcome): void {
  console.log(file);
  if (!result.ok) {
    console.log(`  error ${result.error.code}: ${result.error.message}\n`);
    return;
  }
  const { reply } = result;
  const width = Math.max(...reply.predictions.map((p) => p.label.length), 5);
  console.log(`  ${'#'.padEnd(3)}${'label'.padEnd(width + 2)}${'probability'.padStart(11)}`);
  reply.predictions.forEach((p, i) => {
    console.log(`  ${String(i + 1).padEnd(3)}${p.label.padEnd(width + 2)}${p.probability.toFixed(5).padStart(11)}`);
  });
  const untrained = reply.model.weights === 'untrained' ? '  (UNTRAINED weights: meaningless)' : '';
  // Hubs older than --hub-id do not name themselves.
  const hub = (reply.hub as typeof reply.hub | undefined)?.id ?? result.endpoint;
  console.log(`  on ${hub} ${reply.executor.kind}/${reply.executor.id} (${reply.executor.engine}) in ${reply.timing.total_ms} ms${untrained}\n`);
}

function intFrom(min: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) throw new InvalidArgumentError(`expected an integer of at least ${min}`);
    return value;
  };
}

process.exitCode = await main();

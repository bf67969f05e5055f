/**
 * `npm run classify -- <image...>`: a ZeroMQ client, speaking to the hub as the seed's
 * clients do (a DEALER socket, one JSON frame per request), printing the top 3 as a table.
 */
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import * as zmq from 'zeromq';
import type { Reply } from '../../shared/protocol/classify.ts';

const program = new Command('classify')
  .description('classify images with a running hub over ZeroMQ')
  .argument('<images...>', 'image files')
  .addOption(new Option('--endpoint <endpoint>', 'the hub\'s ZeroMQ endpoint').env('HUB_ENDPOINT').default('tcp://127.0.0.1:5576'))
  .addOption(new Option('--top <n>', 'how many predictions per image').default('3'))
  .addOption(new Option('--timeout-ms <ms>', 'give up on a reply after this long').default('60000'))
  .option('--json', 'print each reply as a JSON line instead of a table')
  .parse();

const options = program.opts<{ endpoint: string; top: string; timeoutMs: string; json?: boolean }>();
const files = program.args;

async function main(): Promise<number> {
  const socket = new zmq.Dealer({ receiveTimeout: Number(options.timeoutMs), linger: 0 });
  socket.connect(options.endpoint);
  let failures = 0;
  try {
    // Sent all at once, as the hub answers concurrently; replies are matched by request_id.
    for (const [i, file] of files.entries()) {
      const payload = (await readFile(file)).toString('base64');
      await socket.send(JSON.stringify({ payload, top: Number(options.top), request_id: String(i) }));
    }
    const replies = new Map<string, Reply>();
    while (replies.size < files.length) {
      const [frame] = await socket.receive();
      const reply = JSON.parse(frame.toString()) as Reply;
      replies.set(reply.request_id ?? String(replies.size), reply);
    }
    for (const [i, file] of files.entries()) {
      const reply = replies.get(String(i))!;
      if ('error' in reply) failures++;
      if (options.json) console.log(JSON.stringify({ file, ...reply }));
      else printReply(file, reply);
    }
  } catch (error) {
    const timedOut = (error as { code?: string }).code === 'EAGAIN';
    console.error(timedOut ? `no reply from ${options.endpoint} within ${options.timeoutMs} ms` : String(error));
    return 2;
  } finally {
    socket.close();
  }
  return failures === 0 ? 0 : 1;
}

function printReply(file: string, reply: Reply): void {
  console.log(file);
  if ('error' in reply) {
    console.log(`  error ${reply.error.code}: ${reply.error.message}\n`);
    return;
  }
  const width = Math.max(...reply.predictions.map((p) => p.label.length), 5);
  console.log(`  ${'#'.padEnd(3)}${'label'.padEnd(width + 2)}${'probability'.padStart(11)}`);
  reply.predictions.forEach((p, i) => {
    console.log(`  ${String(i + 1).padEnd(3)}${p.label.padEnd(width + 2)}${p.probability.toFixed(5).padStart(11)}`);
  });
  const untrained = reply.model.weights === 'untrained' ? '  (UNTRAINED weights: meaningless)' : '';
  console.log(`  on ${reply.executor.kind}/${reply.executor.id} (${reply.executor.engine}) in ${reply.timing.total_ms} ms${untrained}\n`);
}

process.exitCode = await main();

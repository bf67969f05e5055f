/**
 * The hub under test, as a child process on loopback and free ports: how long it takes to be
 * ready, where it listens, and whether it stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../lib/repo-root.ts';
import { LOOPBACK_HUB_ARGV } from '../server/cli/loopback-hub-argv.ts';

export interface HubExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From SIGTERM to exit. */
  ms: number;
  /** It did not exit within the timeout and was killed. */
  killed: boolean;
}

export interface SpawnedHub {
  pid: number;
  zmq: string;
  /** Spawn to the `ready` log line. */
  startupMs: number;
  /** The `ready` log line, which says which engine, workers and threads it settled on. */
  ready: Record<string, unknown>;
  stderrTail(): string;
  stop(timeoutMs: number): Promise<HubExit>;
}

export interface SpawnOptions {
  /** Flags after the ones that pin it to loopback and free ports (later flags win). */
  args: readonly string[];
  timeoutMs: number;
  /** Every JSON log line the hub prints, for as long as it runs (the soak counts its warnings). */
  onLog?: (entry: Record<string, unknown>) => void;
}

const STDERR_KEEP = 8000;

export async function spawnHub(options: SpawnOptions): Promise<SpawnedHub> {
  const args = [
    ...LOOPBACK_HUB_ARGV,
    ...options.args,
  ];
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-STDERR_KEEP);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const lastLogs: string[] = [];
  const ready = new Promise<Record<string, unknown>>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lastLogs.push(line);
      if (lastLogs.length > 20) lastLogs.shift();
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      options.onLog?.(entry);
      if (entry.msg === 'ready') resolve(entry);
    });
  });

  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<never>((_, reject) => {
    const explain = (what: string) => new Error(`${what}\n--- hub stdout (last lines) ---\n${lastLogs.join('\n')}\n--- hub stderr ---\n${stderr}`);
    timer = setTimeout(() => reject(explain(`hub not ready after ${options.timeoutMs} ms`)), options.timeoutMs);
    void exited.then(({ code, signal }) => reject(explain(`hub exited (code ${code}, signal ${signal}) before it was ready`)));
  });
  let readyEntry: Record<string, unknown>;
  try {
    readyEntry = await Promise.race([ready, failure]);
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // Later failures surface through stop(); the rejection must not crash the bench meanwhile.
  failure.catch(() => undefined);
  const startupMs = performance.now() - started;

  return {
    pid: child.pid!,
    zmq: String(readyEntry.zmq),
    startupMs,
    ready: readyEntry,
    stderrTail: () => stderr,
    async stop(timeoutMs) {
      const signalled = performance.now();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      let killTimer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (killTimer = setTimeout(() => resolve('late'), timeoutMs)));
      const first = await Promise.race([exited, late]);
      clearTimeout(killTimer);
      if (first !== 'late') return { ...first, ms: performance.now() - signalled, killed: false };
      child.kill('SIGKILL');
      return { ...(await exited), ms: performance.now() - signalled, killed: true };
    },
  };
}

/**
 * Names the processor a figure was measured on: these machines are not all the same kind
 * (an AMD EPYC with AVX2, or an Intel Xeon with AVX-512 and AMX), and figures only compare
 * within one kind.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';

/** The processor's model name and the vector/matrix extensions that decide inference speed. */
export function lscpuModelName(): string {
  const model = cpus()[0]?.model ?? 'unknown processor';
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux: the model name alone
  }
  const has = (flag: string) => new RegExp(`\\b${flag}\\b`).test(flags);
  const extensions = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8', 'amx_bf16'].filter(has);
  return `${model}, ${cpus().length} cores${extensions.length ? ` (${extensions.join(', ')})` : ''}`;
}

/**
 * The fuzzer's randomness: one seed for the whole run (FUZZ_SEED or a fresh one), and
 * independent named streams derived from it with the project's own PRNG, so that the same
 * seed makes the same inputs on any machine, whatever order the generators are asked in.
 */
import { randomInt } from 'node:crypto';
import { Prng } from '../../../model-tools/prng.ts';

/** The run's seed: FUZZ_SEED when set (an integer in [0, 2^32)), otherwise a random one. */
export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.FUZZ_SEED?.trim();
  if (text === undefined || text === '') return randomInt(0, 2 ** 32);
  const seed = Number(text);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`FUZZ_SEED must be an integer in [0, 2^32), got ${JSON.stringify(text)}`);
  }
  return seed;
}

export class FuzzRng {
  private readonly prng: Prng;

  constructor(seed: number, stream: string) {
    this.prng = Prng.derive(seed, `fuzz:${stream}`);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.prng.uniform();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return this.prng.int(n);
  }

  /** Integer in [lo, hi], both included. */
  between(lo: number, hi: number): number {
    return lo + this.prng.int(hi - lo + 1);
  }

  /** Integer in [lo, hi], small values much more likely (log-uniform). */
  logBetween(lo: number, hi: number): number {
    const a = Math.log(lo + 1);
    const b = Math.log(hi + 1);
    return Math.min(hi, Math.max(lo, Math.floor(Math.exp(a + (b - a) * this.prng.uniform())) - 1));
  }

  chance(p: number): boolean {
    return this.prng.uniform() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.prng.int(items.length)];
  }

  /** One of `choices`, each chosen with probability proportional to its weight. */
  weighted<T>(choices: ReadonlyArray<readonly [weight: number, value: T]>): T {
    const total = choices.reduce((sum, [weight]) => sum + weight, 0);
    let x = this.prng.uniform() * total;
    for (const [weight, value] of choices) {
      if (x < weight) return value;
      x -= weight;
    }
    return choices[choices.length - 1][1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const word = this.prng.nextUint32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.prng.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

/**
 * Python's `str(round(x, 5))`, so that the `preds` string is byte-for-byte the seed's.
 * JavaScript differs from Python in two places: `toFixed` rounds exact ties up where Python
 * rounds them to even, and the two print small numbers differently (`1e-05` vs `0.00001`).
 */

const DECIMALS = 5;

/** True when the exact binary value of `x` lies exactly halfway between two 5-decimal numbers. */
function isExactTie(x: number, decimals: number): boolean {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const exponentBits = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  // x = mantissa * 2^exponent exactly.
  const mantissa = exponentBits === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (exponentBits === 0 ? 1 : exponentBits) - 1075;
  if (exponent >= 0) return false; // an integer times a power of ten is never a half
  const scaled = mantissa * 10n ** BigInt(decimals);
  const denominator = 1n << BigInt(-exponent);
  return scaled % denominator === denominator / 2n;
}

/** Python's round(x, 5): exact decimal rounding, ties to even. */
export function pythonRound(x: number, decimals = DECIMALS): number {
  if (!Number.isFinite(x)) return x;
  const rounded = Number(x.toFixed(decimals));
  if (!isExactTie(x, decimals)) return rounded;
  const step = 10 ** -decimals;
  const lastDigit = Math.round(Math.abs(rounded) / step) % 10;
  // toFixed rounded the tie away from zero; step back when that left an odd last digit.
  return lastDigit % 2 === 0 ? rounded : Number((rounded - Math.sign(x) * step).toFixed(decimals));
}

/** Python's repr/str of a float: shortest round-trip digits, Python's layout. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [digits, exponentText] = x.toExponential().split('e');
  const exponent = Number(exponentText);
  if (exponent >= -4 && exponent < 16) {
    // JavaScript prints fixed notation over this whole range; Python marks integers with `.0`.
    const fixed = String(x);
    return fixed.includes('.') ? fixed : `${fixed}.0`;
  }
  const sign = exponent < 0 ? '-' : '+';
  return `${digits}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

/** `str(round(p, 5))` as the seed prints each probability. */
export function formatProbability(p: number): string {
  return pythonFloatRepr(pythonRound(p));
}

/**
 * Seeded, photo-like synthetic images for calibrating the untrained model's BatchNorm statistics
 * and classifier. Real photos are mostly smooth regions, edges and textures with a roughly 1/f
 * amplitude spectrum; white noise is none of those and calibrates the network for inputs it will
 * never see. So each image is: a smooth background (linear, horizon or radial gradient), 1/f-like
 * value noise, several coloured shapes with anti-aliased edges (flat, shaded, striped or
 * checkered), then a global exposure/contrast change and faint sensor grain.
 *
 * Like prng.ts this uses only exactly-rounded arithmetic (no sin/cos/exp/pow), so the pixels —
 * and hence the generated model — are identical on every machine.
 */
import { Prng } from './prng.ts';

export const SYNTHETIC_SIZE = 224;

type Rgb = [number, number, number];

/** `count` images of size×size×3 uint8 RGB (HWC), concatenated. Image i depends only on (seed, i). */
export function generateSyntheticImages(seed: number, count: number, size = SYNTHETIC_SIZE): Uint8Array {
  const out = new Uint8Array(count * size * size * 3);
  for (let i = 0; i < count; i++) {
    out.set(generateSyntheticImage(Prng.derive(seed, `synthetic-image-${i}`), size), i * size * size * 3);
  }
  return out;
}

export function generateSyntheticImage(rng: Prng, size = SYNTHETIC_SIZE): Uint8Array {
  const n = size * size;
  // Planar float RGB in [0, 1] while composing.
  const img: [Float32Array, Float32Array, Float32Array] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];

  paintBackground(img, size, rng);
  addFractalNoise(img, size, rng);
  const shapes = 3 + rng.int(10);
  for (let s = 0; s < shapes; s++) paintShape(img, size, rng, 0.04, 0.4);
  // Half the images get clutter (foliage, gravel, crowds...): many small shapes, fine detail.
  if (rng.uniform() < 0.5) {
    const small = 15 + rng.int(50);
    for (let s = 0; s < small; s++) paintShape(img, size, rng, 0.01, 0.06);
  }
  return finish(img, size, rng);
}

// ---------------------------------------------------------------------------------------------

/** A random colour, biased towards the muted colours photos are mostly made of. */
function randomColour(rng: Prng): Rgb {
  const grey = rng.uniform();
  const saturation = rng.uniform() < 0.4 ? rng.range(0.5, 1) : rng.range(0, 0.35);
  const c: Rgb = [rng.uniform(), rng.uniform(), rng.uniform()];
  return c.map((v) => clamp01(grey + saturation * (v - grey))) as Rgb;
}

/** A random unit vector, without trigonometry: normalise a (non-degenerate) random 2-vector. */
function randomDirection(rng: Prng): [number, number] {
  for (;;) {
    const x = rng.range(-1, 1);
    const y = rng.range(-1, 1);
    const r2 = x * x + y * y;
    if (r2 > 0.01 && r2 <= 1) {
      const r = Math.sqrt(r2);
      return [x / r, y / r];
    }
  }
}

function smoothstep(t: number): number {
  const x = clamp01(t);
  return x * x * (3 - 2 * x);
}

/** x², spelled as a product: `**` is Math.pow, whose rounding is implementation-defined. */
function sq(x: number): number {
  return x * x;
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function paintBackground(img: Float32Array[], size: number, rng: Prng): void {
  const a = randomColour(rng);
  const b = randomColour(rng);
  const kind = rng.int(3);
  const [dx, dy] = randomDirection(rng);
  const horizon = rng.range(0.25, 0.75) * size;
  const band = rng.range(2, 40);
  const cx = rng.uniform() * size;
  const cy = rng.uniform() * size;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let t: number;
      if (kind === 0) {
        t = 0.5 + ((x - size / 2) * dx + (y - size / 2) * dy) / size; // linear gradient
      } else if (kind === 1) {
        t = smoothstep((y - horizon) / band + 0.5); // sky / ground
      } else {
        const ex = (x - cx) / size;
        const ey = (y - cy) / size;
        t = Math.sqrt(ex * ex + ey * ey) * 1.4; // radial
      }
      const w = clamp01(t);
      const i = y * size + x;
      for (let c = 0; c < 3; c++) img[c][i] = a[c] + w * (b[c] - a[c]);
    }
  }
}

/** Value noise: random lattice of `cells`×`cells`, smoothstep-interpolated, values in [-1, 1]. */
function valueNoise(size: number, cells: number, rng: Prng): Float32Array {
  const g = cells + 1;
  const lattice = new Float32Array(g * g);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng.range(-1, 1);
  const out = new Float32Array(size * size);
  const step = cells / size;
  for (let y = 0; y < size; y++) {
    const fy = y * step;
    const iy = Math.floor(fy);
    const ty = smoothstep(fy - iy);
    for (let x = 0; x < size; x++) {
      const fx = x * step;
      const ix = Math.floor(fx);
      const tx = smoothstep(fx - ix);
      const v00 = lattice[iy * g + ix];
      const v01 = lattice[iy * g + ix + 1];
      const v10 = lattice[(iy + 1) * g + ix];
      const v11 = lattice[(iy + 1) * g + ix + 1];
      const top = v00 + tx * (v01 - v00);
      const bottom = v10 + tx * (v11 - v10);
      out[y * size + x] = top + ty * (bottom - top);
    }
  }
  return out;
}

/**
 * Sum of value-noise octaves, luminance plus weaker colour noise. Natural images have an
 * amplitude spectrum of about 1/f, i.e. roughly equal contrast in every octave; the per-octave
 * amplitude decays by 0.6–0.9 per octave (spectral slopes around 1/f).
 */
function addFractalNoise(img: Float32Array[], size: number, rng: Prng): void {
  let amplitude = rng.range(0.03, 0.12);
  const decay = rng.range(0.6, 0.9);
  const chroma = rng.range(0, 0.4);
  for (let cells = 2; cells <= size / 2; cells *= 2, amplitude *= decay) {
    const lum = valueNoise(size, cells, rng);
    const tint: Rgb = [rng.range(-1, 1), rng.range(-1, 1), rng.range(-1, 1)];
    for (let i = 0; i < lum.length; i++) {
      const v = amplitude * lum[i];
      for (let c = 0; c < 3; c++) img[c][i] += v * (1 + chroma * tint[c]);
    }
  }
}

/** Triangle wave with period 1, values in [0, 1] (a sine stand-in without trigonometry). */
function triangleWave(t: number): number {
  const f = t - Math.floor(t);
  return f < 0.5 ? 2 * f : 2 - 2 * f;
}

/** One shape whose radius is between minRadius and maxRadius (fractions of the image size). */
function paintShape(img: Float32Array[], size: number, rng: Prng, minRadius: number, maxRadius: number): void {
  const kind = rng.int(3); // ellipse, rectangle, triangle
  const cx = rng.range(-0.1, 1.1) * size;
  const cy = rng.range(-0.1, 1.1) * size;
  const ra = rng.range(minRadius, maxRadius) * size;
  const rb = rng.range(0.3, 1) * ra;
  const [ux, uy] = randomDirection(rng); // shape orientation
  const edge = rng.uniform() < 0.7 ? 1 : rng.range(2, 8); // crisp or defocused edge, in px
  const opacity = rng.range(0.6, 1);
  const colour = randomColour(rng);
  const colour2 = randomColour(rng);
  const fill = rng.int(4); // flat, shaded, stripes, checker
  const period = rng.range(2, Math.max(3, ra));
  const [sx, sy] = randomDirection(rng); // shading / stripe direction

  // Triangle: three vertices around the centre, edges as inward-facing half-planes.
  const tri: Array<[nx: number, ny: number, off: number]> = [];
  if (kind === 2) {
    const pts: Array<[number, number]> = [];
    for (let k = 0; k < 3; k++) {
      const [px, py] = randomDirection(rng);
      const r = rng.range(0.5, 1) * ra;
      pts.push([cx + r * px, cy + r * py]);
    }
    // Orientation sign so the normals point inwards whatever the winding.
    const cross = (pts[1][0] - pts[0][0]) * (pts[2][1] - pts[0][1]) - (pts[1][1] - pts[0][1]) * (pts[2][0] - pts[0][0]);
    if (Math.abs(cross) < 1) return; // degenerate sliver
    const sign = cross > 0 ? 1 : -1;
    for (let k = 0; k < 3; k++) {
      const [x0, y0] = pts[k];
      const [x1, y1] = pts[(k + 1) % 3];
      const len = Math.sqrt(sq(x1 - x0) + sq(y1 - y0));
      const nx = (-(y1 - y0) / len) * sign;
      const ny = ((x1 - x0) / len) * sign;
      tri.push([nx, ny, nx * x0 + ny * y0]);
    }
  }

  const reach = ra + edge + 1;
  const x0 = Math.max(0, Math.floor(cx - reach));
  const x1 = Math.min(size - 1, Math.ceil(cx + reach));
  const y0 = Math.max(0, Math.floor(cy - reach));
  const y1 = Math.min(size - 1, Math.ceil(cy + reach));

  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const u = (px - cx) * ux + (py - cy) * uy;
      const v = -(px - cx) * uy + (py - cy) * ux;
      // Approximate signed distance to the outline, in pixels (negative inside).
      let d: number;
      if (kind === 0) {
        d = (Math.sqrt(sq(u / ra) + sq(v / rb)) - 1) * rb;
      } else if (kind === 1) {
        d = Math.max(Math.abs(u) - ra, Math.abs(v) - rb);
      } else {
        d = -Infinity;
        for (const [nx, ny, off] of tri) d = Math.max(d, off - (nx * px + ny * py));
      }
      const coverage = clamp01(0.5 - d / edge) * opacity;
      if (coverage <= 0) continue;

      const along = ((px - cx) * sx + (py - cy) * sy) / ra; // roughly [-1, 1] across the shape
      let mix: number;
      if (fill === 0) mix = 0;
      else if (fill === 1) mix = clamp01(0.5 + 0.5 * along);
      else if (fill === 2) mix = triangleWave((along * ra) / period);
      else mix = (Math.floor(u / period) + Math.floor(v / period)) & 1;

      const i = y * size + x;
      for (let c = 0; c < 3; c++) {
        const target = colour[c] + mix * (colour2[c] - colour[c]);
        img[c][i] += coverage * (target - img[c][i]);
      }
    }
  }
}

/**
 * Tone and colour like a camera's output: optionally greyscale; levels stretched so the image
 * spans most of the range (photos are exposed to use it, our composition alone is too flat);
 * a tone curve (normal, low-key/dark like night or astronomy shots, or high-key/bright);
 * faint sensor grain; then uint8 HWC.
 */
function finish(img: Float32Array[], size: number, rng: Prng): Uint8Array {
  const n = size * size;
  const [r, g, b] = img;
  if (rng.uniform() < 0.1) {
    for (let i = 0; i < n; i++) r[i] = g[i] = b[i] = 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i];
  }

  // Luminance percentiles from a 1024-bin histogram (exact, order-independent).
  const bins = 1024;
  const histogram = new Uint32Array(bins);
  for (let i = 0; i < n; i++) {
    const lum = clamp01(0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]);
    histogram[Math.min(bins - 1, Math.floor(lum * bins))]++;
  }
  const percentile = (q: number): number => {
    let seen = 0;
    for (let k = 0; k < bins; k++) {
      seen += histogram[k];
      if (seen >= q * n) return (k + 0.5) / bins;
    }
    return 1;
  };
  const lo = percentile(0.005);
  const hi = Math.max(lo + 0.05, percentile(0.995));
  const black = rng.range(0, 0.1);
  const white = rng.range(0.7, 1);
  const gain = (white - black) / (hi - lo);

  const key = rng.uniform();
  const bend = rng.range(-0.5, 0.5);
  const tone = (x: number): number => {
    if (key < 0.15) return x * x * x; // low-key: mostly dark, a few highlights
    if (key < 0.3) return 1 - (1 - x) * (1 - x); // high-key
    return x + bend * x * (1 - x); // mid-tones a little darker or brighter
  };

  const grain = rng.range(0, 5) / 255;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = tone(clamp01(black + (img[c][i] - lo) * gain)) + grain * rng.range(-1, 1);
      out[i * 3 + c] = Math.round(clamp01(v) * 255);
    }
  }
  return out;
}

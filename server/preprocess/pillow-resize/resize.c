// Pillow 9.4's Image.resize(..., BICUBIC) for 8-bit RGB, operation for operation
// (libImaging/Resample.c): separable, horizontal pass first, weights normalised and turned
// into 22-bit fixed point, each pass rounded and clipped to 0..255. Compiled to WebAssembly
// with SIMD by build.sh; the fixed-point sums are the same in every lane, so the output is
// bit-identical to Pillow's.
#include <wasm_simd128.h>

typedef unsigned char u8;
typedef int i32;
#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc. Returns ksize; bounds gets (first, count)
// per output pixel, kk ksize fixed-point weights per output pixel, pre is scratch of the same size.
static i32 coeffs(i32 inSize, i32 outSize, i32 *bounds, i32 *kk, double *pre) {
  double scale = (double)inSize / outSize, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 2.0 * filterscale;
  i32 ksize = (i32)__builtin_ceil(support) * 2 + 1;
  for (i32 xx = 0; xx < outSize; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    i32 xmin = (i32)(center - support + 0.5); if (xmin < 0) xmin = 0;
    i32 xmax = (i32)(center + support + 0.5); if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    double *k = &pre[xx * ksize];
    i32 x = 0;
    for (; x < xmax; x++) { double w = bicubic((x + xmin - center + 0.5) * ss); k[x] = w; ww += w; }
    for (x = 0; x < xmax; x++) if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++) k[x] = 0;
    bounds[xx * 2] = xmin; bounds[xx * 2 + 1] = xmax;
  }
  for (i32 i = 0; i < outSize * ksize; i++) kk[i] = pre[i] < 0 ? (i32)(-0.5 + pre[i] * (1 << PRECISION_BITS)) : (i32)(0.5 + pre[i] * (1 << PRECISION_BITS));
  return ksize;
}

static inline u8 clip8(i32 v) { v >>= PRECISION_BITS; return v < 0 ? 0 : v > 255 ? 255 : (u8)v; }

// Horizontal pass on interleaved RGB: one i32x4 holds a pixel's three sums (the fourth lane is
// the next pixel's red, computed and thrown away). Reads one byte past the last pixel.
static void horizontal(const u8 *in, i32 w, i32 h, u8 *out, i32 outW, const i32 *bounds, const i32 *kk, i32 ksize) {
  const v128_t half = wasm_i32x4_splat(1 << (PRECISION_BITS - 1));
  for (i32 y = 0; y < h; y++) {
    const u8 *row = in + y * w * 3; u8 *o = out + y * outW * 3;
    for (i32 xx = 0; xx < outW; xx++) {
      i32 xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
      const i32 *k = kk + xx * ksize; const u8 *p = row + xmin * 3;
      v128_t s = half;
      for (i32 x = 0; x < xmax; x++) {
        v128_t px = wasm_u32x4_extend_low_u16x8(wasm_u16x8_extend_low_u8x16(wasm_v128_load32_zero(p + x * 3)));
        s = wasm_i32x4_add(s, wasm_i32x4_mul(px, wasm_i32x4_splat(k[x])));
      }
      o[xx * 3] = clip8(wasm_i32x4_extract_lane(s, 0)); o[xx * 3 + 1] = clip8(wasm_i32x4_extract_lane(s, 1)); o[xx * 3 + 2] = clip8(wasm_i32x4_extract_lane(s, 2));
    }
  }
}

static inline v128_t clamp_pack(v128_t a, v128_t b, v128_t c, v128_t d) {
  // >> PRECISION_BITS, then saturate i32 -> i16 -> u8, which is clip8.
  a = wasm_i32x4_shr(a, PRECISION_BITS); b = wasm_i32x4_shr(b, PRECISION_BITS);
  c = wasm_i32x4_shr(c, PRECISION_BITS); d = wasm_i32x4_shr(d, PRECISION_BITS);
  return wasm_u8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(a, b), wasm_i16x8_narrow_i32x4(c, d));
}

static void vertical(const u8 *in, i32 stride, u8 *out, i32 outH, const i32 *bounds, const i32 *kk, i32 ksize) {
  const v128_t half = wasm_i32x4_splat(1 << (PRECISION_BITS - 1));
  for (i32 yy = 0; yy < outH; yy++) {
    i32 ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
    const i32 *k = kk + yy * ksize; u8 *o = out + yy * stride;
    i32 c = 0;
    for (; c + 16 <= stride; c += 16) {
      v128_t s0 = half, s1 = half, s2 = half, s3 = half;
      for (i32 y = 0; y < ymax; y++) {
        v128_t v = wasm_v128_load(in + (ymin + y) * stride + c), kv = wasm_i32x4_splat(k[y]);
        v128_t lo = wasm_u16x8_extend_low_u8x16(v), hi = wasm_u16x8_extend_high_u8x16(v);
        s0 = wasm_i32x4_add(s0, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(lo), kv));
        s1 = wasm_i32x4_add(s1, wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(lo), kv));
        s2 = wasm_i32x4_add(s2, wasm_i32x4_mul(wasm_u32x4_extend_low_u16x8(hi), kv));
        s3 = wasm_i32x4_add(s3, wasm_i32x4_mul(wasm_u32x4_extend_high_u16x8(hi), kv));
      }
      wasm_v128_store(o + c, clamp_pack(s0, s1, s2, s3));
    }
    for (; c < stride; c++) {
      i32 s = 1 << (PRECISION_BITS - 1);
      for (i32 y = 0; y < ymax; y++) s += in[(ymin + y) * stride + c] * k[y];
      o[c] = clip8(s);
    }
  }
}

// All memory is laid out by the caller (pillow-resize.ts): src (w*h*3 bytes, plus one readable
// byte after it), dst (outW*outH*3), tmp (outW*h*3), ints and pre (sized in resizeLikePillow).
__attribute__((export_name("resize")))
void resize(const u8 *src, i32 w, i32 h, u8 *dst, i32 outW, i32 outH, u8 *tmp, i32 *ints, double *pre) {
  i32 *bh = ints, *kh = bh + 2 * outW;
  i32 kszH = coeffs(w, outW, bh, kh, pre);
  i32 *bv = kh + outW * kszH, *kv = bv + 2 * outH;
  i32 kszV = coeffs(h, outH, bv, kv, pre);
  i32 yfirst = bv[0], ylast = bv[outH * 2 - 2] + bv[outH * 2 - 1];
  if (w != outW && h != outH) {
    for (i32 i = 0; i < outH; i++) bv[i * 2] -= yfirst;
    horizontal(src + yfirst * w * 3, w, ylast - yfirst, tmp, outW, bh, kh, kszH);
    vertical(tmp, outW * 3, dst, outH, bv, kv, kszV);
  } else if (w != outW) horizontal(src, w, h, dst, outW, bh, kh, kszH);
  else if (h != outH) vertical(src, w * 3, dst, outH, bv, kv, kszV);
  else __builtin_memcpy(dst, src, (unsigned long)w * h * 3);
}

// mmseg 0.14 PhotoMetricDistortion (spec §5.3 step 5) with OpenCV's uint8 colour arithmetic.
// Hand-written because the semantics are those of numpy float32 + cv2.cvtColor on uint8, which no JS
// image library reproduces: brightness/contrast/saturation compute x*alpha+beta in float32, clip to
// [0, 255] and truncate; hue and saturation go through OpenCV's 8-bit HSV (H in 0..179, S and V in
// 0..255) and back, once per step, so each of them rounds as cv2 does.
// The pipeline works on RGB; the original works on BGR. Every step treats the three channels alike or
// through HSV (which does not depend on the storage order), so the results are the same pixel for pixel.
import type { Rng } from '../base/rng.js';
import type { RGBImage } from './types.js';

/** Parameters of PhotoMetricDistortion (mmseg defaults). */
export interface PhotometricOptions {
  /** Brightness offset drawn from U(-delta, delta). Default 32. */
  brightnessDelta: number;
  /** Contrast factor range. Default [0.5, 1.5]. */
  contrastRange: [number, number];
  /** Saturation factor range. Default [0.5, 1.5]. */
  saturationRange: [number, number];
  /** Hue shift drawn from the integers [-delta, delta - 1] (numpy randint's exclusive high). Default 18. */
  hueDelta: number;
}

/** mmseg 0.14 defaults. */
export const PHOTOMETRIC_DEFAULTS: Readonly<PhotometricOptions> = Object.freeze({
  brightnessDelta: 32,
  contrastRange: [0.5, 1.5] as [number, number],
  saturationRange: [0.5, 1.5] as [number, number],
  hueDelta: 18,
});

const HSV_SHIFT = 12;
// cv2 RGB2HSV_b tables: saturate_cast<int>((255 << 12) / i) and (180 << 12) / (6 i); no value is a tie,
// so Math.round equals cv2's round-half-even here.
const SDIV = new Int32Array(256);
const HDIV180 = new Int32Array(256);
for (let i = 1; i < 256; i++) {
  SDIV[i] = Math.round((255 << HSV_SHIFT) / i);
  HDIV180[i] = Math.round((180 << HSV_SHIFT) / (6 * i));
}

/** cv2.cvtColor(COLOR_RGB2HSV) on 8-bit interleaved RGB: H in 0..179, S and V in 0..255 (fixed-point, as cv2). */
export function rgbToHsv(rgb: Uint8Array, out: Uint8Array = new Uint8Array(rgb.length)): Uint8Array {
  const half = 1 << (HSV_SHIFT - 1);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i]!, g = rgb[i + 1]!, b = rgb[i + 2]!;
    const v = Math.max(r, g, b), diff = v - Math.min(r, g, b);
    const s = (diff * SDIV[v]! + half) >> HSV_SHIFT;
    // cv2 tests r first, then g, so a tie between maxima resolves the same way.
    const hNum = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    let h = (hNum * HDIV180[diff]! + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    out[i] = h;
    out[i + 1] = s;
    out[i + 2] = v;
  }
  return out;
}

// HSV2RGB_b: sector table of OpenCV's HSV2RGB_native, listed as (b, g, r) indices into
// tab = [v, v(1-s), v(1-s h), v(1-s(1-h))].
const SECTOR_BGR = [
  [1, 3, 0],
  [1, 0, 2],
  [3, 0, 1],
  [0, 2, 1],
  [0, 1, 3],
  [2, 1, 0],
] as const;
const f32 = Math.fround;
const HSCALE = f32(6 / 180);
const INV255 = f32(1 / 255);

/**
 * Pixels per SIMD block of cv2's HSV2RGB_b with AVX2 dispatch (4 vectors of 8 float32 lanes; measured:
 * also on an AVX-512 CPU). OpenCV 4.x truncates to uint8 inside a row's full blocks and rounds (half to
 * even) only in the row's scalar tail; crop widths 512, 480, 768 and 352 are whole blocks, so there every
 * pixel truncates. SSE-only builds use 16-pixel blocks: only the pixels of a row's tail can differ.
 */
export const HSV2RGB_SIMD_BLOCK = 32;

const F32 = new Float32Array(1);
const F32_BITS = new Int32Array(F32.buffer);

/** float32 fused multiply-add a*b + c with one rounding (a, b, c float32), as the FMA units cv2's build uses. */
function fmaF32(a: number, b: number, c: number): number {
  const p = a * b; // exact: a product of two float32 values fits a float64
  const s = p + c;
  const bb = s - p, err = p - (s - bb) + (c - bb); // TwoSum: the exact sum is s + err
  const r = f32(s);
  if (err === 0 || r === s) return r;
  // s may sit exactly halfway between two float32 values while the exact sum does not: decide by err.
  F32[0] = r;
  F32_BITS[0]! += s > r === r > 0 ? 1 : -1;
  const other = F32[0]!;
  if (Math.abs(s - r) !== Math.abs(other - s)) return r;
  return err > 0 === other > r ? other : r;
}

function toU8Round(x: number): number {
  // saturate_cast<uchar>(float): round half to even, then clamp.
  let r = Math.round(x);
  if (r - x === 0.5 && (r & 1) !== 0) r -= 1;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

function toU8Trunc(x: number): number {
  // v_trunc then v_pack_u (unsigned saturation); x >= 0 here.
  return x >= 255 ? 255 : Math.trunc(x);
}

/**
 * cv2.cvtColor(COLOR_HSV2RGB) on 8-bit HSV (H 0..179) in rows of `width` pixels, bit for bit as OpenCV 4.6
 * on x86-64 with AVX2 dispatch (checked on all 180*256*256 inputs, in SIMD blocks and in scalar tails):
 * float32 h*6/180, s/255, v/255; tab = [v, v(1-s), v(1-s h), v(1-s(1-h))] where the compiler fuses
 * 1-s*h (both paths) and 1-s*(1-h) (SIMD only) into FMAs; then x255, truncated in SIMD blocks and
 * rounded half-to-even in the tail. Without the FMAs, 0.015 % of the inputs would be off by one.
 */
export function hsvToRgb(hsv: Uint8Array, width: number, out: Uint8Array = new Uint8Array(hsv.length)): Uint8Array {
  const tab = new Float32Array(4);
  const simdEnd = Math.floor(width / HSV2RGB_SIMD_BLOCK) * HSV2RGB_SIMD_BLOCK;
  for (let i = 0, x = 0; i < hsv.length; i += 3, x = x + 1 === width ? 0 : x + 1) {
    let h = f32(hsv[i]! * HSCALE);
    const s = f32(hsv[i + 1]! * INV255), v = f32(hsv[i + 2]! * INV255);
    h = h % 6; // fmod as cv2 (H <= 255 gives h < 8.5)
    let sector = Math.floor(h);
    h = f32(h - sector);
    if (sector >= 6) (sector = 0), (h = 0);
    const simd = x < simdEnd;
    tab[0] = v;
    tab[1] = f32(v * f32(1 - s));
    tab[2] = f32(v * fmaF32(-s, h, 1));
    tab[3] = f32(v * (simd ? fmaF32(-s, f32(1 - h), 1) : f32(1 - f32(s * f32(1 - h)))));
    const sd = SECTOR_BGR[sector]!;
    const toU8 = simd ? toU8Trunc : toU8Round;
    out[i] = toU8(f32(tab[sd[2]]! * 255));
    out[i + 1] = toU8(f32(tab[sd[1]]! * 255));
    out[i + 2] = toU8(f32(tab[sd[0]]! * 255));
  }
  return out;
}

/**
 * numpy's `clip(x.astype(float32) * alpha + beta, 0, 255).astype(uint8)` on every `stride`-th value from
 * `start`, in place: float32 arithmetic (alpha and beta rounded to float32 first), truncation toward zero.
 */
export function convertU8(data: Uint8Array, alpha: number, beta: number, start = 0, stride = 1): void {
  const a = f32(alpha), b = f32(beta);
  for (let i = start; i < data.length; i += stride) {
    const x = f32(f32(data[i]! * a) + b);
    data[i] = x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x);
  }
}

/** Multiplies the HSV saturation by `alpha` (cv2 HSV round trip of rows of `width` pixels, float32 scale, clip, truncate), in place. */
export function adjustSaturation(rgb: Uint8Array, width: number, alpha: number): void {
  const hsv = rgbToHsv(rgb);
  convertU8(hsv, alpha, 0, 1, 3);
  hsvToRgb(hsv, width, rgb);
}

/** Shifts the HSV hue by `delta` steps of 2 degrees, wrapping modulo 180 (cv2 HSV round trip of rows of `width` pixels), in place. */
export function adjustHue(rgb: Uint8Array, width: number, delta: number): void {
  const hsv = rgbToHsv(rgb);
  for (let i = 0; i < hsv.length; i += 3) hsv[i] = (((hsv[i]! + delta) % 180) + 180) % 180;
  hsvToRgb(hsv, width, rgb);
}

/** Random draws of one PhotoMetricDistortion call; undefined means the step was skipped. */
export interface PhotometricDraws {
  brightness?: number;
  /** 1: contrast before saturation/hue; 0: after. */
  mode: 0 | 1;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

/**
 * Draws the random parameters in mmseg's order: brightness coin (+ value), mode, [contrast if mode 1],
 * saturation coin (+ value), hue coin (+ value), [contrast if mode 0]. A coin is numpy randint(2).
 */
export function drawPhotometric(rng: Rng, opts: PhotometricOptions = PHOTOMETRIC_DEFAULTS): PhotometricDraws {
  const coin = () => rng.uniform() >= 0.5;
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rng.uniform();
  const d: PhotometricDraws = { mode: 0 };
  if (coin()) d.brightness = uniform(-opts.brightnessDelta, opts.brightnessDelta);
  d.mode = coin() ? 1 : 0;
  if (d.mode === 1 && coin()) d.contrast = uniform(opts.contrastRange[0], opts.contrastRange[1]);
  if (coin()) d.saturation = uniform(opts.saturationRange[0], opts.saturationRange[1]);
  if (coin()) d.hue = -opts.hueDelta + Math.floor(rng.uniform() * 2 * opts.hueDelta);
  if (d.mode === 0 && coin()) d.contrast = uniform(opts.contrastRange[0], opts.contrastRange[1]);
  return d;
}

/** Applies drawn parameters to an 8-bit RGB image in place, in mmseg's order. */
export function applyPhotometric(img: RGBImage, d: PhotometricDraws): void {
  if (d.brightness !== undefined) convertU8(img.data, 1, d.brightness);
  if (d.mode === 1 && d.contrast !== undefined) convertU8(img.data, d.contrast, 0);
  if (d.saturation !== undefined) adjustSaturation(img.data, img.width, d.saturation);
  if (d.hue !== undefined) adjustHue(img.data, img.width, d.hue);
  if (d.mode === 0 && d.contrast !== undefined) convertU8(img.data, d.contrast, 0);
}

/** mmseg PhotoMetricDistortion on an 8-bit RGB image, in place; returns the draws it used. */
export function photometricDistortion(img: RGBImage, rng: Rng, opts: PhotometricOptions = PHOTOMETRIC_DEFAULTS): PhotometricDraws {
  const d = drawPhotometric(rng, opts);
  applyPhotometric(img, d);
  return d;
}

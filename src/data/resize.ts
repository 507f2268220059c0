// Resizing for the data pipeline, written out by hand on purpose:
// - training/eval images must match OpenCV's cv2.resize(INTER_LINEAR) on uint8, which mmseg uses
//   (spec §5.3); sharp/libvips resamples with different kernels and rounding, so it cannot be used;
// - label maps must never be interpolated: nearest neighbour with cv2's (or PyTorch's) source-index rule;
// - the policy-net pipeline (spec §2.3) resizes the *normalised float* image with PyTorch's
//   upsample_bilinear2d (align_corners=False, no antialias), which no image library reproduces.
//
// cv2 INTER_LINEAR on uint8, as implemented here (checked bit for bit against OpenCV 4.6 on x86-64,
// random images and sizes, up- and down-scaling):
// - coordinates: fx = float32((dx + 0.5) * (src/dst) - 0.5), sx = floor(fx), weights
//   round_half_even((1 - fx) * 2048) and round_half_even(fx * 2048) (INTER_RESIZE_COEF_BITS = 11);
// - columns: sx < 0 -> (sx, fx) = (0, 0); once sx + 1 >= width the output is the last column (x2048);
// - rows: sy is *not* clamped; the two source rows are clipped to [0, h-1] and keep their weights;
// - horizontal pass in exact int32; the vertical pass is OpenCV's SIMD arithmetic (which its scalar
//   tail reproduces): (((S0 >> 4) * b0) >> 16) + (((S1 >> 4) * b1) >> 16), then (+2) >> 2, clamped.
//   Note this is not the textbook (S0*b0 + S1*b1 + 2^21) >> 22, which differs by 1 on ~12 % of pixels.
// - cv2 switches an exact 2x downscale to INTER_AREA; that 2x2 mean (sum + 2) >> 2 is what the formula
//   above gives for those sizes, so no special case is needed.
// Not covered: builds of OpenCV that replace resize through a HAL (e.g. Carotene on ARM) or enable IPP's
// inexact resize; those differ from OpenCV's own code by at most 1 per channel.
import { CtsError } from '../base/errors.js';
import type { LabelMap, RGBImage } from './types.js';

/** A rectangle of an output grid: columns [x, x+width), rows [y, y+height). */
export interface Window {
  x: number;
  y: number;
  width: number;
  height: number;
}

const COEF_SCALE = 2048;

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

function checkSize(what: string, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new CtsError(`${what}: size ${w}x${h} is invalid, expected positive integers`);
}

/** Per output coordinate: left source index, fixed-point weights, and the clamping that cv2 applies. */
function linearTaps(dst: number, src: number, start: number, count: number, clampEdges: boolean) {
  const scale = 1 / (dst / src); // cv2: scale = 1 / inv_scale, inv_scale = dst / src (doubles)
  const idx = new Int32Array(count), w0 = new Int32Array(count), w1 = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const d = start + i;
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampEdges) {
      if (s < 0) (f = 0), (s = 0);
      // Right edge: cv2 writes S[last] * ONE whatever the weights are.
      if (s + 1 >= src) (f = 0), (s = src - 1);
    }
    idx[i] = s;
    w0[i] = roundHalfEven(Math.fround(1 - f) * COEF_SCALE);
    w1[i] = roundHalfEven(f * COEF_SCALE);
  }
  return { idx, w0, w1 };
}

function interleavedBilinear(data: Uint8Array, w: number, h: number, cn: number, dstW: number, dstH: number, win: Window): Uint8Array {
  const xs = linearTaps(dstW, w, win.x, win.width, true);
  const ys = linearTaps(dstH, h, win.y, win.height, false);
  const clipRow = (r: number) => (r < 0 ? 0 : r > h - 1 ? h - 1 : r);
  // Source rows this window touches, horizontally resampled once each.
  const r0 = clipRow(ys.idx[0]!), r1 = clipRow(ys.idx[win.height - 1]! + 1);
  const rowLen = win.width * cn;
  const hz = new Int32Array((r1 - r0 + 1) * rowLen);
  for (let r = r0; r <= r1; r++) {
    const src = r * w * cn, dstOff = (r - r0) * rowLen;
    for (let i = 0; i < win.width; i++) {
      const s = src + xs.idx[i]! * cn, a0 = xs.w0[i]!, a1 = xs.w1[i]!, o = dstOff + i * cn;
      if (xs.idx[i]! + 1 >= w) for (let c = 0; c < cn; c++) hz[o + c] = data[s + c]! * COEF_SCALE;
      else for (let c = 0; c < cn; c++) hz[o + c] = data[s + c]! * a0 + data[s + cn + c]! * a1;
    }
  }
  const out = new Uint8Array(win.width * win.height * cn);
  for (let j = 0; j < win.height; j++) {
    const sy = ys.idx[j]!, b0 = ys.w0[j]!, b1 = ys.w1[j]!;
    const p0 = (clipRow(sy) - r0) * rowLen, p1 = (clipRow(sy + 1) - r0) * rowLen, o = j * rowLen;
    for (let k = 0; k < rowLen; k++) {
      // (S >> 4) <= 32640 and b <= 2048, so the products stay well inside int32 as in cv2's int16 lanes.
      const v = ((((hz[p0 + k]! >> 4) * b0) >> 16) + (((hz[p1 + k]! >> 4) * b1) >> 16) + 2) >> 2;
      out[o + k] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/**
 * cv2.resize(img, (dstW, dstH), interpolation=INTER_LINEAR) for an 8-bit RGB image (see the header for
 * the exact arithmetic). With `window`, only that part of the dstW x dstH result is computed (each output
 * pixel depends only on its own position, so this equals cropping the full resize, at a fraction of the cost).
 */
export function resizeBilinear(img: RGBImage, dstW: number, dstH: number, window?: Window): RGBImage {
  checkSize('resizeBilinear', dstW, dstH);
  const win = window ?? { x: 0, y: 0, width: dstW, height: dstH };
  if (win.x < 0 || win.y < 0 || win.width < 1 || win.height < 1 || win.x + win.width > dstW || win.y + win.height > dstH)
    throw new CtsError(`resizeBilinear: window ${JSON.stringify(win)} is outside the ${dstW}x${dstH} output`);
  if (dstW === img.width && dstH === img.height) return cropInterleaved(img.data, img.width, 3, win);
  return { width: win.width, height: win.height, data: interleavedBilinear(img.data, img.width, img.height, 3, dstW, dstH, win) };
}

function cropInterleaved(data: Uint8Array, w: number, cn: number, win: Window): RGBImage {
  const out = new Uint8Array(win.width * win.height * cn);
  for (let y = 0; y < win.height; y++) out.set(data.subarray(((win.y + y) * w + win.x) * cn, ((win.y + y) * w + win.x + win.width) * cn), y * win.width * cn);
  return { width: win.width, height: win.height, data: out };
}

/** Source index rule of a nearest-neighbour resize: OpenCV's INTER_NEAREST or PyTorch's interpolate(mode='nearest'). */
export type NearestRule = 'cv2' | 'torch';

function nearestIndex(dst: number, src: number, rule: NearestRule): Int32Array {
  const idx = new Int32Array(dst);
  if (rule === 'cv2') {
    const scale = 1 / (dst / src); // floor(x * (1 / inv_scale)) in doubles, as cv2's resizeNN
    for (let x = 0; x < dst; x++) idx[x] = Math.min(Math.floor(x * scale), src - 1);
  } else {
    // PyTorch nearest_idx: identity and exact 2x are special-cased, otherwise float32 floorf(x * scale).
    const scale = Math.fround(src / dst);
    for (let x = 0; x < dst; x++) idx[x] = dst === src ? x : dst === 2 * src ? x >> 1 : Math.min(Math.floor(Math.fround(x * scale)), src - 1);
  }
  return idx;
}

/**
 * Nearest-neighbour resize of a label map: output (x, y) takes source (floor(x * w/dstW), floor(y * h/dstH))
 * (cv2 INTER_NEAREST by default), so every output value is a value of the input; labels are never blended.
 */
export function resizeNearest(label: LabelMap, dstW: number, dstH: number, rule: NearestRule = 'cv2'): LabelMap {
  checkSize('resizeNearest', dstW, dstH);
  const xi = nearestIndex(dstW, label.width, rule), yi = nearestIndex(dstH, label.height, rule);
  const out = new Uint8Array(dstW * dstH);
  for (let y = 0; y < dstH; y++) {
    const row = yi[y]! * label.width, o = y * dstW;
    for (let x = 0; x < dstW; x++) out[o + x] = label.data[row + xi[x]!]!;
  }
  return { width: dstW, height: dstH, data: out };
}

/** Source taps of output coordinates [start, start + count) of a torch bilinear resize src -> dst. */
function torchTaps(dst: number, src: number, start: number, count: number) {
  const i0 = new Int32Array(count), i1 = new Int32Array(count), l0 = new Float32Array(count), l1 = new Float32Array(count);
  const scale = Math.fround(src / dst);
  for (let j = 0; j < count; j++) {
    const d = start + j;
    if (dst === src) {
      i0[j] = i1[j] = d;
      l0[j] = 1;
      continue;
    }
    let r = Math.fround(Math.fround(scale * Math.fround(d + 0.5)) - 0.5);
    if (r < 0) r = 0;
    const i = Math.min(Math.floor(r), src - 1);
    const lam = Math.min(Math.max(Math.fround(r - i), 0), 1);
    i0[j] = i;
    i1[j] = i + (i < src - 1 ? 1 : 0);
    l1[j] = lam;
    l0[j] = Math.fround(1 - lam);
  }
  return { i0, i1, l0, l1 };
}

/**
 * PyTorch's F.interpolate(x, size, mode='bilinear', align_corners=False) (torchvision resize of a float
 * tensor, antialias off) on a CHW float32 image: src = max(scale*(d+0.5)-0.5, 0) with scale = float32(in/out),
 * the right neighbour clamped, and float32 arithmetic in PyTorch's order h0*(w0*a+w1*b) + h1*(w0*c+w1*d).
 * Builds of PyTorch that fuse multiply-adds may differ in the last bit.
 */
export function resizeBilinearTorch(chw: Float32Array, channels: number, h: number, w: number, dstH: number, dstW: number): Float32Array {
  checkSize('resizeBilinearTorch', dstW, dstH);
  return resizeBilinearTorchRows(chw, channels, h, w, dstH, dstW, 0, dstH);
}

/**
 * Output rows [y0, y1) of resizeBilinearTorch(chw, channels, h, w, dstH, dstW) as a [channels, y1 - y0, dstW]
 * array, bit-identical to those rows of the full resize (same taps, same arithmetic), so large outputs can be
 * produced band by band. Reads only source rows torchSourceRows(h, dstH, y0, y1) of every channel.
 */
export function resizeBilinearTorchRows(chw: Float32Array, channels: number, h: number, w: number, dstH: number, dstW: number, y0: number, y1: number): Float32Array {
  const out = new Float32Array(channels * (y1 - y0) * dstW);
  forEachResizedRow(chw, channels, h, w, dstH, dstW, y0, y1, (c, y, row) => out.set(row, (c * (y1 - y0) + y) * dstW));
  return out;
}

/**
 * Argmax over channels (first channel on ties, as argmaxChannels) of output rows [y0, y1) of the
 * torch resize, without holding the band's channels x rows x dstW values: the class map of a resized
 * logit map, the same as argmaxChannels(resizeBilinearTorchRows(...)).
 */
export function resizeBilinearTorchArgmaxRows(chw: Float32Array, channels: number, h: number, w: number, dstH: number, dstW: number, y0: number, y1: number): Uint8Array {
  if (channels > 255) throw new CtsError(`${channels} classes do not fit an 8-bit class map (at most 255)`);
  const best = new Float32Array((y1 - y0) * dstW), idx = new Uint8Array(best.length);
  forEachResizedRow(chw, channels, h, w, dstH, dstW, y0, y1, (c, y, row) => {
    const o = y * dstW;
    if (c === 0) best.set(row, o);
    else keepLarger(best, idx, o, row, c);
  });
  return idx;
}

function keepLarger(best: Float32Array, idx: Uint8Array, o: number, row: Float32Array, c: number): void {
  for (let x = 0; x < row.length; x++) {
    if (row[x]! > best[o + x]!) {
      best[o + x] = row[x]!;
      idx[o + x] = c;
    }
  }
}

/**
 * Output rows [y0, y1) of the torch resize, handed to `sink` one (channel, row) at a time in a reused
 * dstW buffer (channel-major, rows ascending).
 */
function forEachResizedRow(chw: Float32Array, channels: number, h: number, w: number, dstH: number, dstW: number, y0: number, y1: number, sink: (c: number, y: number, row: Float32Array) => void): void {
  checkSize('resizeBilinearTorchRows', dstW, dstH);
  if (!(Number.isInteger(y0) && Number.isInteger(y1) && 0 <= y0 && y0 < y1 && y1 <= dstH)) throw new CtsError(`resizeBilinearTorchRows: rows [${y0}, ${y1}) are outside the ${dstH}-row output`);
  if (chw.length < channels * h * w) throw new CtsError(`resizeBilinearTorchRows: ${chw.length} values for a ${channels}x${h}x${w} image`);
  const rows = y1 - y0;
  const ty = torchTaps(dstH, h, y0, rows), tx = torchTaps(dstW, w, 0, dstW);
  const f = Math.fround;
  // Every output row blends two horizontally resampled source rows, and an upscale reuses each source
  // row for many output rows: resample the source rows the band reads once (the same float32 products
  // and sum as torch's w0*a + w1*b), then blend them per output row. Identical values, fewer operations.
  const slot = new Int32Array(h).fill(-1);
  const used: number[] = [];
  for (let y = 0; y < rows; y++) {
    for (const r of [ty.i0[y]!, ty.i1[y]!]) if (slot[r] === -1) (slot[r] = used.length), used.push(r);
  }
  const hz = new Float32Array(used.length * dstW), line = new Float32Array(dstW);
  for (let c = 0; c < channels; c++) {
    const src = c * h * w;
    for (let u = 0; u < used.length; u++) {
      const row = src + used[u]! * w, o = u * dstW;
      for (let x = 0; x < dstW; x++) hz[o + x] = f(f(chw[row + tx.i0[x]!]! * tx.l0[x]!) + f(chw[row + tx.i1[x]!]! * tx.l1[x]!));
    }
    for (let y = 0; y < rows; y++) {
      const a = slot[ty.i0[y]!]! * dstW, b = slot[ty.i1[y]!]! * dstW, h0 = ty.l0[y]!, h1 = ty.l1[y]!;
      for (let x = 0; x < dstW; x++) line[x] = f(hz[a + x]! * h0) + f(hz[b + x]! * h1);
      sink(c, y, line);
    }
  }
}

/** Source rows [first, last] that output rows [y0, y1) of a torch bilinear resize h -> dstH read. */
export function torchSourceRows(h: number, dstH: number, y0: number, y1: number): [number, number] {
  const first = torchTaps(dstH, h, y0, 1), last = torchTaps(dstH, h, y1 - 1, 1);
  return [first.i0[0]!, last.i1[0]!];
}

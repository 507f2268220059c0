// The official sliding-window inference (spec §6.2, `segm/model/utils.py`): a view smaller than the
// window is first upsampled so its short side equals the window, then cut into window x window
// crops at anchors every `stride` plus a final one at dim - window, the crops' pre-softmax logits are
// summed on a canvas and divided by the per-pixel window count. These steps run on the host
// (torch-exact bilinear from src/data/resize.ts, merging in tight typed-array loops): the ORT graph is
// compiled for one window size, while canvas and view sizes change from image to image. The canvas
// stays at the view's resolution: resizing it to the original image and flipping it back happen in
// bands of output rows (banded.ts), because K x H x W floats of a large original do not fit memory.
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import type { WindowRunner } from '../cts/predictor.js';
import { oracleScores, randomScores } from '../cts/policies.js';
import { resizeBilinearTorch, resizeNearest } from '../data/resize.js';

/** A float image (or logit map) in CHW layout. */
export interface FloatImage {
  channels: number;
  height: number;
  width: number;
  /** channels * height * width values, row-major per channel. */
  data: Float32Array;
}

/**
 * Bilinear resize of a CHW float image to outH x outW as torch's F.interpolate(mode='bilinear',
 * align_corners=False): half-pixel centres, border clamp, no antialias, float32 arithmetic (the
 * formula of `interpMatrix` in src/graph/ops/nn.ts). Always returns a new array (callers flip in place).
 */
export function resizeBilinear(img: FloatImage, outH: number, outW: number): FloatImage {
  const { channels: C, height: H, width: W, data } = img;
  if (!(Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0)) throw new CtsError(`cannot resize to ${outH}x${outW}`);
  if (outH === H && outW === W) return { channels: C, height: H, width: W, data: data.slice() };
  return { channels: C, height: outH, width: outW, data: resizeBilinearTorch(data, C, H, W, outH, outW) };
}

/** Mirrors every row in place (horizontal flip) of a [planes, h, w] array. */
export function flipRows<T extends Float32Array | Uint8Array>(data: T, planes: number, h: number, w: number): T {
  for (let r = 0; r < planes * h; r++) data.subarray(r * w, (r + 1) * w).reverse();
  return data;
}

/**
 * Window anchors along one axis (spec §6.2): 0, stride, 2*stride, ... while < dim - window, then
 * dim - window. Needs dim >= window (views are upsampled first).
 */
export function windowAnchors(dim: number, window: number, stride: number): number[] {
  if (dim < window) throw new CtsError(`a ${dim}px side is smaller than the ${window}px window; upsample the view first`);
  if (!(Number.isInteger(stride) && stride > 0)) throw new CtsError(`window stride must be a positive integer, got ${stride}`);
  const out: number[] = [];
  for (let a = 0; a < dim - window; a += stride) out.push(a);
  out.push(dim - window);
  return out;
}

/**
 * Size of a view after step 1 of §6.2: when the short side is below the window, the short side
 * becomes the window and the long side int(ratio * window); otherwise unchanged. For a non-square
 * window (never used by the paper) the smallest keep-ratio upscale that fits the window is used.
 */
export function upsampledSize(h: number, w: number, window: [number, number]): [number, number] {
  const [wh, ww] = window;
  if (wh === ww) {
    if (Math.min(h, w) >= wh) return [h, w];
    return h < w ? [wh, Math.floor((w / h) * wh)] : [Math.floor((h / w) * wh), wh];
  }
  if (h >= wh && w >= ww) return [h, w];
  const f = Math.max(wh / h, ww / w);
  return [Math.max(wh, Math.floor(h * f)), Math.max(ww, Math.floor(w * f))];
}

/** How windows get share scores when the predictor's policy needs them. */
export type ScoreSource =
  /** Oracle: uniform 32x32 label blocks of the (resized, flipped) view's label map [h*w]. */
  | { kind: 'oracle'; label: Uint8Array }
  /** Random: seeded uniform scores, seed + window index for each window. */
  | { kind: 'random'; seed: number };

/** Options of slidingLogits. */
export interface SlidingOptions {
  /** Anchor spacing (spec §6.2); must not exceed the window so every pixel is covered. */
  stride: number;
  /** The view was flipped horizontally; passed through to the result for mapping back (banded.ts). */
  flip?: boolean;
  /** Share scores for oracle/random policies (ignored otherwise). */
  scores?: ScoreSource;
  /** Also return, per output pixel, the fraction of covering windows in which it was in a shared superpatch. */
  sharedFraction?: boolean;
}

/** Result of slidingLogits. */
export interface SlidingResult {
  /**
   * Merged pre-softmax logits [K, h, w] at the sliding resolution: the view's size after the short-side
   * upsample (upsampledSize), still mirrored when the view was. mergeViews (banded.ts) maps them back.
   */
  logits: FloatImage;
  /** The view was mirrored (the `flip` option): the logits must be flipped back after resizing. */
  flip: boolean;
  /** Windows run. */
  windows: number;
  /** [h*w] in [0,1], at the same resolution and orientation as `logits`, when requested and the model shares tokens. */
  sharedFraction?: Float32Array;
}

/**
 * Runs one view (normalised CHW, already resized and flipped) through the model window by window,
 * `predictor.batch` windows per call, and merges the logits on a canvas of the upsampled view size
 * (spec §6.2 steps 1-3). The resize to the original image, the flip back and the softmax are left
 * to mergeViews (banded.ts), which does them in bounded memory and averages views as probabilities.
 */
export async function slidingLogits(predictor: WindowRunner, view: FloatImage, o: SlidingOptions): Promise<SlidingResult> {
  const [wh, ww] = predictor.crop;
  if (o.stride > Math.min(wh, ww)) throw new CtsError(`window stride ${o.stride} exceeds the ${wh}x${ww} window; pixels between windows would get no prediction`);
  if (view.channels !== 3) throw new CtsError(`sliding window expects a 3-channel image, got ${view.channels}`);
  let label = o.scores?.kind === 'oracle' ? o.scores.label : undefined;
  if (label && label.length !== view.height * view.width) throw new CtsError(`oracle label has ${label.length} pixels, view is ${view.height}x${view.width}`);
  const [H, W] = upsampledSize(view.height, view.width, [wh, ww]);
  if (H !== view.height || W !== view.width) {
    if (label) label = resizeNearest({ width: view.width, height: view.height, data: label }, W, H, 'torch').data;
    view = resizeBilinear(view, H, W);
  }
  const hs = windowAnchors(H, wh, o.stride), ws = windowAnchors(W, ww, o.stride);
  const anchors = hs.flatMap((a) => ws.map((b) => [a, b] as [number, number]));
  // never more windows per call than the view has: a huge batch option must not size the buffers
  const K = predictor.numClasses, B = Math.max(1, Math.min(predictor.batch, anchors.length)), plane = wh * ww;
  const canvas = new Float32Array(K * H * W);
  const count = new Uint32Array(H * W);
  const wantShared = !!o.sharedFraction && predictor.budget.numShared > 0;
  const shared = wantShared ? new Float32Array(H * W) : undefined;
  const input = new Float32Array(B * 3 * plane);
  const labels = label ? new Uint8Array(B * plane) : undefined;
  for (let start = 0; start < anchors.length; start += B) {
    const batch = anchors.slice(start, start + B);
    batch.forEach(([ay, ax], i) => {
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < wh; y++) {
          const s = c * H * W + (ay + y) * W + ax;
          input.set(view.data.subarray(s, s + ww), (i * 3 + c) * plane + y * ww);
        }
      }
      if (labels) for (let y = 0; y < wh; y++) labels.set(label!.subarray((ay + y) * W + ax, (ay + y) * W + ax + ww), i * plane + y * ww);
    });
    const b = batch.length;
    const x: HostTensor = { dtype: 'float32', shape: [b, 3, wh, ww], data: input.subarray(0, b * 3 * plane) };
    let scores: HostTensor | undefined;
    if (predictor.needsScores) {
      if (!o.scores) throw new CtsError(`the ${predictor.policy} policy needs share scores: give ground-truth labels (oracle) or a seed (random)`);
      const sp = predictor.budget.sh * predictor.budget.sw;
      const src = o.scores;
      if (src.kind === 'oracle') scores = oracleScores({ dtype: 'uint8', shape: [b, wh, ww], data: labels!.subarray(0, b * plane) });
      else {
        // one seed per window so a window's scores do not depend on the batch it landed in
        const data = new Float32Array(b * sp);
        for (let i = 0; i < b; i++) data.set(randomScores(1, sp, src.seed + start + i).data as Float32Array, i * sp);
        scores = { dtype: 'float32', shape: [b, sp], data };
      }
    }
    const res = await predictor.run(x, scores);
    const logits = res.logits.data as Float32Array;
    if (anchors.length === 1) {
      // one window covers the view: its logits are the merged canvas (a sum over one window, divided by 1)
      if (shared && res.maskShared) {
        addSharedMask(shared, W, 0, 0, res.maskShared, 0, predictor);
      }
      return { logits: { channels: K, height: H, width: W, data: logits.subarray(0, K * plane) }, flip: !!o.flip, windows: 1, ...(shared ? { sharedFraction: shared } : {}) };
    }
    batch.forEach(([ay, ax], i) => {
      for (let k = 0; k < K; k++) addWindow(canvas, k * H * W + ay * W + ax, W, logits, (i * K + k) * plane, wh, ww);
      for (let y = 0; y < wh; y++) {
        const r = (ay + y) * W + ax;
        for (let xx = 0; xx < ww; xx++) count[r + xx]! += 1;
      }
      if (shared && res.maskShared) addSharedMask(shared, W, ay, ax, res.maskShared, i, predictor);
    });
  }
  for (let k = 0; k < K; k++) divideBy(canvas.subarray(k * H * W, (k + 1) * H * W), count);
  if (shared) for (let p = 0; p < H * W; p++) shared[p]! /= count[p]!;
  return { logits: { channels: K, height: H, width: W, data: canvas }, flip: !!o.flip, windows: anchors.length, ...(shared ? { sharedFraction: shared } : {}) };
}

/**
 * Adds one window plane (rows of `ww` at `src`) into the canvas at `dst` with row pitch W. Kept as a
 * small monomorphic function over Float32Arrays: inlined into the sliding loop, V8 ran this ~10x slower.
 */
function addWindow(canvas: Float32Array, dst: number, W: number, logits: Float32Array, src: number, wh: number, ww: number): void {
  for (let y = 0; y < wh; y++) {
    const c = dst + y * W, l = src + y * ww;
    for (let x = 0; x < ww; x++) canvas[c + x]! += logits[l + x]!;
  }
}

/** Divides a canvas plane by the per-pixel window count (a division, not a reciprocal product, to stay bit-identical). */
function divideBy(plane: Float32Array, count: Uint32Array): void {
  for (let p = 0; p < plane.length; p++) plane[p]! /= count[p]!;
}

/** Adds 1 to every canvas pixel of window i that lies in a shared superpatch. */
export function addSharedMask(shared: Float32Array, W: number, ay: number, ax: number, mask: HostTensor, i: number, p: WindowRunner): void {
  const { sh, sw } = p.budget;
  const [wh, ww] = p.crop;
  const bh = wh / sh, bw = ww / sw;
  const m = mask.data as Uint8Array;
  for (let y = 0; y < wh; y++) {
    const row = (ay + y) * W + ax, mr = i * sh * sw + Math.floor(y / bh) * sw;
    for (let x = 0; x < ww; x++) if (m[mr + Math.floor(x / bw)]) shared[row + x]! += 1;
  }
}

/**
 * Softmax over the channel axis of [K, n] logits, added into `acc` (K*n); channel-major loops
 * keep memory access sequential.
 */
export function addSoftmax(logits: Float32Array, K: number, n: number, acc: Float32Array): void {
  const mx = new Float32Array(n).fill(-Infinity), sum = new Float32Array(n);
  for (let k = 0; k < K; k++) {
    const b = k * n;
    for (let p = 0; p < n; p++) if (logits[b + p]! > mx[p]!) mx[p] = logits[b + p]!;
  }
  const e = new Float32Array(K * n);
  for (let k = 0; k < K; k++) {
    const b = k * n;
    for (let p = 0; p < n; p++) {
      const v = Math.exp(logits[b + p]! - mx[p]!);
      e[b + p] = v;
      sum[p]! += v;
    }
  }
  for (let k = 0; k < K; k++) {
    const b = k * n;
    for (let p = 0; p < n; p++) acc[b + p]! += e[b + p]! / sum[p]!;
  }
}

/** Argmax over the channel axis of [K, n] scores (first index wins ties, as torch). */
export function argmaxChannels(scores: Float32Array, K: number, n: number): Uint8Array {
  if (K > 255) throw new CtsError(`${K} classes do not fit an 8-bit class map (at most 255)`);
  const best = scores.slice(0, n), out = new Uint8Array(n);
  for (let k = 1; k < K; k++) {
    const b = k * n;
    for (let p = 0; p < n; p++) {
      if (scores[b + p]! > best[p]!) {
        best[p] = scores[b + p]!;
        out[p] = k;
      }
    }
  }
  return out;
}

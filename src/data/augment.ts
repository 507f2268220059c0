// Training-time augmentation with the official semantics (spec §5.3: mmseg 0.14 / mmcv 1.3.8 with
// OpenCV), the evaluation pre-processing (§6.1) and the policy-net pipeline (§2.3, torchvision).
// Every random choice comes from the caller's seeded Rng, drawn in the order of the original code
// (numpy's draws map to rng.uniform(): randint(0, n) = floor(u n), uniform(a, b) = a + (b - a) u).
import { CtsError } from '../base/errors.js';
import type { Rng } from '../base/rng.js';
import { PHOTOMETRIC_DEFAULTS, photometricDistortion, type PhotometricOptions } from './photometric.js';
import { resizeBilinear, resizeBilinearTorch, resizeNearest, type Window } from './resize.js';
import { IGNORE_INDEX, type EvalProtocol, type LabelMap, type RGBImage } from './types.js';

/** Datasets with a built-in recipe. */
export type AugmentDataset = 'ade20k' | 'pcontext' | 'cityscapes' | 'camvid';

/** Per-channel normalisation x -> (x - mean) / std, applied to RGB. */
export interface Normalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/** The model's normalisation (ViT AugReg weights): mean = std = 127.5, so values lie in [-1, 1]. */
export const DEFAULT_NORMALIZATION: Readonly<Normalization> = Object.freeze({ mean: [127.5, 127.5, 127.5] as [number, number, number], std: [127.5, 127.5, 127.5] as [number, number, number] });

/** Options of the training pipeline (mmseg's Resize, RandomCrop, RandomFlip, PhotoMetricDistortion, Normalize, Pad). */
export interface TrainAugmentOptions {
  /** mmseg img_scale (long-side cap, short-side base) before the ratio: (max_ratio * im_size, im_size). */
  imgScale: [number, number];
  /** Range of the random scale ratio r; default [0.5, 2.0]. */
  ratioRange: [number, number];
  /** Output size [height, width]; crops are padded up to it. */
  cropSize: [number, number];
  /** RandomCrop retries crops where one class covers >= this share of the valid pixels; 1 disables. Default 0.75. */
  catMaxRatio: number;
  /** Probability of a horizontal flip; default 0.5. */
  flipProb: number;
  /** PhotoMetricDistortion parameters, or null to skip it. */
  photometric: PhotometricOptions | null;
  normalization: Normalization;
  /** Label value ignored by the crop statistics and used for padding; default 255. */
  ignoreIndex: number;
}

const base = (imgScale: [number, number], crop: number): TrainAugmentOptions => ({
  imgScale,
  ratioRange: [0.5, 2.0],
  cropSize: [crop, crop],
  catMaxRatio: 0.75,
  flipProb: 0.5,
  photometric: { ...PHOTOMETRIC_DEFAULTS },
  normalization: DEFAULT_NORMALIZATION,
  ignoreIndex: IGNORE_INDEX,
});

/**
 * Built-in recipes (spec §5.2): ADE20K img_scale (2048, 512) crop 512; Pascal-Context (4160, 520) crop 480;
 * Cityscapes (2048, 1024) crop 768. CamVid (not in the paper, our choice): img_scale (480, 360), i.e. the
 * 480x360 frames are scaled by exactly r in [0.5, 2), and crop 352, the largest multiple of the 32-pixel
 * superpatch that fits the native 360-pixel height.
 */
export const TRAIN_AUGMENT: Readonly<Record<AugmentDataset, TrainAugmentOptions>> = Object.freeze({
  ade20k: base([2048, 512], 512),
  pcontext: base([4160, 520], 480),
  cityscapes: base([2048, 1024], 768),
  camvid: base([480, 360], 352),
});

/** The recipe of a dataset with overrides; unknown datasets need `imgScale` and `cropSize` in the overrides. */
export function trainAugmentOptions(dataset: string, overrides: Partial<TrainAugmentOptions> = {}): TrainAugmentOptions {
  const known = (TRAIN_AUGMENT as Record<string, TrainAugmentOptions>)[dataset];
  if (!known && (!overrides.imgScale || !overrides.cropSize))
    throw new CtsError(`no augmentation recipe for dataset "${dataset}": expected one of ${Object.keys(TRAIN_AUGMENT).join(', ')}, or imgScale and cropSize given explicitly`);
  return { ...(known ?? base(overrides.imgScale!, overrides.cropSize![0])), ...overrides };
}

/** An augmented sample: normalised CHW float32 image and its label map, both height x width. */
export interface AugmentedSample {
  image: Float32Array;
  label: Uint8Array;
  height: number;
  width: number;
}

/** mmcv rescale_size: keep-ratio size fitting `scale` (either order), new side = int(side * f + 0.5). */
export function rescaleSize(width: number, height: number, scale: [number, number]): [number, number] {
  const f = Math.min(Math.max(...scale) / Math.max(width, height), Math.min(...scale) / Math.min(width, height));
  // cv2 rejects empty outputs; mmseg never gets there with real images, so a 1-pixel floor is safe.
  return [Math.max(1, Math.floor(width * f + 0.5)), Math.max(1, Math.floor(height * f + 0.5))];
}

/** mmseg Resize.random_sample_ratio: r ~ U[lo, hi), target scale (int(L * r), int(S * r)). */
export function sampleRatioScale(imgScale: [number, number], ratioRange: [number, number], rng: Rng): [number, number] {
  const r = ratioRange[0] + rng.uniform() * (ratioRange[1] - ratioRange[0]);
  return [Math.floor(imgScale[0] * r), Math.floor(imgScale[1] * r)];
}

/** A crop rectangle of a label/image grid. */
export type CropBox = Window;

function drawCrop(w: number, h: number, cropH: number, cropW: number, rng: Rng): CropBox {
  const y = Math.floor(rng.uniform() * (Math.max(h - cropH, 0) + 1));
  const x = Math.floor(rng.uniform() * (Math.max(w - cropW, 0) + 1));
  return { x, y, width: Math.min(cropW, w), height: Math.min(cropH, h) };
}

/** True when the crop has >= 2 classes (ignoring `ignore`) and the largest covers < catMaxRatio of them. */
export function cropIsBalanced(label: LabelMap, box: CropBox, catMaxRatio: number, ignore: number): boolean {
  const counts = new Uint32Array(256);
  for (let y = box.y; y < box.y + box.height; y++) {
    const row = y * label.width;
    for (let x = box.x; x < box.x + box.width; x++) counts[label.data[row + x]!]!++;
  }
  counts[ignore] = 0;
  let classes = 0, max = 0, sum = 0;
  for (const c of counts) {
    if (c === 0) continue;
    classes++;
    sum += c;
    max = Math.max(max, c);
  }
  return classes > 1 && max / sum < catMaxRatio;
}

/** Number of balance checks of mmseg's RandomCrop before it takes a crop unchecked. */
export const CAT_MAX_TRIES = 10;

/**
 * mmseg RandomCrop.get_crop_bbox plus its cat_max_ratio loop: draw a crop (offset_h, then offset_w, uniform
 * integers in [0, max(dim - crop, 0)]); up to 10 times, keep it if balanced, else draw again. As in mmseg,
 * after 10 unbalanced crops the 11th draw is used without a check. Images smaller than the crop give a
 * smaller box (padded later).
 */
export function randomCropBox(label: LabelMap, cropH: number, cropW: number, catMaxRatio: number, rng: Rng, ignore = IGNORE_INDEX): CropBox {
  let box = drawCrop(label.width, label.height, cropH, cropW, rng);
  if (catMaxRatio < 1) {
    for (let t = 0; t < CAT_MAX_TRIES; t++) {
      if (cropIsBalanced(label, box, catMaxRatio, ignore)) break;
      box = drawCrop(label.width, label.height, cropH, cropW, rng);
    }
  }
  return box;
}

/** Copies a rectangle of a label map. */
export function cropLabel(label: LabelMap, box: CropBox): LabelMap {
  const out = new Uint8Array(box.width * box.height);
  for (let y = 0; y < box.height; y++) {
    const s = (box.y + y) * label.width + box.x;
    out.set(label.data.subarray(s, s + box.width), y * box.width);
  }
  return { width: box.width, height: box.height, data: out };
}

/** Mirrors an interleaved image (channels = 3) or a label map (channels = 1) left-right in place. */
export function flipHorizontal(data: Uint8Array, width: number, height: number, channels: 1 | 3): void {
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let a = 0, b = width - 1; a < b; a++, b--) {
      for (let c = 0; c < channels; c++) {
        const i = row + a * channels + c, j = row + b * channels + c;
        const t = data[i]!;
        data[i] = data[j]!;
        data[j] = t;
      }
    }
  }
}

/**
 * mmcv imnormalize into a CHW float32 array of outH x outW, the image at the top left and 0 elsewhere
 * (mmseg Pad after Normalize). Arithmetic as measured on cv2 4.6: cv2.subtract rounds the mean to float32
 * and subtracts in float32; cv2.multiply by the float64 1/std multiplies in float64, then rounds to float32.
 */
export function normalizeToCHW(img: RGBImage, norm: Normalization = DEFAULT_NORMALIZATION, outH = img.height, outW = img.width): Float32Array {
  const out = new Float32Array(3 * outH * outW);
  const plane = outH * outW;
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(norm.mean[c]!), inv = 1 / norm.std[c]!;
    for (let y = 0; y < img.height; y++) {
      const src = y * img.width * 3 + c, dst = c * plane + y * outW;
      // The Float32Array store is the final float64 -> float32 rounding.
      for (let x = 0; x < img.width; x++) out[dst + x] = Math.fround(img.data[src + 3 * x]! - mean) * inv;
    }
  }
  return out;
}

/** Pads a label map to outH x outW at the bottom/right with `fill` (255: ignored by the loss). */
export function padLabel(label: LabelMap, outH: number, outW: number, fill = IGNORE_INDEX): Uint8Array {
  if (label.width === outW && label.height === outH) return label.data;
  const out = new Uint8Array(outH * outW).fill(fill);
  for (let y = 0; y < label.height; y++) out.set(label.data.subarray(y * label.width, (y + 1) * label.width), y * outW);
  return out;
}

function checkPair(img: RGBImage, label: LabelMap): void {
  if (img.width !== label.width || img.height !== label.height)
    throw new CtsError(`label is ${label.width}x${label.height} but its image is ${img.width}x${img.height}; expected the same size`);
}

/**
 * The training pipeline of spec §5.3 on an 8-bit RGB image and its label map (0..K-1, 255 ignore):
 * ratio-range keep-ratio resize (image cv2 bilinear, label nearest), RandomCrop with cat_max_ratio,
 * horizontal flip, PhotoMetricDistortion, normalisation, padding to the crop (image 0, label 255).
 * Draws: ratio, crop offsets (per try), flip, photometric. The result is always cropSize.
 */
export function augmentTrain(img: RGBImage, label: LabelMap, opts: TrainAugmentOptions, rng: Rng): AugmentedSample {
  checkPair(img, label);
  const [cropH, cropW] = opts.cropSize;
  const [nw, nh] = rescaleSize(img.width, img.height, sampleRatioScale(opts.imgScale, opts.ratioRange, rng));
  const big = resizeNearest(label, nw, nh);
  const box = randomCropBox(big, cropH, cropW, opts.catMaxRatio, rng, opts.ignoreIndex);
  // Only the crop of the resized image is computed: identical to resizing everything, then cropping.
  const im = resizeBilinear(img, nw, nh, box);
  const lb = cropLabel(big, box);
  if (rng.uniform() < opts.flipProb) {
    flipHorizontal(im.data, im.width, im.height, 3);
    flipHorizontal(lb.data, lb.width, lb.height, 1);
  }
  if (opts.photometric) photometricDistortion(im, rng, opts.photometric);
  return { image: normalizeToCHW(im, opts.normalization, cropH, cropW), label: padLabel(lb, cropH, cropW, opts.ignoreIndex), height: cropH, width: cropW };
}

/**
 * Evaluation pre-processing (spec §6.1): keep-ratio resize so the short side is `resizeShort` with the long
 * side capped at `maxLong` (cv2 bilinear, as in training), then normalisation; no padding.
 */
export function preprocessEval(img: RGBImage, protocol: EvalProtocol, norm: Normalization = DEFAULT_NORMALIZATION): { image: Float32Array; height: number; width: number } {
  let im = img;
  if (protocol.resizeShort !== undefined) {
    const [w, h] = rescaleSize(img.width, img.height, [protocol.resizeShort, protocol.maxLong ?? Infinity]);
    im = resizeBilinear(img, w, h);
  }
  return { image: normalizeToCHW(im, norm), height: im.height, width: im.width };
}

/** Output side of the policy-net pipeline per dataset (square). */
export const POLICY_CROP: Readonly<Record<AugmentDataset, number>> = Object.freeze({ ade20k: 512, pcontext: 480, cityscapes: 768, camvid: 352 });

function torchNormalize(img: RGBImage): Float32Array {
  // (x - 127.5) / 127.5 in float32 as PyTorch's tensor ops: a true division, not cv2's reciprocal product.
  const plane = img.width * img.height, out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = (img.data[3 * i + c]! - 127.5) / 127.5;
  return out;
}

function cropCHW(x: Float32Array, h: number, w: number, top: number, left: number, size: number): Float32Array {
  const out = new Float32Array(3 * size * size);
  const rows = Math.min(size, h - top), cols = Math.min(size, w - left);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < rows; y++) out.set(x.subarray(c * h * w + (top + y) * w + left, c * h * w + (top + y) * w + left + cols), c * size * size + y * size);
  return out;
}

/**
 * Policy-net training pipeline (spec §2.3; no photometric, no scale jitter), on the normalised float image:
 * ADE20K: resize to 512x512 (ratio not kept); Pascal-Context: short side 512 (long = int(512 * long / short)),
 * random 480 crop; Cityscapes: random 768 crop; CamVid (our choice): random 352 crop of the native frame.
 * Crop offsets are int(u * (dim - crop)) (top, then left), then a flip when u > 0.5, as the official code.
 * Deviation: an image smaller than the crop is padded at the bottom/right (image 0, label 255) where
 * torchvision's crop would pad with 0 on both (turning label padding into class 0).
 */
export function augmentPolicy(img: RGBImage, label: LabelMap, dataset: AugmentDataset, rng: Rng): AugmentedSample {
  checkPair(img, label);
  let x = torchNormalize(img), lb: LabelMap = label, h = img.height, w = img.width;
  const resize = (nh: number, nw: number) => {
    x = resizeBilinearTorch(x, 3, h, w, nh, nw);
    lb = resizeNearest(lb, nw, nh, 'torch');
    (h = nh), (w = nw);
  };
  if (dataset === 'ade20k') resize(512, 512);
  else if (dataset === 'pcontext') {
    const short = Math.min(h, w), long = Math.max(h, w), nl = Math.floor((512 * long) / short);
    if (w <= h) resize(nl, 512);
    else resize(512, nl);
  } else if (!(dataset in POLICY_CROP)) throw new CtsError(`no policy-net pipeline for dataset "${dataset}": expected one of ${Object.keys(POLICY_CROP).join(', ')}`);
  const size = POLICY_CROP[dataset];
  if (dataset !== 'ade20k') {
    const top = Math.floor(rng.uniform() * Math.max(h - size, 0));
    const left = Math.floor(rng.uniform() * Math.max(w - size, 0));
    x = cropCHW(x, h, w, top, left, size);
    const box = { x: left, y: top, width: Math.min(size, w), height: Math.min(size, h) };
    lb = { width: size, height: size, data: padLabel(cropLabel(lb, box), size, size) };
    h = w = size;
  }
  const label8 = Uint8Array.from(lb.data);
  if (rng.uniform() > 0.5) {
    for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) x.subarray(c * h * w + y * w, c * h * w + (y + 1) * w).reverse();
    flipHorizontal(label8, w, h, 1);
  }
  return { image: x, label: label8, height: h, width: w };
}

// Whole-image prediction and dataset evaluation with the official protocol: the validation resize
// (spec §6.1), single- or multi-scale + flip views (§6.3), sliding windows per view (§6.2), softmax
// averaged over views, argmax, and a dataset-accumulated confusion matrix (§6.4). Per-pixel floats exist
// only at view resolution (views are resized on the 8-bit image before normalising); the logits are
// mapped back to the original size in bands (banded.ts), so a large original costs its RGB bytes.
import { CtsError } from '../base/errors.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import type { PolicyMethod } from '../cts/spec.js';
import type { Provider } from '../runtime/session.js';
import { Predictor, predictorSharing, type WindowRunner } from '../cts/predictor.js';
import type { EvalProtocol, LabelMap, RGBImage, SegDataset } from '../data/types.js';
import { ConfusionMatrix } from './metrics.js';
import { resizeBilinear as resizeImageCv2, resizeNearest } from '../data/resize.js';
import { addSharedMask, flipRows, slidingLogits, type FloatImage, type ScoreSource } from './sliding.js';
import { ViewMerger } from './banded.js';

/** Scale ratios of the multi-scale protocol (spec §6.3). */
export const MULTISCALE_RATIOS: readonly number[] = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75];

/** Options of createPredictor: overrides of the checkpoint's CTS settings and the runtime. */
export interface EvalPredictorOptions {
  policy?: PolicyMethod;
  numShared?: number;
  /** Windows per model call. */
  windowBatch?: number;
  provider?: Provider;
}

/**
 * Compiles the checkpoint once at its crop for sliding-window use. A sharing policy that ends up
 * with no shared superpatch (e.g. --policy oracle on a checkpoint stored without a budget) is an
 * error rather than a silent no-sharing run.
 */
export async function createPredictor(ckpt: ModelCheckpoint, o: EvalPredictorOptions = {}): Promise<Predictor> {
  return Predictor.create(ckpt, { sharing: predictorSharing(ckpt, o), batch: o.windowBatch ?? 4, ...(o.provider ? { provider: o.provider } : {}) });
}

/** One augmented view of an image: its size before the sliding window and whether it is mirrored. */
export interface ViewSpec {
  ratio: number;
  height: number;
  width: number;
  flip: boolean;
}

/**
 * mmcv's keep-ratio rescale: factor f = min(long/max(h,w), short/min(h,w)) for a (long, short)
 * scale, new size (int(h*f + 0.5), int(w*f + 0.5)). Returns [height, width].
 */
export function keepRatioSize(h: number, w: number, scale: [number, number]): [number, number] {
  const f = Math.min(scale[0] / Math.max(h, w), scale[1] / Math.min(h, w));
  return [Math.floor(h * f + 0.5), Math.floor(w * f + 0.5)];
}

/**
 * The views of an h x w image (spec §6.1/§6.3): with a dataset resize (resizeShort, maxLong) each
 * ratio r scales img_scale to (int(maxLong*r), int(resizeShort*r)) and applies the keep-ratio rule;
 * without one (img_scale None in mmseg) the image itself is scaled by r. Single scale is ratio 1
 * without flip (with `flip`, also its mirror image, as the official `inference` with a flipped copy);
 * multi-scale is every ratio, unflipped then flipped. Views whose short side ends up
 * below the window are upsampled later by the sliding window (the faithful < 1 ratio quirk).
 */
export function evalViews(h: number, w: number, protocol: Pick<EvalProtocol, 'resizeShort' | 'maxLong'>, multiscale: boolean, flip = false): ViewSpec[] {
  const ratios = multiscale ? MULTISCALE_RATIOS : [1];
  const flips = multiscale || flip ? [false, true] : [false];
  const views: ViewSpec[] = [];
  for (const r of ratios) {
    let size: [number, number];
    if (protocol.resizeShort) {
      const long = protocol.maxLong ?? Infinity;
      size = keepRatioSize(h, w, [Number.isFinite(long) ? Math.floor(long * r) : Infinity, Math.floor(protocol.resizeShort * r)]);
    } else {
      size = [Math.floor(h * r + 0.5), Math.floor(w * r + 0.5)];
    }
    for (const flip of flips) views.push({ ratio: r, height: size[0], width: size[1], flip });
  }
  return views;
}

/** An 8-bit RGB image as normalised float CHW: (x - mean) / std per channel. */
export function normalizeImage(img: RGBImage, norm: ModelCheckpoint['normalization']): FloatImage {
  const n = img.width * img.height, out = new Float32Array(3 * n), src = img.data;
  for (let c = 0; c < 3; c++) {
    const m = norm.mean[c]!, s = 1 / norm.std[c]!, b = c * n;
    for (let p = 0; p < n; p++) out[b + p] = (src[p * 3 + c]! - m) * s;
  }
  return { channels: 3, height: img.height, width: img.width, data: out };
}

/**
 * How an image is run: 'sliding' is the official protocol (views at the dataset size, sliding windows);
 * 'single' squeezes the whole image (cv2 bilinear on the 8-bit image, aspect ratio not kept) to exactly
 * the window size and runs that one window, a fast approximation for large photos.
 */
export type PredictMode = 'sliding' | 'single';

/** Options of predictImage. */
export interface PredictOptions {
  /** Window stride (spec §6.2); unused in 'single' mode. */
  stride: number;
  normalization: ModelCheckpoint['normalization'];
  /**
   * Dataset resize rule (empty = use the image as is: the image is then slid at its own size, and the
   * merged logits cost K x H x W floats of it; give a rule or mode 'single' for large photos).
   */
  protocol?: Pick<EvalProtocol, 'resizeShort' | 'maxLong'>;
  multiscale?: boolean;
  /** Also run the mirrored image and average the two views' probabilities (single scale). */
  flip?: boolean;
  /** Ground truth at original size, for the oracle policy. */
  label?: LabelMap;
  /** Base seed of the random policy (each view and window derives its own). */
  seed?: number;
  /** Return the per-pixel shared fraction (single-view inference). */
  sharedFraction?: boolean;
  /** Return the class probabilities [K, H, W] (costs K x H x W floats; see MergedPrediction). */
  probabilities?: boolean;
  /** Default 'sliding'; 'single' ignores `protocol` and cannot be combined with `multiscale`. */
  mode?: PredictMode;
}

/** Result of predictImage. */
export interface ImagePrediction {
  /** Class id per pixel at the original size. */
  classes: Uint8Array;
  height: number;
  width: number;
  /** Windows run over all views. */
  windows: number;
  /** Mean over views of the per-pixel shared fraction, when requested and the model shares. */
  sharedFraction?: Float32Array;
  /** [K, H, W] when requested: the softmax for one view, the mean of the views' softmaxes for several. */
  probabilities?: Float32Array;
}

/**
 * Predicts the class map of one image at its original size: every view is resized (cv2 bilinear on
 * the 8-bit image, as mmcv), flipped, normalised, run with sliding windows and merged; the views'
 * softmax maps are averaged (spec §6.2 step 5) and argmaxed, in bands of output rows (banded.ts),
 * so memory stays bounded by the views' logits, not K x H x W of the original.
 */
export async function predictImage(predictor: WindowRunner, img: RGBImage, o: PredictOptions): Promise<ImagePrediction> {
  const H = img.height, W = img.width;
  if (o.label && (o.label.height !== H || o.label.width !== W)) throw new CtsError(`label is ${o.label.width}x${o.label.height}, image ${W}x${H}`);
  const mode = o.mode ?? 'sliding';
  if (mode !== 'sliding' && mode !== 'single') throw new CtsError(`unknown prediction mode '${String(mode)}' (expected sliding or single)`);
  if (mode === 'single' && o.multiscale) throw new CtsError('single-window prediction has one view; it cannot be multi-scale');
  const [wh, ww] = predictor.crop;
  const views = mode === 'single' ? [{ ratio: 1, height: wh, width: ww, flip: false }] : evalViews(H, W, o.protocol ?? {}, !!o.multiscale, !!o.flip);
  // a view of exactly the window size gets one window whatever the stride; this one is always valid
  const stride = mode === 'single' ? Math.min(wh, ww) : o.stride;
  const whole = views.length === 1 ? await pixelsOfWholeWindow(predictor, img, views[0]!, o) : undefined;
  if (whole) return whole;
  const merger = new ViewMerger(H, W, { probabilities: !!o.probabilities });
  let windows = 0;
  for (let v = 0; v < views.length; v++) {
    const view = views[v]!;
    // as mmseg's val pipeline: cv2 INTER_LINEAR on the 8-bit image, flip, then normalise
    const resized = view.height === H && view.width === W ? img : resizeImageCv2(img, view.width, view.height);
    const x = normalizeImage(resized, o.normalization);
    if (view.flip) flipRows(x.data, 3, view.height, view.width);
    let scores: ScoreSource | undefined;
    if (predictor.policy === 'oracle') {
      if (!o.label) throw new CtsError('the oracle policy needs ground-truth labels (evaluate on a labelled split)');
      const l = view.height === H && view.width === W ? o.label.data.slice() : resizeNearest(o.label, view.width, view.height).data;
      scores = { kind: 'oracle', label: view.flip ? flipRows(l, 1, view.height, view.width) : l };
    } else if (predictor.policy === 'random') {
      // views get disjoint seed ranges (no view has 1e5 windows)
      scores = { kind: 'random', seed: (o.seed ?? 0) + v * 100_000 };
    }
    const r = await slidingLogits(predictor, x, { stride, flip: view.flip, sharedFraction: !!o.sharedFraction, ...(scores ? { scores } : {}) });
    windows += r.windows;
    merger.add(r);
  }
  const m = merger.finish();
  return {
    classes: m.classes, height: H, width: W, windows,
    ...(m.sharedFraction ? { sharedFraction: m.sharedFraction } : {}), ...(m.probabilities ? { probabilities: m.probabilities } : {}),
  };
}

/**
 * The one-window case through WindowRunner.runPixels: an image that is exactly the window, unresized
 * and unflipped, without probabilities or share scores, goes in as its 8-bit pixels and comes back as
 * the model's class map; undefined where that does not apply. It equals the sliding path (one window's
 * logits, their argmax, its shared mask as a 0/1 fraction) and spares the host the normalisation and
 * the K x H x W logits (for the shipped web model, ~3 of ~60 ms per image in Chromium).
 */
async function pixelsOfWholeWindow(predictor: WindowRunner, img: RGBImage, view: ViewSpec, o: PredictOptions): Promise<ImagePrediction | undefined> {
  const [wh, ww] = predictor.crop;
  if (!predictor.runPixels || predictor.needsScores || o.probabilities || view.flip) return undefined;
  if (view.height !== img.height || view.width !== img.width || img.height !== wh || img.width !== ww) return undefined;
  const r = await predictor.runPixels(img.data);
  let sharedFraction: Float32Array | undefined;
  if (o.sharedFraction && predictor.budget.numShared > 0 && r.maskShared) {
    sharedFraction = new Float32Array(wh * ww);
    addSharedMask(sharedFraction, ww, 0, 0, r.maskShared, 0, predictor);
  }
  return { classes: r.classMap, height: wh, width: ww, windows: 1, ...(sharedFraction ? { sharedFraction } : {}) };
}

/** Options of ImagePredictor.predict: the protocol of one image (the dataset's, or the model's own). */
export interface ImagePredictOptions {
  /** Dataset resize rule (empty = use the image as is). */
  protocol?: Pick<EvalProtocol, 'resizeShort' | 'maxLong'>;
  multiscale?: boolean;
  /** Also run the mirrored image and average the two views' probabilities (single scale). */
  flip?: boolean;
  /** Ground truth at the image's size, for the oracle policy. */
  label?: LabelMap;
  /** Sliding-window stride (default: the predictor's). */
  windowStride?: number;
  /** Base seed of the random policy. */
  seed?: number;
  sharedFraction?: boolean;
  probabilities?: boolean;
  mode?: PredictMode;
}

/**
 * Predicts one decoded image under an explicit protocol. The Segmenter API implements it (so `eval`
 * goes through the same object as `infer` and the web page); runnerPredictor adapts a bare WindowRunner.
 */
export interface ImagePredictor {
  predict(img: RGBImage, o: ImagePredictOptions): Promise<ImagePrediction>;
}

/** An ImagePredictor over a WindowRunner with the model's normalisation and a default stride (the window). */
export function runnerPredictor(runner: WindowRunner, normalization: ModelCheckpoint['normalization'], stride = Math.min(...runner.crop)): ImagePredictor {
  return {
    predict: (img, o) => predictImage(runner, img, { ...o, stride: o.windowStride ?? stride, normalization }),
  };
}

/** Options of evaluateDataset. */
export interface EvaluateOptions {
  /** Sliding-window stride (default: the predictor's). */
  stride?: number;
  multiscale?: boolean;
  /** Evaluate only the first N samples. */
  limit?: number;
  /** Base seed for the random policy. */
  seed?: number;
  /** Called after every image with its index (1-based count done) and the total. */
  onImage?: (done: number, total: number, id: string) => void;
}

/** Result of evaluateDataset. */
export interface EvaluationResult {
  confusion: ConfusionMatrix;
  images: number;
  windows: number;
  /** Wall time of the loop in seconds (reading, inference, merging, scoring). */
  seconds: number;
}

/**
 * Evaluates a predictor on a labelled dataset split with the dataset's protocol. The next sample is
 * decoded while the current one runs, so file decoding overlaps inference.
 */
export async function evaluateDataset(model: ImagePredictor, ds: SegDataset, o: EvaluateOptions = {}): Promise<EvaluationResult> {
  const n = Math.min(ds.samples.length, o.limit ?? Infinity);
  if (n === 0) throw new CtsError(`dataset ${ds.info.name} split ${ds.split} at ${ds.root} has no samples`);
  const confusion = new ConfusionMatrix(ds.info.classes.length);
  const load = (i: number) => Promise.all([ds.readImage(i), ds.readLabel(i)]);
  const t0 = performance.now();
  let windows = 0;
  let next = load(0);
  for (let i = 0; i < n; i++) {
    const [img, label] = await next;
    if (i + 1 < n) {
      next = load(i + 1);
      next.catch(() => undefined); // surfaced when awaited; avoids an unhandled rejection meanwhile
    }
    const id = ds.samples[i]!.id;
    if (label.width !== img.width || label.height !== img.height) {
      throw new CtsError(`${ds.samples[i]!.labelPath ?? id}: label is ${label.width}x${label.height}, image ${img.width}x${img.height}`);
    }
    const pred = await model.predict(img, {
      protocol: ds.info.eval, multiscale: !!o.multiscale, label, seed: (o.seed ?? 0) + i * 10_000_000,
      ...(o.stride !== undefined ? { windowStride: o.stride } : {}),
    });
    windows += pred.windows;
    confusion.update(pred.classes, label.data, ds.samples[i]!.labelPath ?? id);
    o.onImage?.(i + 1, n, id);
  }
  return { confusion, images: n, windows, seconds: (performance.now() - t0) / 1000 };
}

// The Segmenter API: load a model, segment images. One class for Node and the browser: the platform
// entry points (`cts-seg`, `cts-seg/web`) register how sources are read and images decoded; below
// that, a checkpoint is compiled here (Predictor) or an export is opened (ExportRunner), and both go
// through the same sliding window, banded resize and visualisation as `infer` and `eval`.
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { parseCheckpoint, type ModelCheckpoint } from '../cts/checkpoint.js';
import { Predictor, predictorSharing, type Prediction, type WindowRunner } from '../cts/predictor.js';
import type { SharingSpec } from '../cts/spec.js';
import type { TokenBudget } from '../cts/budget.js';
import { DATASETS, isDatasetName } from '../data/catalog.js';
import type { EvalProtocol, RGBImage } from '../data/types.js';
import { evalViews, predictImage, type ImagePrediction, type ImagePredictOptions, type ImagePredictor } from '../eval/evaluate.js';
import { upsampledSize, windowAnchors } from '../eval/sliding.js';
import { colorize, overlay, sharedView } from '../eval/visualize.js';
import { ExportRunner, looksLikeOnnx } from '../export/runner.js';
import { apiPlatform, DEFAULT_MAX_PIXELS, isRawImage, rawToRgb } from './platform.js';
import type { ImageInput, LoadOptions, ModelInfo, ModelSource, SegmentOptions, SegmentResult } from './types.js';
import { PRECISIONS } from '../nn/params.js';

/** Default windows per model call. */
export const DEFAULT_WINDOW_BATCH = 4;

/** Whether bytes start like a safetensors file: an 8-byte little-endian header length, then '{'. */
function looksLikeSafetensors(b: Uint8Array): boolean {
  if (b.length < 10 || b[8] !== 0x7b) return false;
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  return n > 0n && n <= BigInt(b.length - 8);
}

function isCheckpoint(v: unknown): v is ModelCheckpoint {
  return typeof v === 'object' && v !== null && 'weights' in v && 'config' in v && (v as ModelCheckpoint).weights instanceof Map;
}

/** Options of Segmenter.predict (the evaluation path: a dataset's protocol, views and labels). */
export type PredictOptions = ImagePredictOptions;

/** A loaded model that segments images of any size. */
export class Segmenter implements ImagePredictor {
  private readonly runners = new Map<number, Promise<WindowRunner>>();
  private inferenceMs = 0;
  private disposed = false;

  private constructor(
    /** What the model is. */
    readonly info: ModelInfo,
    private readonly normalization: ModelCheckpoint['normalization'],
    /** Token budget of one window. */
    readonly tokenBudget: TokenBudget,
    private readonly protocol: Pick<EvalProtocol, 'resizeShort' | 'maxLong'>,
    private readonly windowBatch: number,
    private readonly maxPixels: number,
    private readonly makeRunner: (batch: number) => Promise<WindowRunner>,
  ) {}

  /**
   * Loads a model: a cts-seg checkpoint (.safetensors) or a cts-seg export (.onnx), given as a path
   * or URL (Node), a URL, Blob or File (browser), bytes, or an already loaded ModelCheckpoint. The
   * format is recognised from the bytes, not the name.
   */
  static async load(source: ModelSource, o: LoadOptions = {}): Promise<Segmenter> {
    checkLoadOptions(o);
    if (isCheckpoint(source)) return Segmenter.fromCheckpoint(source, o);
    const { bytes, name } = await apiPlatform().readModel(source);
    if (looksLikeSafetensors(bytes)) return Segmenter.fromCheckpoint(parseCheckpoint(bytes, name, o.checkWeights === false ? { checkWeights: false } : {}), o);
    if (looksLikeOnnx(bytes)) return Segmenter.fromExport(bytes, name, o);
    throw new CtsError(`${name} is neither a cts-seg checkpoint (.safetensors) nor a cts-seg export (.onnx)`);
  }

  private static async fromCheckpoint(ckpt: ModelCheckpoint, o: LoadOptions): Promise<Segmenter> {
    const size = o.windowSize ?? ckpt.window?.size;
    const window: [number, number] = size ? [size, size] : ckpt.cropSize;
    const sharing: SharingSpec = predictorSharing(ckpt, o, window);
    const make = (batch: number) => Predictor.create(ckpt, {
      sharing, batch, crop: window, precision: o.precision ?? 'fp32', ...(o.maxMemory !== undefined ? { maxMemory: o.maxMemory } : {}), ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}),
      ...(o.onFallback ? { onFallback: o.onFallback } : {}),
    });
    // compile once up front: load() is where errors and the provider fallback message belong
    const first = await make(1);
    const info: ModelInfo = {
      format: 'checkpoint', classes: ckpt.classes, palette: ckpt.palette, window,
      windowStride: Math.min(ckpt.window?.stride ?? defaultStride(ckpt.dataset, window), ...window), policy: sharing.policy, numShared: sharing.numShared,
      precision: o.precision ?? 'fp32', provider: first.provider, ...(ckpt.dataset ? { dataset: ckpt.dataset } : {}),
    };
    const seg = new Segmenter(info, ckpt.normalization, first.budget, defaultProtocol(ckpt.dataset, window), o.windowBatch ?? DEFAULT_WINDOW_BATCH, o.maxPixels ?? DEFAULT_MAX_PIXELS, make);
    seg.runners.set(1, Promise.resolve(first));
    return seg;
  }

  private static async fromExport(bytes: Uint8Array, name: string, o: LoadOptions): Promise<Segmenter> {
    if (o.windowSize !== undefined) throw new CtsError(`${name} is an export with a fixed window; windowSize applies to checkpoints`);
    if (o.numShared !== undefined || o.policy !== undefined) {
      throw new CtsError(`${name} is an export with its sharing built in; numShared and policy apply to checkpoints (re-export with \`cts-seg export --num-shared S\`)`);
    }
    const externalData = o.externalData
      ? await Promise.all(o.externalData.map(async (e) => ({ path: e.path, data: typeof e.data === 'string' ? (await apiPlatform().readModel(e.data)).bytes : e.data })))
      : undefined;
    const windowBatch = o.windowBatch ?? DEFAULT_WINDOW_BATCH;
    const runner = await ExportRunner.open(bytes, name, {
      maxBatch: windowBatch, ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}),
      ...(externalData ? { externalData } : {}), ...(o.onFallback ? { onFallback: o.onFallback } : {}),
    });
    const x = runner.info;
    // an export's arithmetic is fixed when it is written; quantizing it here would need its float weights
    if (o.precision !== undefined && o.precision !== x.precision) {
      throw new CtsError(`${name} was exported at ${x.precision} precision; precision '${o.precision}' applies to checkpoints (re-export with \`cts-seg export --precision ${o.precision}\`)`);
    }
    const info: ModelInfo = {
      format: 'onnx', classes: x.classes, palette: x.palette, window: x.crop, windowStride: defaultStride(x.dataset, x.crop),
      policy: runner.policy, numShared: runner.budget.numShared, precision: x.precision, provider: runner.provider, ...(x.dataset ? { dataset: x.dataset } : {}),
    };
    // one session whatever the batch: a static export pads, a symbolic one takes up to windowBatch
    const shared = Promise.resolve<WindowRunner>(runner);
    return new Segmenter(info, x.normalization, runner.budget, defaultProtocol(x.dataset, x.crop), windowBatch, o.maxPixels ?? DEFAULT_MAX_PIXELS, () => shared);
  }

  /** Segments one image (see SegmentOptions); the class map is at the image's own size. */
  async segment(image: ImageInput, o: SegmentOptions = {}): Promise<SegmentResult> {
    const t0 = now();
    const img = await this.decode(image);
    const tDecoded = now();
    const pred = await this.predict(img, {
      mode: o.mode ?? 'sliding', sharedFraction: true, ...(o.probabilities ? { probabilities: true } : {}), ...(o.flip ? { flip: true } : {}),
      ...(o.windowStride !== undefined ? { windowStride: o.windowStride } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}),
    });
    const inference = this.takeInferenceMs();
    const r = this.result(img, pred, o.pictures === true);
    const total = now() - t0;
    r.timings = { decode: tDecoded - t0, inference, postprocess: total - (tDecoded - t0) - inference, total };
    return r;
  }

  /** Segments several images one after another (each at its own size). */
  async segmentBatch(images: readonly ImageInput[], o: SegmentOptions = {}): Promise<SegmentResult[]> {
    const out: SegmentResult[] = [];
    for (const image of images) out.push(await this.segment(image, o));
    return out;
  }

  /**
   * The evaluation path: one decoded image with an explicit protocol (dataset resize, multi-scale,
   * flip, labels for the oracle policy). `segment` is this with the model's own protocol.
   */
  async predict(img: RGBImage, o: PredictOptions = {}): Promise<ImagePrediction> {
    if (this.disposed) throw new CtsError('this Segmenter has been disposed');
    const [wh, ww] = this.info.window;
    const stride = o.windowStride ?? this.info.windowStride;
    if (!(Number.isInteger(stride) && stride > 0 && stride <= Math.min(wh, ww))) {
      throw new CtsError(`window stride ${stride} must be a positive integer of at most the ${wh}x${ww} window`);
    }
    const protocol = o.protocol ?? this.protocol;
    const runner = await this.runnerFor(o.mode === 'single' ? 1 : maxWindows(img, protocol, !!o.multiscale, [wh, ww], stride));
    const { windowStride: _, ...rest } = o;
    return predictImage(this.timed(runner), img, { ...rest, stride, normalization: this.normalization, protocol });
  }

  /** Frees the model's sessions; the Segmenter cannot be used afterwards. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const runners = [...this.runners.values()];
    this.runners.clear();
    for (const r of new Set(await Promise.all(runners))) await r.release();
  }

  private async decode(image: ImageInput): Promise<RGBImage> {
    if (isRawImage(image)) return rawToRgb(image, this.maxPixels);
    const img = await apiPlatform().decodeImage(image, this.maxPixels);
    if (!img) throw new CtsError(`unsupported image input (${describe(image)}): pass a path, bytes, a decoded image or {data, width, height, channels}`);
    return img;
  }

  private runnerFor(windows: number): Promise<WindowRunner> {
    const batch = Math.max(1, Math.min(this.windowBatch, windows));
    let r = this.runners.get(batch);
    if (!r) {
      r = this.makeRunner(batch);
      this.runners.set(batch, r);
      r.catch(() => this.runners.delete(batch));
    }
    return r;
  }

  /** The runner with its model calls timed (for SegmentResult.timings). */
  private timed(r: WindowRunner): WindowRunner {
    const time = async <T>(call: () => Promise<T>): Promise<T> => {
      const t = now();
      try {
        return await call();
      } finally {
        this.inferenceMs += now() - t;
      }
    };
    const run = (x: HostTensor, scores?: HostTensor): Promise<Prediction> => time(() => r.run(x, scores));
    const pixels = r.runPixels;
    return Object.assign(Object.create(r) as WindowRunner, { run, ...(pixels ? { runPixels: (rgb: Uint8Array) => time(() => pixels(rgb)) } : {}) });
  }

  private takeInferenceMs(): number {
    const t = this.inferenceMs;
    this.inferenceMs = 0;
    return t;
  }

  private result(img: RGBImage, pred: ImagePrediction, pictures: boolean): SegmentResult {
    const { info } = this;
    const fraction = pred.sharedFraction;
    const r: SegmentResult = {
      width: img.width, height: img.height, classMap: pred.classes, classes: info.classes, palette: info.palette,
      tokens: { patches: this.tokenBudget.gh * this.tokenBudget.gw, tokens: this.tokenBudget.numTokens, shared: this.tokenBudget.numShared, windows: pred.windows },
      timings: { decode: 0, inference: 0, postprocess: 0, total: 0 },
    };
    if (fraction) {
      const m = new Uint8Array(fraction.length);
      for (let p = 0; p < m.length; p++) m[p] = fraction[p]! >= 0.5 ? 1 : 0;
      r.maskShared = m;
      r.sharedFraction = fraction;
    }
    if (pred.probabilities) r.probabilities = pred.probabilities;
    if (pictures) {
      const mask = { width: img.width, height: img.height, data: colorize(pred.classes, info.palette) };
      r.pictures = { mask, overlay: { ...mask, data: overlay(img, mask.data) }, shared: { ...mask, data: sharedView(img, fraction) } };
    }
    return r;
  }
}

/** The model's dataset protocol when it resizes; otherwise the short side is resized to the window. */
function defaultProtocol(dataset: string | undefined, window: [number, number]): Pick<EvalProtocol, 'resizeShort' | 'maxLong'> {
  const p = dataset && isDatasetName(dataset) ? DATASETS[dataset].eval : undefined;
  return p?.resizeShort ? { resizeShort: p.resizeShort, ...(p.maxLong ? { maxLong: p.maxLong } : {}) } : { resizeShort: Math.min(...window) };
}

/** The model's dataset stride, else the window (no overlap), never above the window. */
function defaultStride(dataset: string | undefined, window: [number, number]): number {
  const s = dataset && isDatasetName(dataset) ? DATASETS[dataset].eval.windowStride : Infinity;
  return Math.min(s, ...window);
}

/** The most windows any view of `img` needs (the compiled batch never exceeds it). */
function maxWindows(img: RGBImage, protocol: Pick<EvalProtocol, 'resizeShort' | 'maxLong'>, multiscale: boolean, window: [number, number], stride: number): number {
  let most = 1;
  for (const v of evalViews(img.height, img.width, protocol, multiscale)) {
    const [h, w] = upsampledSize(v.height, v.width, window);
    most = Math.max(most, windowAnchors(h, window[0], stride).length * windowAnchors(w, window[1], stride).length);
  }
  return most;
}

function checkLoadOptions(o: LoadOptions): void {
  if (o.precision !== undefined && !PRECISIONS.includes(o.precision)) throw new CtsError(`precision '${String(o.precision)}' is not available; expected ${PRECISIONS.join(' or ')}`);
  if (o.windowBatch !== undefined && !(Number.isInteger(o.windowBatch) && o.windowBatch > 0)) throw new CtsError(`windowBatch must be a positive integer, got ${o.windowBatch}`);
  if (o.windowSize !== undefined && !(Number.isInteger(o.windowSize) && o.windowSize > 0)) throw new CtsError(`windowSize must be a positive integer, got ${o.windowSize}`);
  if (o.maxPixels !== undefined && !(Number.isInteger(o.maxPixels) && o.maxPixels > 0)) throw new CtsError(`maxPixels must be a positive integer, got ${o.maxPixels}`);
  if (o.maxMemory !== undefined && !(o.maxMemory > 0)) throw new CtsError(`maxMemory must be a positive number of bytes, got ${o.maxMemory}`);
  if (o.worker) throw new CtsError('worker: true runs inference in a Web Worker and is available in the browser build (cts-seg/web) only');
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}

function now(): number {
  return globalThis.performance.now();
}

// A cts-seg export (`cts-seg export`, EXPORT_FORMAT) run as a WindowRunner, so the sliding window
// and the Segmenter API treat an exported .onnx exactly like a checkpoint compiled here. The model's
// metadata_props say what it is (classes, palette, normalisation, window, budget, input format);
// nothing else about the file is assumed.
import onnxProto from 'onnx-proto';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { tokenBudget, type TokenBudget } from '../cts/budget.js';
import type { PixelPrediction, Prediction, WindowRunner } from '../cts/predictor.js';
import type { PolicyMethod } from '../cts/spec.js';
import { CompiledGraph, type CompileOptions } from '../runtime/session.js';
import type { Provider } from '../runtime/providers.js';
import { EXPORT_FORMAT } from './export.js';
import { PRECISIONS, type Precision } from '../nn/params.js';

const { onnx } = onnxProto;

/** What an export's metadata says about it. */
export interface ExportInfo {
  classes: string[];
  palette: [number, number, number][];
  normalization: { mean: [number, number, number]; std: [number, number, number] };
  /** Window (height, width). */
  crop: [number, number];
  inputFormat: 'uint8_rgb_nhwc' | 'float32_normalized_nchw';
  /** Static batch, or 'batch' when symbolic. */
  batch: number | 'batch';
  policy: 'policy_net' | 'no_sharing' | 'policy_logits';
  numShared: number;
  patchSize: number;
  /** Arithmetic of the Linear layers (exports older than int8 support have no `precision` key: fp32). */
  precision: Precision;
  dataset?: string;
}

/** Whether bytes look like an ONNX ModelProto (field 1 ir_version, varint) rather than another format. */
export function looksLikeOnnx(bytes: Uint8Array): boolean {
  return bytes.length > 4 && bytes[0] === 0x08;
}

/** Reads and checks the metadata of an export; CtsError naming `source` when it is not a cts-seg export. */
export function readExportInfo(bytes: Uint8Array, source: string): ExportInfo {
  let meta: Record<string, string>;
  try {
    const m = onnx.ModelProto.decode(bytes);
    meta = Object.fromEntries((m.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
  } catch (e) {
    throw new CtsError(`${source} is not a readable ONNX model (${String((e as Error).message).split('\n')[0]})`);
  }
  if (meta.format !== EXPORT_FORMAT) {
    throw new CtsError(`${source} is an ONNX model but not a cts-seg export (metadata format '${meta.format ?? 'missing'}', expected ${EXPORT_FORMAT}): export it with \`cts-seg export\``);
  }
  const json = <T>(key: string): T => {
    try {
      const v = meta[key];
      if (v === undefined) throw new Error('missing');
      return JSON.parse(v) as T;
    } catch {
      throw new CtsError(`${source}: metadata '${key}' is missing or not valid JSON`);
    }
  };
  const batch = meta.batch === 'batch' ? 'batch' : Number(meta.batch);
  const inputFormat = meta.input_format as ExportInfo['inputFormat'];
  if (inputFormat !== 'uint8_rgb_nhwc' && inputFormat !== 'float32_normalized_nchw') throw new CtsError(`${source}: unknown input_format '${meta.input_format}'`);
  const policy = meta.policy as ExportInfo['policy'];
  if (!['policy_net', 'no_sharing', 'policy_logits'].includes(policy)) throw new CtsError(`${source}: unknown policy '${meta.policy}'`);
  const precision = (meta.precision ?? 'fp32') as Precision;
  if (!PRECISIONS.includes(precision)) throw new CtsError(`${source}: unknown precision '${meta.precision}'`);
  return {
    classes: json('classes'), palette: json('palette'), normalization: json('normalization'), crop: json('crop_size'),
    inputFormat, batch, policy, numShared: Number(meta.num_shared ?? 0), patchSize: Number(meta.patch_size), precision,
    ...(meta.dataset ? { dataset: meta.dataset } : {}),
  };
}

/** An exported model compiled for inference. */
export class ExportRunner implements WindowRunner {
  readonly crop: [number, number];
  readonly batch: number;
  readonly numClasses: number;
  readonly policy: PolicyMethod;
  readonly budget: TokenBudget;
  readonly needsScores = false;
  readonly runPixels?: (rgb: Uint8Array) => Promise<PixelPrediction>;

  private constructor(private readonly session: CompiledGraph, readonly info: ExportInfo, maxBatch: number) {
    this.crop = info.crop;
    this.batch = info.batch === 'batch' ? maxBatch : info.batch;
    this.numClasses = info.classes.length;
    this.policy = info.policy === 'no_sharing' ? 'no_sharing' : 'policy_net';
    this.budget = tokenBudget(info.crop[0], info.crop[1], info.patchSize, info.numShared);
    // the graph's class_map is the argmax the host would take; the host's class maps stop at 255 classes
    if (info.inputFormat === 'uint8_rgb_nhwc' && session.outputNames.includes('class_map') && this.numClasses <= 255) {
      this.runPixels = (rgb) => this.pixels(rgb);
    }
  }

  /** Opens an export; `maxBatch` is the windows per call when its batch is symbolic. */
  static async open(bytes: Uint8Array, source: string, o: Pick<CompileOptions, 'provider' | 'threads' | 'externalData' | 'onFallback'> & { maxBatch?: number } = {}): Promise<ExportRunner> {
    const info = readExportInfo(bytes, source);
    if (info.policy === 'policy_logits') {
      throw new CtsError(`${source} takes its policy logits as an input (exported with --policy policy_logits); export with the policy network inside or without sharing to segment images with it`);
    }
    const { maxBatch, ...co } = o;
    const session = await CompiledGraph.compile(bytes, { ...co, optimization: 'all' });
    return new ExportRunner(session, info, Math.max(1, maxBatch ?? 1));
  }

  get provider(): Provider {
    return this.session.provider;
  }

  async run(x: HostTensor): Promise<Prediction> {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    if (x.shape.length !== 4 || c !== 3 || h !== this.crop[0] || w !== this.crop[1] || b < 1 || b > this.batch) {
      throw new CtsError(`the model expects [1..${this.batch},3,${this.crop[0]},${this.crop[1]}] windows, got [${x.shape.join(',')}]`);
    }
    const B = this.info.batch === 'batch' ? b : this.batch;
    const input = this.info.inputFormat === 'uint8_rgb_nhwc' ? toUint8Nhwc(x.data as Float32Array, b, B, h, w, this.info.normalization)
      : padFloat(x.data as Float32Array, B * 3 * h * w, [B, 3, h, w]);
    const res = await this.session.run({ input }, this.policy === 'no_sharing' ? ['logits'] : ['logits', 'mask_shared']);
    return { logits: firstImages(res.logits!, b), ...(res.mask_shared ? { maskShared: firstImages(res.mask_shared, b) } : {}) };
  }

  /** runPixels: one window of RGB bytes in, the graph's class map and shared mask out (the logits stay in ORT). */
  private async pixels(rgb: Uint8Array): Promise<PixelPrediction> {
    const [h, w] = this.crop, n = h * w;
    if (rgb.length !== n * 3) throw new CtsError(`the model expects one ${w}x${h} window of RGB bytes (${n * 3}), got ${rgb.length} bytes`);
    const B = this.info.batch === 'batch' ? 1 : this.batch;
    let data = rgb;
    if (B > 1) {
      data = new Uint8Array(B * n * 3);
      data.set(rgb);
    }
    const res = await this.session.run({ input: { dtype: 'uint8', shape: [B, h, w, 3], data } }, this.policy === 'no_sharing' ? ['class_map'] : ['class_map', 'mask_shared']);
    const cm = res.class_map!;
    // an export may carry an int64 class map (classMapType); its ids are below numClasses <= 255
    const classMap = cm.dtype === 'uint8' ? (cm.data as Uint8Array).subarray(0, n) : Uint8Array.from((cm.data as BigInt64Array).subarray(0, n), Number);
    return { classMap, ...(res.mask_shared ? { maskShared: firstImages(res.mask_shared, 1) } : {}) };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The first b images of a batched output (a padded static batch runs more than were asked for). */
function firstImages(t: HostTensor, b: number): HostTensor {
  const per = t.data.length / t.shape[0]!;
  return { dtype: t.dtype, shape: [b, ...t.shape.slice(1)], data: t.data.subarray(0, per * b) as HostTensor['data'] };
}

function padFloat(data: Float32Array, n: number, shape: number[]): HostTensor {
  if (data.length === n) return { dtype: 'float32', shape, data };
  const out = new Float32Array(n);
  out.set(data);
  return { dtype: 'float32', shape, data: out };
}

/**
 * Normalised CHW windows back to the uint8 NHWC pixels a preprocessing export takes. Windows cut from
 * an 8-bit image (the default protocol resizes the 8-bit image, as mmseg does) round-trip exactly;
 * only a view the sliding window had to upsample in float is rounded to the nearest 8-bit value.
 */
function toUint8Nhwc(x: Float32Array, b: number, B: number, h: number, w: number, norm: ExportInfo['normalization']): HostTensor {
  const plane = h * w, out = new Uint8Array(B * plane * 3);
  for (let i = 0; i < b; i++) {
    for (let c = 0; c < 3; c++) {
      const m = norm.mean[c]!, s = norm.std[c]!, src = (i * 3 + c) * plane, dst = i * plane * 3 + c;
      for (let p = 0; p < plane; p++) {
        const v = Math.round(x[src + p]! * s + m);
        out[dst + 3 * p] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { dtype: 'uint8', shape: [B, h, w, 3], data: out };
}

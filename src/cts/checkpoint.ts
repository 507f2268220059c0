// Model checkpoints: one .safetensors file holding the weights in the official state-dict names
// (Segmenter `encoder.*`/`decoder.*`, policy net `policy_net.*`) and, in `__metadata__`, everything
// inference needs: the model config, class names and palette, normalisation, crop size and the CTS
// settings. A plain official-named state dict without our metadata also loads (config inferred,
// generic class names), so weights move both ways.
import { CtsError } from '../base/errors.js';
import { loadStateDict, parseSafetensors, serializeSafetensors, type SafetensorsContents } from '../io/safetensors.js';
import type { HostTensor } from '../base/tensor.js';
import { parseSegmenterConfig, type SegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { policyNetSpec } from '../models/policynet.js';
import { inferSegmenterConfig } from '../models/weights.js';
import { POLICY_METHODS, type CtsSettings } from './spec.js';

/** Everything needed to run a trained model. */
export interface ModelCheckpoint {
  config: SegmenterConfig;
  /** Segmenter weights, plus `policy_net.*` when the policy is the network. */
  weights: Map<string, HostTensor>;
  /** Class names, index = class id. */
  classes: string[];
  /** RGB colour per class. */
  palette: [number, number, number][];
  /** Per-channel RGB mean and std in 0..255 units (ViT: 127.5 / 127.5). */
  normalization: { mean: [number, number, number]; std: [number, number, number] };
  /** Training crop (height, width): the sliding-window size at inference. */
  cropSize: [number, number];
  cts: CtsSettings;
  /** Dataset the model was trained on, if any. */
  dataset?: string;
  /** Sliding-window size and stride the model was trained to be evaluated with (official runs' inference_kwargs). */
  window?: { size: number; stride: number };
  /** The official run's variant.yml (tuples as arrays) when imported from one, so an export can write it back. */
  officialVariant?: Record<string, unknown>;
}

/** Format tag written to `__metadata__.format`. */
export const CHECKPOINT_FORMAT = 'cts-seg/1';

/** Deterministic distinct colours for k classes (the PASCAL VOC bit-interleaving colormap). */
export function defaultPalette(k: number): [number, number, number][] {
  return Array.from({ length: k }, (_, i) => {
    let r = 0, g = 0, b = 0, c = i;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    return [r, g, b];
  });
}

/** The ViT normalisation of the paper: (x - 127.5) / 127.5. */
export const VIT_NORMALIZATION = { mean: [127.5, 127.5, 127.5] as [number, number, number], std: [127.5, 127.5, 127.5] as [number, number, number] };

/** Parameter spec of a whole checkpoint (Segmenter, plus the policy net when it is used). */
export function checkpointSpec(config: SegmenterConfig, cts: CtsSettings): Map<string, { shape: number[]; dtype: HostTensor['dtype'] }> {
  const spec = new Map(segmenterSpec(config));
  if (cts.policy === 'policy_net') {
    for (const [k, v] of policyNetSpec(cts.policyWidth !== undefined ? { width: cts.policyWidth } : {})) spec.set(`policy_net.${k}`, v);
  }
  return spec;
}

/** A checkpoint as safetensors bytes (weights in the official names, everything else in `__metadata__`). */
export function serializeCheckpoint(ckpt: ModelCheckpoint, source = '<checkpoint>'): Uint8Array {
  checkConsistent(ckpt, source);
  const meta: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(ckpt.config),
    classes: JSON.stringify(ckpt.classes),
    palette: JSON.stringify(ckpt.palette),
    normalization: JSON.stringify(ckpt.normalization),
    crop_size: JSON.stringify(ckpt.cropSize),
    cts: JSON.stringify(ckpt.cts),
    ...(ckpt.dataset ? { dataset: ckpt.dataset } : {}),
    ...(ckpt.window ? { window: JSON.stringify(ckpt.window) } : {}),
    ...(ckpt.officialVariant ? { official_variant: JSON.stringify(ckpt.officialVariant) } : {}),
  };
  return serializeSafetensors(ckpt.weights, meta);
}

function parseJson<T>(meta: Record<string, string>, key: string, path: string): T | undefined {
  // keys of other producers (e.g. the reference files' free-text "normalization") are not ours to parse
  if (meta.format !== CHECKPOINT_FORMAT && key !== 'config') return undefined;
  const v = meta[key];
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    throw new CtsError(`${path}: __metadata__.${key} is not valid JSON`);
  }
}

/** Options of loadCheckpoint. */
export interface LoadCheckpointOptions {
  encoderHeads?: number;
  decoderHeads?: number;
  /**
   * Check that every float weight is finite and the normalisation's std positive (default true): a
   * NaN weight or a zero std makes every pixel class 0 without any error further down.
   */
  checkWeights?: boolean;
}

/**
 * Parses and strictly validates a checkpoint (ours, or a plain official-named state dict) from
 * safetensors bytes or already parsed contents; `path` names it in errors.
 */
export function parseCheckpoint(src: Uint8Array | SafetensorsContents, path = '<checkpoint>', o: LoadCheckpointOptions = {}): ModelCheckpoint {
  const { tensors, metadata } = src instanceof Uint8Array ? parseSafetensors(src, path) : src;
  const config = metadata.config
    ? parseSegmenterConfig(parseJson(metadata, 'config', path), `${path} __metadata__.config`)
    : inferSegmenterConfig(tensors, { metadata, source: path, ...o });
  const hasPolicy = [...tensors.keys()].some((k) => k.startsWith('policy_net.'));
  const cts = parseJson<CtsSettings>(metadata, 'cts', path) ?? { policy: hasPolicy ? 'policy_net' : 'no_sharing', numShared: 0 };
  const imageSize = metadata.image_size ? Number(metadata.image_size) : undefined;
  const crop = parseJson<[number, number]>(metadata, 'crop_size', path) ??
    (imageSize ? [imageSize, imageSize] : [config.pos_grid[0] * config.patch_size, config.pos_grid[1] * config.patch_size]);
  const classes = parseJson<string[]>(metadata, 'classes', path) ?? Array.from({ length: config.n_cls }, (_, i) => `class_${i}`);
  const ckpt: ModelCheckpoint = {
    config,
    weights: new Map(),
    classes,
    palette: parseJson<[number, number, number][]>(metadata, 'palette', path) ?? defaultPalette(config.n_cls),
    normalization: parseJson(metadata, 'normalization', path) ?? VIT_NORMALIZATION,
    cropSize: crop,
    cts,
    ...(metadata.dataset ? { dataset: metadata.dataset } : {}),
  };
  const window = parseJson<{ size: number; stride: number }>(metadata, 'window', path);
  if (window) ckpt.window = window;
  const variant = parseJson<Record<string, unknown>>(metadata, 'official_variant', path);
  if (variant) ckpt.officialVariant = variant;
  ckpt.weights = loadStateDict(checkpointSpec(config, cts), tensors, {
    source: path,
    allowUnexpected: ['encoder.head.', ...(cts.policy === 'policy_net' ? [] : ['policy_net.'])],
  });
  checkConsistent(ckpt, path);
  checkNormalization(ckpt.normalization, path);
  if (o.checkWeights !== false) checkFinite(ckpt.weights, path);
  return ckpt;
}

function checkNormalization(n: unknown, path: string): void {
  const ok = (v: unknown, positive: boolean) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
  const m = n as ModelCheckpoint['normalization'] | null;
  if (!m || typeof m !== 'object' || !ok(m.mean, false) || !ok(m.std, true)) {
    throw new CtsError(`${path}: normalization must be {mean: [r,g,b], std: [r,g,b]} of finite numbers with std > 0, got ${JSON.stringify(n)}`);
  }
}

/** Names the first weight holding NaN or Inf (the opt-out is LoadCheckpointOptions.checkWeights / --no-check-weights). */
function checkFinite(weights: Map<string, HostTensor>, path: string): void {
  for (const [k, t] of weights) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    const d = t.data as Float32Array | Float64Array;
    for (let i = 0; i < d.length; i++) {
      // x - x is 0 for every finite x and NaN for NaN and +-Inf: one test for both
      if (d[i]! - d[i]! !== 0) {
        throw new CtsError(`${path}: weight '${k}' holds ${d[i]} at element ${i}; the model would predict garbage (load anyway with --no-check-weights)`);
      }
    }
  }
}

function checkConsistent(c: ModelCheckpoint, path: string): void {
  const k = c.config.n_cls;
  if (c.classes.length !== k) throw new CtsError(`${path}: ${c.classes.length} class names for a ${k}-class model`);
  if (!Array.isArray(c.classes) || !c.classes.every((n) => typeof n === 'string')) throw new CtsError(`${path}: classes must be a list of names`);
  if (!Array.isArray(c.palette) || c.palette.length !== k || c.palette.some((p) => !Array.isArray(p) || p.length !== 3)) throw new CtsError(`${path}: palette must have ${k} RGB triples`);
  if (!POLICY_METHODS.includes(c.cts.policy)) {
    throw new CtsError(`${path}: unknown policy '${c.cts.policy}', expected ${POLICY_METHODS.join(', ')}`);
  }
  if (!(Number.isInteger(c.cts.numShared) && c.cts.numShared >= 0)) throw new CtsError(`${path}: cts.numShared must be a non-negative integer`);
  if (c.window && !(Number.isInteger(c.window.size) && c.window.size > 0 && Number.isInteger(c.window.stride) && c.window.stride > 0)) {
    throw new CtsError(`${path}: window must be {size, stride} with positive integers`);
  }
  if (!Array.isArray(c.cropSize) || c.cropSize.length !== 2 || c.cropSize.some((d) => !(Number.isInteger(d) && d > 0))) throw new CtsError(`${path}: crop_size must be [height, width]`);
}

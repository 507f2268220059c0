// The model zoo: one record per released model, in the spirit of timm's pretrained configs. Only facts
// that a source states are recorded (README of rstrudel/segmenter at commit cad54e98, its segm/config.yml,
// timm 0.4.12's vision_transformer.py default_cfgs, the licences of both repositories); anything the
// sources leave out (download sizes, checksums, the 640 model's window stride) stays undefined rather
// than guessed. No Node imports: the browser build can list the zoo too.
//
// Naming: a Segmenter release is `<official run folder>_<dataset>` (the folder of its URL, so
// `ade20k/seg_tiny_mask/` is `seg_tiny_mask_ade20k`); an ImageNet backbone keeps timm's name
// (`vit_tiny_patch16_384`), the name `train --backbone` already accepts.
import { CtsError } from '../base/errors.js';
import type { DatasetName } from '../data/catalog.js';

/** Where a record's relative paths live; each has an official base URL. */
export type ModelHost = 'segmenter' | 'augreg';

/** Official base URLs (with the trailing slash) of each host. */
export const MODEL_HOSTS: Record<ModelHost, string> = {
  segmenter: 'https://www.rocq.inria.fr/cluster-willow/rstrudel/segmenter/checkpoints/',
  augreg: 'https://storage.googleapis.com/vit_models/augreg/',
};

/** Env var replacing every host's base URL (a mirror, or a test server): files are fetched from `<base>/<path>`. */
export const MODEL_BASE_ENV = 'CTS_SEG_MODEL_BASE';

/** One file of a release. */
export interface ZooFile {
  /** File name in the cache (and what the converter finds in the run folder). */
  name: string;
  /** Path relative to the host's base URL. */
  path: string;
  /** Size in bytes when a source states it; a download of another size is refused. */
  size?: number;
  /** SHA-256 (hex) when a source states it; otherwise the first complete download is trusted. */
  sha256?: string;
}

/** A Segmenter release (a run folder: checkpoint.pth + variant.yml) or an ImageNet backbone (.npz). */
export interface ModelRecord {
  name: string;
  /** The name the source uses (e.g. `Seg-T-Mask/16`). */
  title: string;
  kind: 'segmenter' | 'backbone';
  host: ModelHost;
  files: ZooFile[];
  backbone: {
    /** timm / segm/config.yml name of the encoder. */
    name: string;
    d_model: number;
    n_layers: number;
    n_heads: number;
    patch_size: number;
    /** MLP width (4 * d_model in every preset). */
    d_ff: number;
    /** Input normalisation of segm/config.yml: vit = (x - 0.5) / 0.5, deit = ImageNet mean/std. */
    normalization: 'vit' | 'deit';
    /** DeiT distillation token present. */
    distilled: boolean;
  };
  /** Decoder of a Segmenter release; absent for backbones. */
  decoder?: { kind: 'mask_transformer' | 'linear'; n_layers?: number };
  /** Training crop side (px); also the sliding window of the official inference. */
  crop?: number;
  /** Sliding-window size and stride of the official evaluation (segm/config.yml), when stated. */
  window?: { size?: number; stride?: number };
  /** Training dataset: a catalog dataset (its classes and palette) or ImageNet for backbones. */
  dataset: DatasetName | 'imagenet';
  /** Where the class names and palette come from, in words. */
  classesFrom: string;
  /** Official mIoU (%), single-scale and multi-scale, as the README states them. */
  miou?: { ss?: number; ms?: number };
  /** Parameter count as the README states it (e.g. '7M'). */
  params?: string;
  /** Total download size in bytes, when a source states it. */
  downloadBytes?: number;
  licence: string;
  /** Citation of the facts above. */
  source: string;
}

const SEGMENTER_README = 'rstrudel/segmenter README.md (commit cad54e98), segm/config.yml';
const SEGMENTER_LICENCE =
  'code MIT (rstrudel/segmenter LICENSE); the README states no separate terms for the checkpoints; the training data keeps its own terms';
const AUGREG_SOURCE = "timm 0.4.12 timm/models/vision_transformer.py default_cfgs (the version segmenter's requirements.txt pins)";
const AUGREG_LICENCE = 'Apache-2.0 (google-research/vision_transformer LICENSE, the publisher of the AugReg checkpoints)';

const VIT = {
  tiny: { name: 'vit_tiny_patch16_384', d_model: 192, n_layers: 12, n_heads: 3, patch_size: 16, d_ff: 768, normalization: 'vit', distilled: false },
  small: { name: 'vit_small_patch16_384', d_model: 384, n_layers: 12, n_heads: 6, patch_size: 16, d_ff: 1536, normalization: 'vit', distilled: false },
  base: { name: 'vit_base_patch16_384', d_model: 768, n_layers: 12, n_heads: 12, patch_size: 16, d_ff: 3072, normalization: 'vit', distilled: false },
  base8: { name: 'vit_base_patch8_384', d_model: 768, n_layers: 12, n_heads: 12, patch_size: 8, d_ff: 3072, normalization: 'vit', distilled: false },
  large: { name: 'vit_large_patch16_384', d_model: 1024, n_layers: 24, n_heads: 16, patch_size: 16, d_ff: 4096, normalization: 'vit', distilled: false },
  deit: { name: 'deit_base_distilled_patch16_384', d_model: 768, n_layers: 12, n_heads: 12, patch_size: 16, d_ff: 3072, normalization: 'deit', distilled: true },
} as const satisfies Record<string, ModelRecord['backbone']>;

const MASK = { kind: 'mask_transformer', n_layers: 2 } as const;
const LINEAR = { kind: 'linear' } as const;

/** The official evaluation settings of segm/config.yml, per dataset. */
const PROTOCOL = {
  ade20k: { crop: 512, window: { size: 512, stride: 512 } },
  pcontext: { crop: 480, window: { size: 480, stride: 320 } },
  cityscapes: { crop: 768, window: { size: 768, stride: 512 } },
} as const;

function run(o: {
  folder: string; dataset: 'ade20k' | 'pcontext' | 'cityscapes'; title: string; backbone: ModelRecord['backbone'];
  decoder: NonNullable<ModelRecord['decoder']>; ss: number; ms: number; params: string; crop?: number;
}): ModelRecord {
  const dir = { ade20k: 'ade20k', pcontext: 'pascal_context', cityscapes: 'cityscapes' }[o.dataset];
  const p = PROTOCOL[o.dataset];
  return {
    name: `${o.folder}_${o.dataset}`,
    title: o.title,
    kind: 'segmenter',
    host: 'segmenter',
    files: ['checkpoint.pth', 'variant.yml'].map((f) => ({ name: f, path: `${dir}/${o.folder}/${f}` })),
    backbone: o.backbone,
    decoder: o.decoder,
    // The 640 ADE20K model: the README states the resolution only, so the window is left to its variant.yml.
    crop: o.crop ?? p.crop,
    window: o.crop ? {} : { ...p.window },
    dataset: o.dataset,
    classesFrom: `the ${o.dataset} dataset of src/data/catalog.ts`,
    miou: { ss: o.ss, ms: o.ms },
    params: o.params,
    licence: SEGMENTER_LICENCE,
    source: SEGMENTER_README,
  };
}

function augreg(size: keyof typeof VIT, title: string, file: string): ModelRecord {
  return {
    name: VIT[size].name,
    title,
    kind: 'backbone',
    host: 'augreg',
    files: [{ name: file, path: file }],
    backbone: VIT[size],
    crop: 384,
    dataset: 'imagenet',
    classesFrom: 'none: an ImageNet backbone (its classifier head is dropped on import)',
    licence: AUGREG_LICENCE,
    source: AUGREG_SOURCE,
  };
}

const AUG = (arch: string, aug: string, wd: string, reg: string, lr: string) =>
  `${arch}-i21k-300ep-lr_0.001-aug_${aug}-wd_${wd}-${reg}--imagenet2012-steps_20k-lr_${lr}-res_384.npz`;

/** Every model `cts-seg pull` knows, in the order of the sources. */
export const MODELS: readonly ModelRecord[] = [
  run({ folder: 'seg_tiny_mask', dataset: 'ade20k', title: 'Seg-T-Mask/16', backbone: VIT.tiny, decoder: MASK, ss: 38.1, ms: 38.8, params: '7M' }),
  run({ folder: 'seg_small_mask', dataset: 'ade20k', title: 'Seg-S-Mask/16', backbone: VIT.small, decoder: MASK, ss: 45.3, ms: 46.9, params: '27M' }),
  run({ folder: 'seg_base_mask', dataset: 'ade20k', title: 'Seg-B-Mask/16', backbone: VIT.base, decoder: MASK, ss: 48.5, ms: 50.0, params: '106M' }),
  // No "-Mask" in the README's name means the linear decoder (its convention; 89M params, near Seg-B†/16's 87M).
  run({ folder: 'seg_base_patch8', dataset: 'ade20k', title: 'Seg-B/8', backbone: VIT.base8, decoder: LINEAR, ss: 49.5, ms: 50.5, params: '89M' }),
  run({ folder: 'seg_large_mask_640', dataset: 'ade20k', title: 'Seg-L-Mask/16 (640x640)', backbone: VIT.large, decoder: MASK, ss: 51.8, ms: 53.6, params: '334M', crop: 640 }),
  run({ folder: 'seg_base_deit_linear', dataset: 'ade20k', title: 'Seg-B†/16 (DeiT)', backbone: VIT.deit, decoder: LINEAR, ss: 47.1, ms: 48.1, params: '87M' }),
  run({ folder: 'seg_base_deit_mask', dataset: 'ade20k', title: 'Seg-B†-Mask/16 (DeiT)', backbone: VIT.deit, decoder: MASK, ss: 48.7, ms: 50.1, params: '106M' }),
  run({ folder: 'seg_large_mask', dataset: 'pcontext', title: 'Seg-L-Mask/16', backbone: VIT.large, decoder: MASK, ss: 58.1, ms: 59.0, params: '334M' }),
  run({ folder: 'seg_large_mask', dataset: 'cityscapes', title: 'Seg-L-Mask/16', backbone: VIT.large, decoder: MASK, ss: 79.1, ms: 81.3, params: '322M' }),
  augreg('tiny', 'AugReg ViT-Ti/16 (384)', AUG('Ti_16', 'none', '0.03', 'do_0.0-sd_0.0', '0.03')),
  augreg('small', 'AugReg ViT-S/16 (384)', AUG('S_16', 'light1', '0.03', 'do_0.0-sd_0.0', '0.03')),
  augreg('base', 'AugReg ViT-B/16 (384)', AUG('B_16', 'medium1', '0.1', 'do_0.0-sd_0.0', '0.01')),
  augreg('large', 'AugReg ViT-L/16 (384)', AUG('L_16', 'medium1', '0.1', 'do_0.1-sd_0.1', '0.01')),
];

const registered: ModelRecord[] = [];

/**
 * Adds a record to the registry (timm's register_model): a private model or a mirror's, and the test
 * records. Every lookup without an explicit list (pull, models, --model, Segmenter.load) sees it.
 */
export function registerModelRecord(record: ModelRecord): void {
  if (findModel(record.name)) throw new CtsError(`a model named ${record.name} is already registered`);
  registered.push(record);
}

/** The built-in records, then the registered ones. */
export function modelRecords(): readonly ModelRecord[] {
  return registered.length ? [...MODELS, ...registered] : MODELS;
}

/** The record called `name` (case-insensitive, `-` and `_` alike) in `models`, if any. */
export function findModel(name: string, models: readonly ModelRecord[] = modelRecords()): ModelRecord | undefined {
  const key = normalise(name);
  return models.find((m) => normalise(m.name) === key);
}

function normalise(s: string): string {
  return s.trim().toLowerCase().replace(/-/g, '_');
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** Up to `n` names of `models` closest to `name`: those containing it or every word of it first, then by edit distance. */
export function closeMatches(name: string, models: readonly ModelRecord[] = modelRecords(), n = 3): string[] {
  const key = normalise(name);
  const words = key.split(/[_\s/]+/).filter(Boolean);
  const score = (m: ModelRecord) => {
    const k = normalise(m.name);
    const contains = words.length > 0 && words.every((w) => k.includes(w)) ? -1000 : 0;
    return contains + editDistance(key, k);
  };
  return [...models].sort((a, b) => score(a) - score(b)).slice(0, n).map((m) => m.name);
}

/** The one-line error for a name no record has, listing the close matches. */
export function unknownModelError(name: string, models: readonly ModelRecord[] = modelRecords()): CtsError {
  return new CtsError(`unknown model '${name}'; did you mean ${closeMatches(name, models).join(', ')}? (cts-seg models lists them all)`);
}

/** The URL of one file: `base` (when given, e.g. from CTS_SEG_MODEL_BASE) or the official host, plus its path. */
export function fileUrl(record: ModelRecord, file: ZooFile, base?: string): string {
  const root = base ? (base.endsWith('/') ? base : `${base}/`) : MODEL_HOSTS[record.host];
  return root + file.path;
}

// What a benchmark run is made of, before any timing: the budgets (with the paper's exact ones), the model (preset with seeded random weights, or a checkpoint) and the
// input batch (one image repeated, ViT-normalised).
import sharp from 'sharp';
import { readImage } from '../data/image.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { createSegmenterConfig, type SegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { initPolicyNet } from '../models/policynet.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { sharedForReduction } from '../cts/budget.js';
import { createRng } from '../base/rng.js';

/** The model, crop, budgets and input of a benchmark. Sizes are (height, width). */
export interface BenchModelOptions {
  /** Backbone preset (vit-ti, vit-s, vit-b, vit-l or a timm name); default vit-s. Not with `checkpoint`. */
  backbone?: string;
  decoder?: 'mask_transformer' | 'linear';
  /** Crop size; default 512x512 (or the checkpoint's crop). */
  imageSize?: [number, number];
  /** Classes K; default 150 (or the checkpoint's). */
  classes?: number;
  /** Token budgets to time, as shared superpatches S. Default [0]. */
  numShared?: number[];
  /** Policy network width multiplier (default 1: EfficientNet-Lite0; the checkpoint's if it has one). */
  policyWidth?: number;
  /** Model checkpoint (.safetensors); else random weights (seeded). */
  checkpoint?: string;
  /** Image to repeat over the batch (resized to the crop); default a seeded synthetic image. */
  image?: string;
}

/** A model ready to be compiled at any budget. */
export interface BenchModel {
  config: SegmenterConfig;
  /** Segmenter weights, plus `policy_net.*` when a budget shares tokens. */
  weights: Map<string, HostTensor>;
  /** Crop (height, width). */
  size: [number, number];
  /** Policy network width multiplier (undefined: the full EfficientNet-Lite0). */
  policyWidth: number | undefined;
  /** Where the weights come from, for the report. */
  source: string;
}

/**
 * The budgets the paper's code uses (spec §3.5), by patch count and nominal reduction: S there is
 * not always round(r * Nb / 3) (ADE20K's "30%" is 103 of 256 superpatches, not 102).
 */
const PAPER_BUDGETS: readonly { nb: number; r: number; S: number }[] = [
  { nb: 1024, r: 0.3, S: 103 }, // ADE20K 512
  { nb: 900, r: 0.3, S: 90 }, // Pascal-Context 480
  { nb: 1600, r: 0.3, S: 160 }, // ADE20K ViT-L 640 (assumed in the spec)
  { nb: 2304, r: 0.44, S: 336 }, // Cityscapes 768
];

/** S for a token reduction r (fraction): the paper's budget where it has one, else round(r * Nb / 3). */
export function budgetForReduction(h: number, w: number, patch: number, r: number): number {
  const nb = (h / patch) * (w / patch);
  const paper = PAPER_BUDGETS.find((b) => b.nb === nb && Math.abs(b.r - r) < 1e-9);
  return paper ? paper.S : sharedForReduction(h, w, patch, r);
}

/** The model to time: a checkpoint's, or a preset at the crop with seeded random weights. */
export async function loadBenchModel(o: BenchModelOptions): Promise<BenchModel> {
  if (o.checkpoint) {
    for (const [flag, v] of [['--backbone', o.backbone], ['--decoder', o.decoder], ['--classes', o.classes]] as const) {
      if (v !== undefined) throw new CtsError(`${flag} comes from the checkpoint ${o.checkpoint}; leave it out`);
    }
    const ck = await loadCheckpoint(o.checkpoint);
    const weights = new Map(ck.weights);
    const policyWidth = o.policyWidth ?? ck.cts.policyWidth;
    let source = `checkpoint ${o.checkpoint}`;
    const needsPolicy = (o.numShared ?? [0]).some((s) => s > 0);
    if (needsPolicy && (!weights.has('policy_net.head.weight') || (o.policyWidth !== undefined && o.policyWidth !== ck.cts.policyWidth))) {
      // timing does not depend on the policy's weights, only on its shape
      for (const [k, v] of initPolicyNet(2, policyWidth !== undefined ? { width: policyWidth } : {})) weights.set(`policy_net.${k}`, v);
      source += ' (policy network: random weights)';
    }
    return { config: ck.config, weights, size: o.imageSize ?? ck.cropSize, policyWidth, source };
  }
  const size = o.imageSize ?? [512, 512];
  // pos grid = crop grid, as a model trained at this crop (CTS does not resize pos_embed at run time)
  const config = createSegmenterConfig(o.backbone ?? 'vit-s', {
    n_cls: o.classes ?? 150,
    decoder: o.decoder ?? 'mask_transformer',
    pos_grid: [Math.ceil(size[0] / 16), Math.ceil(size[1] / 16)],
  });
  const weights = initSegmenterWeights(segmenterSpec(config), 1);
  if ((o.numShared ?? [0]).some((s) => s > 0)) {
    for (const [k, v] of initPolicyNet(2, o.policyWidth !== undefined ? { width: o.policyWidth } : {})) weights.set(`policy_net.${k}`, v);
  }
  return { config, weights, size, policyWidth: o.policyWidth, source: 'random (seeded)' };
}

/** The image repeated over the batch, normalised with the ViT statistics (x - 127.5) / 127.5. */
export async function benchInput(o: BenchModelOptions, size: [number, number], batch: number): Promise<HostTensor> {
  const [h, w] = size;
  let rgb: Uint8Array;
  if (o.image) {
    // decoded by the guarded path (pixel limit, one-line errors), then stretched to the input size
    const img = await readImage(o.image);
    const buf = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(w, h, { fit: 'fill' }).raw().toBuffer();
    rgb = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } else {
    // smooth colour ramps plus noise: regions that a policy could share and some texture
    const r = createRng(7);
    rgb = new Uint8Array(h * w * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3, band = Math.floor((4 * y) / h);
        rgb[i] = (band * 60 + x / 8) & 255;
        rgb[i + 1] = (255 * y) / h;
        rgb[i + 2] = band === 3 ? r.uniform() * 255 : 128;
      }
    }
  }
  const per = 3 * h * w;
  const data = new Float32Array(batch * per);
  for (let c = 0; c < 3; c++) for (let k = 0; k < h * w; k++) data[c * h * w + k] = (rgb[k * 3 + c]! - 127.5) / 127.5;
  for (let b = 1; b < batch; b++) data.copyWithin(b * per, 0, per);
  return { dtype: 'float32', shape: [batch, 3, h, w], data };
}

/** The sweep's token reductions (spec §9.2: the paper's 30% and 44% points, plus 15%). */
export const SWEEP_REDUCTIONS = [0, 0.15, 0.3, 0.44];

/** S for each sweep reduction at a crop (deduplicated, ascending). */
export function sweepBudgets(h: number, w: number, patch = 16): number[] {
  return [...new Set(SWEEP_REDUCTIONS.map((r) => budgetForReduction(h, w, patch, r)))];
}

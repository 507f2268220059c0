// `cts-seg init`: a randomly initialised checkpoint (Segmenter, plus a policy network when the policy
// is the net), with class names, palette, crop and CTS budget, so that eval, infer and bench can run
// before any training.
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { makeOutputDir, removeCreatedDir } from '../io/fs.node.js';
import { createSegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { initPolicyNet } from '../models/policynet.js';
import { defaultPalette, VIT_NORMALIZATION, type ModelCheckpoint } from '../cts/checkpoint.js';
import { saveCheckpoint } from '../cts/checkpoint.node.js';
import { sharedForReduction } from '../cts/budget.js';
import { DATASETS, isDatasetName } from '../data/datasets.js';
import { resolveSharing, type PolicyMethod } from '../cts/spec.js';
import { action, posInt } from './util.js';
import { cropSizeOption, numSharedOption, outOption, policyOption, policyWidthOption, reductionOption, seedOption } from './options.js';

interface InitOpts {
  backbone: string;
  dataset?: string;
  classes?: number;
  cropSize?: number;
  decoder: string;
  policy?: PolicyMethod;
  numShared?: number;
  reduction?: number;
  policyWidth?: number;
  seed: number;
  dModel?: number;
  depth?: number;
  heads?: number;
  decoderLayers: number;
  out: string;
}

const BACKBONES = ['vit-ti', 'vit-s', 'vit-b', 'vit-l', 'custom'];

/** Registers the `init` command. */
export function registerInit(program: Command): void {
  const cmd = program
    .command('init')
    .description('write a randomly initialised checkpoint (for trying eval/infer/bench before training, or as a training start)')
    .requiredOption('--backbone <name>', `ViT size: ${BACKBONES.join(', ')} (custom needs --d-model, --depth, --heads)`)
    .option('--dataset <name>', 'take class names, palette and crop size from a built-in dataset (ade20k, pcontext, cityscapes, camvid)')
    .option('--classes <n>', 'number of classes when no --dataset is given (generic names and palette)', posInt('--classes'));
  cropSizeOption(cmd, { square: true, note: 'the training crop = sliding-window size; default: the dataset\'s, else 512', aliases: ['--image-size'] });
  cmd.option('--decoder <name>', 'decoder: mask_transformer or linear', 'mask_transformer');
  policyOption(cmd, { note: 'default: policy_net when a budget is given, else no_sharing' });
  numSharedOption(cmd, { note: 'per window: N1 = patches - 4S keep their own token' });
  reductionOption(cmd, { note: 'instead of --num-shared: S = round(r * patches / 3)' });
  policyWidthOption(cmd);
  seedOption(cmd, { note: 'of the initialisation', default: 0 });
  cmd
    .option('--d-model <n>', 'custom backbone: token width', posInt('--d-model'))
    .option('--depth <n>', 'custom backbone: encoder layers', posInt('--depth'))
    .option('--heads <n>', 'custom backbone: attention heads (default d_model/64, at least 1)', posInt('--heads'))
    .option('--decoder-layers <n>', 'mask-transformer decoder layers', posInt('--decoder-layers'), 2);
  outOption(cmd, 'checkpoint to write (.safetensors)', { required: true });
  cmd.action(action(runInit));
}

async function runInit(o: InitOpts): Promise<void> {
  if (!BACKBONES.includes(o.backbone)) throw new CtsError(`--backbone must be one of ${BACKBONES.join(', ')}, got '${o.backbone}'`);
  if (o.decoder !== 'mask_transformer' && o.decoder !== 'linear') throw new CtsError(`--decoder must be mask_transformer or linear, got '${o.decoder}'`);
  if (o.dataset !== undefined && o.classes !== undefined) throw new CtsError('give either --dataset or --classes, not both');
  if (o.numShared !== undefined && o.reduction !== undefined) throw new CtsError('give either --num-shared or --reduction, not both');
  let classes: string[], palette: [number, number, number][], datasetCrop: number | undefined;
  if (o.dataset !== undefined) {
    if (!isDatasetName(o.dataset) || o.dataset === 'folder') {
      throw new CtsError(`--dataset must be one of ${Object.keys(DATASETS).filter((d) => d !== 'folder').join(', ')}, got '${o.dataset}' (for other datasets use --classes N)`);
    }
    const info = DATASETS[o.dataset];
    classes = [...info.classes];
    palette = info.palette.map((c) => [c[0], c[1], c[2]]);
    datasetCrop = info.cropSize;
  } else if (o.classes !== undefined) {
    if (o.classes > 255) throw new CtsError(`--classes ${o.classes} is too many: class maps are 8-bit with 255 = ignore, so at most 255`);
    classes = Array.from({ length: o.classes }, (_, i) => `class_${i}`);
    palette = defaultPalette(o.classes);
  } else {
    throw new CtsError('give --dataset NAME or --classes N');
  }
  const crop = o.cropSize ?? datasetCrop ?? 512;
  const custom: Record<string, number> = {};
  if (o.backbone === 'custom') {
    if (!o.dModel || !o.depth) throw new CtsError('--backbone custom needs --d-model and --depth (and optionally --heads)');
    const heads = o.heads ?? Math.max(1, Math.floor(o.dModel / 64));
    Object.assign(custom, { d_model: o.dModel, n_layers: o.depth, n_heads: heads, decoder_n_heads: heads });
  } else if (o.dModel || o.depth || o.heads) {
    throw new CtsError(`--d-model/--depth/--heads apply to --backbone custom only; ${o.backbone} fixes them`);
  }
  const config = createSegmenterConfig(o.backbone, { ...custom, n_cls: classes.length, image_size: crop, decoder: o.decoder, decoder_n_layers: o.decoderLayers });
  const patch = config.patch_size;
  // no size rule of its own: resolveSharing decides, as for train (no sharing pads any crop to a patch multiple)
  const asked = o.numShared ?? (o.reduction !== undefined ? sharedForReduction(crop, crop, patch, o.reduction) : undefined);
  // a new model stores no sharing; a budget alone asks for the policy network
  const { policy, numShared: S } = resolveSharing({ policy: 'no_sharing', numShared: 0 }, { policy: o.policy ?? (asked ? 'policy_net' : undefined), numShared: asked }, { size: [crop, crop], patchSize: patch });
  if (o.policyWidth !== undefined && policy !== 'policy_net') throw new CtsError(`--policy-width applies to the policy_net policy only (policy is ${policy})`);
  const weights = initSegmenterWeights(segmenterSpec(config), o.seed);
  if (policy === 'policy_net') {
    for (const [k, v] of initPolicyNet(o.seed + 1, o.policyWidth !== undefined ? { width: o.policyWidth } : {})) weights.set(`policy_net.${k}`, v);
  }
  const ckpt: ModelCheckpoint = {
    config, weights, classes, palette, normalization: VIT_NORMALIZATION, cropSize: [crop, crop],
    cts: { policy, numShared: S, ...(o.policyWidth !== undefined ? { policyWidth: o.policyWidth } : {}) },
    ...(o.dataset ? { dataset: o.dataset } : {}),
  };
  const created = await makeOutputDir(dirname(o.out), `the folder of ${o.out}:`);
  try {
    await saveCheckpoint(o.out, ckpt);
  } catch (e) {
    await removeCreatedDir(created);
    throw e;
  }
  const params = [...weights.values()].reduce((a, t) => a + t.data.length, 0);
  const tokens = (crop / patch) ** 2;
  process.stdout.write(
    `wrote ${o.out}: ${config.backbone} (${config.d_model}x${config.n_layers}), ${config.decoder} decoder, ${classes.length} classes` +
      `${o.dataset ? ` (${o.dataset})` : ''}, crop ${crop}, ${(params / 1e6).toFixed(2)}M parameters, random weights (seed ${o.seed}); ` +
      `policy ${policy}${S ? `, ${S} shared superpatches: ${tokens - 3 * S} tokens per window instead of ${tokens}` : ''}\n`,
  );
}

// `cts-seg init`: a randomly initialised checkpoint (Segmenter, plus a policy network when the policy
// is the net), with class names, palette, crop and CTS budget, so that eval, infer and bench can run
// before any training.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { createSegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { initPolicyNet } from '../models/policynet.js';
import { defaultPalette, VIT_NORMALIZATION, type ModelCheckpoint } from '../cts/checkpoint.js';
import { saveCheckpoint } from '../cts/checkpoint.node.js';
import { sharedForReduction, tokenBudget } from '../cts/budget.js';
import { DATASETS, isDatasetName } from '../data/datasets.js';
import { parsePolicy } from './eval.js';
import { action, nonNegInt, posInt } from './util.js';

interface InitOpts {
  backbone: string;
  dataset?: string;
  classes?: number;
  cropSize?: number;
  decoder: string;
  policy?: string;
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

function positiveFloat(name: string) {
  return (v: string): number => {
    const x = Number(v);
    if (!/^[0-9.eE+-]+$/.test(v) || !Number.isFinite(x) || x <= 0) throw new InvalidArgumentError(`${name} expects a positive number, got '${v}'`);
    return x;
  };
}

/** Registers the `init` command. */
export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a randomly initialised checkpoint (for trying eval/infer/bench before training, or as a training start)')
    .requiredOption('--backbone <name>', `ViT size: ${BACKBONES.join(', ')} (custom needs --d-model, --depth, --heads)`)
    .option('--dataset <name>', 'take class names, palette and crop size from a built-in dataset (ade20k, pcontext, cityscapes, camvid)')
    .option('--classes <n>', 'number of classes when no --dataset is given (generic names and palette)', posInt('--classes'))
    .option('--crop-size <n>', 'training crop = sliding-window size in pixels (default: the dataset\'s, else 512)', posInt('--crop-size'))
    .option('--decoder <name>', 'decoder: mask_transformer or linear', 'mask_transformer')
    .option('--policy <name>', 'token-sharing policy: no_sharing, policy_net, oracle or random (default: policy_net when a budget is given, else no_sharing)')
    .option('--num-shared <S>', 'shared superpatches per window (N1 = patches - 4S keep their own token)', nonNegInt('--num-shared'))
    .option('--reduction <r>', 'token reduction in (0, 0.75] instead of --num-shared: S = round(r * patches / 3)', positiveFloat('--reduction'))
    .option('--policy-width <w>', 'channel multiplier of the policy network (1 = EfficientNet-Lite0)', positiveFloat('--policy-width'))
    .option('--seed <n>', 'initialisation seed', nonNegInt('--seed'), 0)
    .option('--d-model <n>', 'custom backbone: token width', posInt('--d-model'))
    .option('--depth <n>', 'custom backbone: encoder layers', posInt('--depth'))
    .option('--heads <n>', 'custom backbone: attention heads (default d_model/64, at least 1)', posInt('--heads'))
    .option('--decoder-layers <n>', 'mask-transformer decoder layers', posInt('--decoder-layers'), 2)
    .requiredOption('--out <file>', 'checkpoint to write (.safetensors)')
    .action(action(runInit));
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
  let S = o.numShared ?? (o.reduction !== undefined ? sharedForReduction(crop, crop, patch, o.reduction) : undefined);
  const policy = parsePolicy(o.policy) ?? (S ? 'policy_net' : 'no_sharing');
  if (policy === 'no_sharing') {
    if (S) throw new CtsError(`--policy no_sharing conflicts with a budget of ${S} shared superpatches`);
    S = 0;
    if (crop % patch) throw new CtsError(`--crop-size ${crop} must be a multiple of the ${patch}px patch`);
  } else {
    if (!S) throw new CtsError(`the ${policy} policy needs a budget: --num-shared S (S > 0) or --reduction R`);
    tokenBudget(crop, crop, patch, S);
  }
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
  try {
    await mkdir(dirname(o.out), { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create the folder of ${o.out}: ${describeFsError(e)}`);
  }
  await saveCheckpoint(o.out, ckpt);
  const params = [...weights.values()].reduce((a, t) => a + t.data.length, 0);
  const tokens = (crop / patch) ** 2;
  process.stdout.write(
    `wrote ${o.out}: ${config.backbone} (${config.d_model}x${config.n_layers}), ${config.decoder} decoder, ${classes.length} classes` +
      `${o.dataset ? ` (${o.dataset})` : ''}, crop ${crop}, ${(params / 1e6).toFixed(2)}M parameters, random weights (seed ${o.seed}); ` +
      `policy ${policy}${S ? `, ${S} shared superpatches: ${tokens - 3 * S} tokens per window instead of ${tokens}` : ''}\n`,
  );
}

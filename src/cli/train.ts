// `cts-seg train` and `cts-seg train-policy`: flags mirror the official scripts; a JSON config file
// and named presets are merged underneath (preset < file < flags) and validated with zod.
import type { Command } from 'commander';
import { readConfigFile, resolveTrainConfig, TRAIN_PRESETS } from '../train/config.js';
import { trainSegmenter } from '../train/trainer.js';
import { resolvePolicyConfig, trainPolicy } from '../train/policy_trainer.js';
import { action } from './util.js';
import { CtsError } from '../base/errors.js';

/** Flag name -> config key for `train` (values parsed as numbers where the schema wants numbers). */
const TRAIN_FLAGS: Record<string, [string, 'string' | 'number' | 'bool']> = {
  dataset: ['dataset', 'string'], dataRoot: ['data_root', 'string'], backbone: ['backbone', 'string'], decoder: ['decoder', 'string'],
  decoderLayers: ['decoder_layers', 'number'], policyMethod: ['policy_method', 'string'], numTokensNotshared: ['num_tokens_notshared', 'number'],
  numTokensShared: ['num_tokens_shared', 'number'], policynetCkpt: ['policynet_ckpt', 'string'], policyBn: ['policy_bn', 'string'],
  policyWidth: ['policy_width', 'number'], cropSize: ['crop_size', 'number'], batchSize: ['batch_size', 'number'], epochs: ['epochs', 'number'],
  iterations: ['iterations', 'number'], optimizer: ['optimizer', 'string'], learningRate: ['learning_rate', 'number'], minLr: ['min_lr', 'number'],
  warmupIter: ['warmup_iter', 'number'], weightDecay: ['weight_decay', 'number'], momentum: ['momentum', 'number'], dropPath: ['drop_path', 'number'],
  dropout: ['dropout', 'number'], decoderDropout: ['decoder_dropout', 'number'], pretrained: ['pretrained', 'string'], evalEvery: ['eval_every', 'number'],
  evalLimit: ['eval_limit', 'number'], logEvery: ['log_every', 'number'], checkpointEvery: ['checkpoint_every', 'number'], seed: ['seed', 'number'],
  workers: ['workers', 'number'], threads: ['threads', 'number'], provider: ['provider', 'string'], outDir: ['out_dir', 'string'],
  photometric: ['photometric', 'bool'],
};

/** Converts commander's options to config keys; numbers stay strings when malformed so zod names them. */
function toConfig(opts: Record<string, unknown>, table: Record<string, [string, 'string' | 'number' | 'bool']>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, [key, kind]] of Object.entries(table)) {
    const v = opts[flag];
    if (v === undefined) continue;
    out[key] = kind === 'number' && typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** Parses `k=v,k=v` architecture overrides into numbers (CtsError naming a malformed pair). */
function parseModelOverrides(s: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of s.split(',').filter(Boolean)) {
    const m = /^([a-z_]+)=(\d+(?:\.\d+)?)$/.exec(part.trim());
    if (!m) throw new CtsError(`--model expects key=number pairs separated by commas, got '${part}'`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Registers `train` and `train-policy`. */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train Segmenter with or without content-aware token sharing (flags mirror the official segm/train.py)')
    .option('--preset <name>', `named recipe: ${Object.keys(TRAIN_PRESETS).join(', ')}`)
    .option('--config <file>', 'JSON file with config keys (snake_case, as the flags); flags override it')
    .option('--dataset <name>', 'ade20k, pcontext, cityscapes, camvid or folder')
    .option('--data-root <dir>', 'dataset folder (see docs/DATASETS.md)')
    .option('--backbone <name>', 'vit_tiny_patch16_384 | vit_small_patch16_384 | vit_base_patch16_384 | vit_large_patch16_384 (or vit-ti/s/b/l, custom)')
    .option('--model <k=v,...>', 'architecture overrides, e.g. d_model=192,n_layers=12,n_heads=3 (needed for --backbone custom)')
    .option('--decoder <kind>', 'mask_transformer (default) or linear')
    .option('--decoder-layers <n>', 'mask-transformer depth (default 2)')
    .option('--policy-method <m>', 'policy_net (default), no_sharing, oracle (ground-truth uniformity) or random')
    .option('--num-tokens-notshared <N1>', 'patches keeping their own token; must equal (crop/16)^2 - 4*S')
    .option('--num-tokens-shared <S>', 'shared superpatches per image (e.g. 103 at 512: 30% fewer tokens)')
    .option('--policynet-ckpt <file>', 'trained policy network (from train-policy); required for policy_net; a missing or mismatched file is an error')
    .option('--policy-bn <mode>', 'policy-net BatchNorm during training: eval (frozen, default) or train (as the official code)')
    .option('--policy-width <w>', 'channel multiplier of the policy net checkpoint (default: read from the file)')
    .option('--crop-size <px>', 'training crop (square); also the sliding window at evaluation')
    .option('--batch-size <n>', 'images per step (default 8)')
    .option('--epochs <n>', 'epochs (total steps = epochs * floor(train images / batch))')
    .option('--iterations <n>', 'total steps instead of epochs')
    .option('--optimizer <name>', 'sgd (Nesterov, momentum 0.9; default) or adamw')
    .option('--learning-rate <lr>', 'base learning rate (default 1e-3)')
    .option('--min-lr <lr>', 'floor of the polynomial schedule (default 1e-5)')
    .option('--warmup-iter <n>', 'linear warm-up steps (default 0)')
    .option('--weight-decay <wd>', 'weight decay, not on biases, norms, pos_embed, cls_token, cls_emb (default 0)')
    .option('--momentum <m>', 'SGD momentum (default 0.9)')
    .option('--drop-path <p>', 'encoder stochastic depth, linearly increasing to p (default 0.1)')
    .option('--dropout <p>', 'encoder dropout (default 0)')
    .option('--decoder-dropout <p>', 'mask-transformer dropout (default 0.1)')
    .option('--pretrained <file>', 'initial encoder weights: .safetensors (cts-seg names), AugReg .npz or a PyTorch .pth')
    .option('--no-photometric', 'skip the photometric distortion')
    .option('--eval-every <n>', 'evaluate on the val split every n steps and keep best.safetensors')
    .option('--eval-limit <n>', 'evaluate on the first n val images only')
    .option('--log-every <n>', 'steps between log.jsonl lines (default 10)')
    .option('--checkpoint-every <n>', 'steps between checkpoints (default: eval-every, else 500)')
    .option('--seed <n>', 'seed of initialisation, data order, augmentation and dropout (default 0)')
    .option('--workers <n>', 'data-loading worker threads (default cores-1)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: all cores)')
    .option('--provider <p>', 'cpu (default) or webgpu')
    .option('--out-dir <dir>', 'run folder: model.safetensors, best.safetensors, checkpoints/, log.jsonl, config.json')
    .option('--no-resume', 'refuse to continue a run found in --out-dir (default: resume it exactly)')
    .action(action(async (opts: Record<string, unknown>) => {
      const file = opts.config ? await readConfigFile(String(opts.config)) : {};
      const flags = toConfig(opts, TRAIN_FLAGS);
      if (typeof opts.model === 'string') flags.model = parseModelOverrides(opts.model);
      if (opts.photometric === true) delete flags.photometric; // commander's default for --no-photometric
      const cfg = resolveTrainConfig(opts.preset as string | undefined, file, flags);
      const r = await trainSegmenter(cfg, { resume: opts.resume !== false });
      const best = r.best ? `, best ${r.best.metric} ${(100 * r.best.value).toFixed(2)} at step ${r.best.step}` : '';
      process.stdout.write(`trained ${r.step}/${r.totalSteps} steps in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(2)} img/s), last loss ${r.lastLoss.toFixed(4)}${best}; model: ${r.modelPath}\n`);
    }));

  program
    .command('train-policy')
    .description('train the CTS policy network (EfficientNet-Lite0 + 1x1 head) to predict which 32x32 superpatches hold one class')
    .option('--config <file>', 'JSON file with config keys; flags override it')
    .option('--dataset <name>', 'ade20k, pcontext, cityscapes, camvid or folder')
    .option('--data-root <dir>', 'dataset folder')
    .option('--iterations <n>', 'optimizer steps (default 50000, as the official script)')
    .option('--batch-size <n>', 'images per step (default 8)')
    .option('--learning-rate <lr>', 'AdamW learning rate, constant (default 5e-5)')
    .option('--weight-decay <wd>', 'AdamW weight decay (default 1e-3)')
    .option('--width <w>', 'channel multiplier: 1 = EfficientNet-Lite0 (default); smaller is cheaper')
    .option('--crop-size <px>', 'crop for folder datasets (multiple of 32); the paper datasets use their official pipeline')
    .option('--eval-every <n>', 'steps between val cell-accuracy evaluations (default 10000)')
    .option('--eval-limit <n>', 'evaluate on the first n val images only')
    .option('--log-every <n>', 'steps between log.jsonl lines (default 50)')
    .option('--seed <n>', 'seed (default 0)')
    .option('--workers <n>', 'data-loading worker threads')
    .option('--threads <n>', 'ONNX Runtime intra-op threads')
    .option('--out-dir <dir>', 'folder for policy_last.safetensors (resumable) and policy_best.safetensors')
    .action(action(async (opts: Record<string, unknown>) => {
      const file = opts.config ? await readConfigFile(String(opts.config)) : {};
      const table: Record<string, [string, 'string' | 'number' | 'bool']> = {
        dataset: ['dataset', 'string'], dataRoot: ['data_root', 'string'], iterations: ['iterations', 'number'], batchSize: ['batch_size', 'number'],
        learningRate: ['learning_rate', 'number'], weightDecay: ['weight_decay', 'number'], width: ['width', 'number'], cropSize: ['crop_size', 'number'],
        evalEvery: ['eval_every', 'number'], evalLimit: ['eval_limit', 'number'], logEvery: ['log_every', 'number'], seed: ['seed', 'number'],
        workers: ['workers', 'number'], threads: ['threads', 'number'], outDir: ['out_dir', 'string'],
      };
      const cfg = resolvePolicyConfig({ ...file, ...toConfig(opts, table) });
      const r = await trainPolicy(cfg);
      const best = r.bestPath ? `; best cell accuracy ${(100 * r.bestAccuracy!).toFixed(2)}% in ${r.bestPath}` : '';
      process.stdout.write(`policy network trained ${r.step} steps, last loss ${r.lastLoss.toFixed(4)}; last: ${r.lastPath}${best}\n`);
    }));
}

// `cts-seg train` and `cts-seg train-policy`: flags mirror the official scripts; a JSON config file
// and named presets are merged underneath (preset < file < flags) and validated with zod.
import type { Command } from 'commander';
import { readConfigFile, resolveTrainConfig, TRAIN_PRESETS } from '../train/config.js';
import { pretrainedFile } from './model_file.js';
import { trainSegmenter } from '../train/trainer.js';
import { resolvePolicyConfig, trainPolicy } from '../train/policy_trainer.js';
import { action } from './util.js';
import { reportInterrupted, withInterrupts } from './interrupt.js';
import { cropSizeOption, numSharedOption, outOption, policyOption, policyWidthOption, providerOption, seedOption, threadsOption } from './options.js';
import { CtsError } from '../base/errors.js';

/**
 * One flag of `train` or `train-policy` and the config key it sets. A flag is declared here once:
 * commander's option and the flag -> key table both derive from it (the key's type and default are
 * the zod schema's, src/train/config.ts). `add` registers a flag shared with other commands through
 * cli/options.ts; otherwise `flags` and `help` declare a train-only one.
 */
interface TrainFlag {
  key: string;
  flags?: string;
  help?: string;
  add?: (cmd: Command) => Command;
}

type FlagTable = Map<string, { key: string; raw: boolean }>;

/** Adds the flags to `cmd`; returns commander attribute -> config key (`raw`: a string to convert). */
function addFlags(cmd: Command, flags: readonly TrainFlag[]): FlagTable {
  const table: FlagTable = new Map();
  for (const f of flags) {
    const before = cmd.options.length;
    if (f.add) f.add(cmd);
    else cmd.option(f.flags!, f.help!);
    // the first option added is the canonical one (aliases follow it and share its attribute)
    table.set(cmd.options[before]!.attributeName(), { key: f.key, raw: !f.add });
  }
  return table;
}

/** Converts commander's options to config keys; raw numbers stay strings when malformed so zod names them. */
function toConfig(opts: Record<string, unknown>, table: FlagTable): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [attr, { key, raw }] of table) {
    const v = opts[attr];
    if (v === undefined) continue;
    out[key] = raw && typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  }
  return out;
}

const RUN_FOLDER = 'run folder: model.safetensors, best.safetensors, checkpoints/, log.jsonl, config.json';

/** The flags of `train` (the official segm/train.py spellings are aliases where ours differ). */
const TRAIN_FLAGS: readonly TrainFlag[] = [
  { key: 'dataset', flags: '--dataset <name>', help: 'ade20k, pcontext, cityscapes, camvid or folder' },
  { key: 'data_root', flags: '--data-root <dir>', help: 'dataset folder (see docs/DATASETS.md)' },
  { key: 'backbone', flags: '--backbone <name>', help: 'vit_tiny_patch16_384 | vit_small_patch16_384 | vit_base_patch16_384 | vit_large_patch16_384 (or vit-ti/s/b/l, custom)' },
  { key: 'decoder', flags: '--decoder <kind>', help: 'mask_transformer (default) or linear' },
  { key: 'decoder_layers', flags: '--decoder-layers <n>', help: 'mask-transformer depth (default 2)' },
  { key: 'policy_method', add: (c) => policyOption(c, { note: 'default policy_net', aliases: ['--policy-method'] }) },
  { key: 'num_tokens_notshared', flags: '--num-tokens-notshared <N1>', help: 'patches keeping their own token; must equal (crop/16)^2 - 4*S' },
  { key: 'num_tokens_shared', add: (c) => numSharedOption(c, { note: 'e.g. 103 at 512: 30% fewer tokens', aliases: ['--num-tokens-shared'] }) },
  { key: 'policynet_ckpt', flags: '--policynet-ckpt <file>', help: 'trained policy network (from train-policy); required for policy_net; a missing or mismatched file is an error' },
  { key: 'policy_bn', flags: '--policy-bn <mode>', help: 'policy-net BatchNorm during training: eval (frozen, default) or train (as the official code)' },
  { key: 'policy_width', add: (c) => policyWidthOption(c, { note: 'at most 1 here; default: read from the --policynet-ckpt file' }) },
  { key: 'crop_size', add: (c) => cropSizeOption(c, { square: true, note: 'the training crop; also the sliding window at evaluation', aliases: ['--image-size'] }) },
  { key: 'batch_size', flags: '--batch-size <n>', help: 'images per step (default 8)' },
  { key: 'epochs', flags: '--epochs <n>', help: 'epochs (total steps = epochs * floor(train images / batch))' },
  { key: 'iterations', flags: '--iterations <n>', help: 'total steps instead of epochs' },
  { key: 'optimizer', flags: '--optimizer <name>', help: 'sgd (Nesterov, momentum 0.9; default) or adamw' },
  { key: 'learning_rate', flags: '--learning-rate <lr>', help: 'base learning rate (default 1e-3)' },
  { key: 'min_lr', flags: '--min-lr <lr>', help: 'floor of the polynomial schedule (default 1e-5)' },
  { key: 'warmup_iter', flags: '--warmup-iter <n>', help: 'linear warm-up steps (default 0)' },
  { key: 'weight_decay', flags: '--weight-decay <wd>', help: 'weight decay, not on biases, norms, pos_embed, cls_token, cls_emb (default 0)' },
  { key: 'momentum', flags: '--momentum <m>', help: 'SGD momentum (default 0.9)' },
  { key: 'drop_path', flags: '--drop-path <p>', help: 'encoder stochastic depth, linearly increasing to p (default 0.1)' },
  { key: 'dropout', flags: '--dropout <p>', help: 'encoder dropout (default 0)' },
  { key: 'decoder_dropout', flags: '--decoder-dropout <p>', help: 'mask-transformer dropout (default 0.1)' },
  { key: 'pretrained', flags: '--pretrained <name|file>', help: 'initial encoder weights: a zoo name (cts-seg models; pulled on first use), or a file: .safetensors (cts-seg names), AugReg .npz or a PyTorch .pth' },
  { key: 'photometric', flags: '--no-photometric', help: 'skip the photometric distortion' },
  { key: 'eval_every', flags: '--eval-every <n>', help: 'evaluate on the val split every n steps and keep best.safetensors' },
  { key: 'eval_limit', flags: '--eval-limit <n>', help: 'evaluate on the first n val images only' },
  { key: 'log_every', flags: '--log-every <n>', help: 'steps between log.jsonl lines (default 10)' },
  { key: 'checkpoint_every', flags: '--checkpoint-every <n>', help: 'steps between checkpoints (default: eval-every, else 500)' },
  { key: 'seed', add: (c) => seedOption(c, { note: 'of initialisation, data order, augmentation and dropout; default 0' }) },
  { key: 'workers', flags: '--workers <n>', help: 'data-loading worker threads (default cores-1)' },
  { key: 'threads', add: (c) => threadsOption(c, { note: 'default: all cores' }) },
  { key: 'provider', add: (c) => providerOption(c, { note: 'default cpu', default: undefined }) },
  { key: 'out_dir', add: (c) => outOption(c, RUN_FOLDER, { aliases: ['--out-dir', '--log-dir'] }) },
];

/** The flags of `train-policy`. */
const POLICY_FLAGS: readonly TrainFlag[] = [
  { key: 'dataset', flags: '--dataset <name>', help: 'ade20k, pcontext, cityscapes, camvid or folder' },
  { key: 'data_root', flags: '--data-root <dir>', help: 'dataset folder' },
  { key: 'iterations', flags: '--iterations <n>', help: 'optimizer steps (default 50000, as the official script)' },
  { key: 'batch_size', flags: '--batch-size <n>', help: 'images per step (default 8)' },
  { key: 'learning_rate', flags: '--learning-rate <lr>', help: 'AdamW learning rate, constant (default 5e-5)' },
  { key: 'weight_decay', flags: '--weight-decay <wd>', help: 'AdamW weight decay (default 1e-3)' },
  { key: 'width', add: (c) => policyWidthOption(c, { note: 'at most 1 here; default 1', aliases: ['--width'] }) },
  { key: 'crop_size', add: (c) => cropSizeOption(c, { square: true, note: 'for folder datasets, a multiple of 32; the paper datasets use their official pipeline', aliases: ['--image-size'] }) },
  { key: 'eval_every', flags: '--eval-every <n>', help: 'steps between val cell-accuracy evaluations (default 10000)' },
  { key: 'eval_limit', flags: '--eval-limit <n>', help: 'evaluate on the first n val images only' },
  { key: 'log_every', flags: '--log-every <n>', help: 'steps between log.jsonl lines (default 50)' },
  { key: 'seed', add: (c) => seedOption(c, { note: 'default 0' }) },
  { key: 'workers', flags: '--workers <n>', help: 'data-loading worker threads' },
  { key: 'threads', add: (c) => threadsOption(c) },
  { key: 'out_dir', add: (c) => outOption(c, 'folder for policy_last.safetensors (resumable) and policy_best.safetensors', { aliases: ['--out-dir'] }) },
];

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
  const train = program
    .command('train')
    .description('train Segmenter with or without content-aware token sharing (flags mirror the official segm/train.py)')
    .option('--preset <name>', `named recipe: ${Object.keys(TRAIN_PRESETS).join(', ')}`)
    .option('--config <file>', 'JSON file with config keys (snake_case, as the flags); flags override it')
    .option('--model <k=v,...>', 'architecture overrides, e.g. d_model=192,n_layers=12,n_heads=3 (needed for --backbone custom)');
  const trainTable = addFlags(train, TRAIN_FLAGS);
  train
    .option('--no-resume', 'refuse to continue a run found in --out (default: resume it exactly)')
    .action(action(async (opts: Record<string, unknown>) => {
      const file = opts.config ? await readConfigFile(String(opts.config)) : {};
      const flags = toConfig(opts, trainTable);
      if (typeof opts.model === 'string') flags.model = parseModelOverrides(opts.model);
      if (opts.photometric === true) delete flags.photometric; // commander's default for --no-photometric
      const cfg = resolveTrainConfig(opts.preset as string | undefined, file, flags);
      if (cfg.pretrained) cfg.pretrained = await pretrainedFile(cfg.pretrained);
      const { result: r, stoppedBy } = await withInterrupts('training', (signal) => trainSegmenter(cfg, { resume: opts.resume !== false, signal }));
      if (stoppedBy && r.interrupted) return reportInterrupted(stoppedBy, r.step, r.interrupted.checkpoint);
      const best = r.best ? `, best ${r.best.metric} ${(100 * r.best.value).toFixed(2)} at step ${r.best.step}` : '';
      process.stdout.write(`trained ${r.step}/${r.totalSteps} steps in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(2)} img/s), last loss ${r.lastLoss.toFixed(4)}${best}; model: ${r.modelPath}\n`);
    }));

  const policy = program
    .command('train-policy')
    .description('train the CTS policy network (EfficientNet-Lite0 + 1x1 head) to predict which 32x32 superpatches hold one class')
    .option('--config <file>', 'JSON file with config keys; flags override it');
  const policyTable = addFlags(policy, POLICY_FLAGS);
  policy.action(action(async (opts: Record<string, unknown>) => {
    const file = opts.config ? await readConfigFile(String(opts.config)) : {};
    const cfg = resolvePolicyConfig({ ...file, ...toConfig(opts, policyTable) });
    const { result: r, stoppedBy } = await withInterrupts('policy training', (signal) => trainPolicy(cfg, { signal }));
    if (stoppedBy && r.interrupted) return reportInterrupted(stoppedBy, r.step, r.interrupted.checkpoint);
    const best = r.bestPath ? `; best cell accuracy ${(100 * r.bestAccuracy!).toFixed(2)}% in ${r.bestPath}` : '';
    process.stdout.write(`policy network trained ${r.step} steps, last loss ${r.lastLoss.toFixed(4)}; last: ${r.lastPath}${best}\n`);
  }));
}

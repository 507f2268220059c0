// Training configuration: one zod schema for config files and CLI flags (unknown keys rejected),
// with named presets for the paper's runs and for CamVid. Key names mirror the official flags
// (--num-tokens-notshared -> num_tokens_notshared, ...); cli/train.ts maps each flag to its key.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { zodMessage } from '../models/config.js';
import { POLICY_METHODS, type PolicyMethod } from '../cts/spec.js';
import { PLATFORM_PROVIDERS, type Provider } from '../runtime/providers.js';

/** Schema of a Segmenter training run. */
export const TrainConfigSchema = z
  .strictObject({
    dataset: z.string().min(1),
    data_root: z.string().min(1),
    backbone: z.string().default('vit_tiny_patch16_384'),
    /** Architecture overrides (d_model, n_layers, n_heads, d_ff, decoder_n_heads...), for custom backbones. */
    model: z.record(z.string(), z.number()).default({}),
    decoder: z.enum(['mask_transformer', 'linear']).default('mask_transformer'),
    decoder_layers: z.number().int().positive().default(2),
    policy_method: z.enum(POLICY_METHODS as [PolicyMethod, ...PolicyMethod[]]).default('policy_net'),
    num_tokens_notshared: z.number().int().nonnegative().optional(),
    num_tokens_shared: z.number().int().nonnegative().default(0),
    /** Policy-network checkpoint (required for policy_net; a missing or mismatched file is an error). */
    policynet_ckpt: z.string().optional(),
    /** Policy-net BatchNorm while training Segmenter: eval (frozen, default) or train (the official code). */
    policy_bn: z.enum(['eval', 'train']).default('eval'),
    /** Channel multiplier of the policy net when it is trained here (1 = EfficientNet-Lite0). */
    policy_width: z.number().positive().max(1).optional(),
    crop_size: z.number().int().positive(),
    /** Long-side cap and short-side base of the ratio resize (mmseg img_scale); default per dataset. */
    img_scale: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
    photometric: z.boolean().default(true),
    batch_size: z.number().int().positive().default(8),
    epochs: z.number().int().positive().optional(),
    iterations: z.number().int().positive().optional(),
    optimizer: z.enum(['sgd', 'adamw']).default('sgd'),
    learning_rate: z.number().positive().default(1e-3),
    min_lr: z.number().nonnegative().default(1e-5),
    warmup_iter: z.number().int().nonnegative().default(0),
    lr_schedule: z.enum(['poly', 'constant']).default('poly'),
    momentum: z.number().min(0).max(1).default(0.9),
    weight_decay: z.number().nonnegative().default(0),
    drop_path: z.number().min(0).max(1).default(0.1),
    dropout: z.number().min(0).max(1).default(0),
    decoder_dropout: z.number().min(0).max(1).default(0.1),
    /** Pretrained weights (.safetensors in our names, AugReg .npz, or a .pth state dict). */
    pretrained: z.string().optional(),
    eval_every: z.number().int().positive().optional(),
    eval_limit: z.number().int().positive().optional(),
    eval_split: z.string().default('val'),
    log_every: z.number().int().positive().default(10),
    checkpoint_every: z.number().int().positive().optional(),
    seed: z.number().int().nonnegative().default(0),
    workers: z.number().int().nonnegative().optional(),
    threads: z.number().int().positive().optional(),
    provider: z.enum(PLATFORM_PROVIDERS.node as ['cpu', ...Provider[]]).default('cpu'),
    out_dir: z.string().min(1),
  })
  .refine((c) => c.epochs === undefined || c.iterations === undefined, { message: 'give epochs or iterations, not both' })
  .refine((c) => c.policy_method === 'no_sharing' || c.num_tokens_shared > 0, { message: 'a sharing policy needs num_tokens_shared > 0 (or use policy_method no_sharing)' })
  .refine((c) => c.crop_size % 32 === 0 || c.num_tokens_shared === 0, { message: 'token sharing needs crop_size to be a multiple of 32' });

/** A validated training configuration. */
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

type Preset = Partial<Record<keyof TrainConfig, unknown>>;
const ade = (backbone: string, cts: boolean, crop = 512): Preset => ({
  dataset: 'ade20k', backbone, crop_size: crop, batch_size: 8, epochs: 64, learning_rate: 1e-3, eval_every: 5000,
  ...(cts ? { policy_method: 'policy_net', num_tokens_notshared: crop === 640 ? 960 : 612, num_tokens_shared: crop === 640 ? 160 : 103 } : { policy_method: 'no_sharing' }),
});

/** The paper's runs (spec §5.2, §8) and CamVid recipes, by name. */
export const TRAIN_PRESETS: Record<string, Preset> = {
  'ade20k-vit-ti-baseline': ade('vit_tiny_patch16_384', false),
  'ade20k-vit-ti-cts': ade('vit_tiny_patch16_384', true),
  'ade20k-vit-s-baseline': ade('vit_small_patch16_384', false),
  'ade20k-vit-s-cts': ade('vit_small_patch16_384', true),
  'ade20k-vit-b-baseline': ade('vit_base_patch16_384', false),
  'ade20k-vit-b-cts': ade('vit_base_patch16_384', true),
  'ade20k-vit-l-baseline': ade('vit_large_patch16_384', false, 640),
  'ade20k-vit-l-cts': ade('vit_large_patch16_384', true, 640),
  'pcontext-vit-s-baseline': { dataset: 'pcontext', backbone: 'vit_small_patch16_384', crop_size: 480, batch_size: 16, epochs: 256, learning_rate: 1e-3, policy_method: 'no_sharing' },
  'pcontext-vit-s-cts': { dataset: 'pcontext', backbone: 'vit_small_patch16_384', crop_size: 480, batch_size: 16, epochs: 256, learning_rate: 1e-3, policy_method: 'policy_net', num_tokens_notshared: 540, num_tokens_shared: 90 },
  'cityscapes-vit-s-baseline': { dataset: 'cityscapes', backbone: 'vit_small_patch16_384', crop_size: 768, batch_size: 8, epochs: 216, learning_rate: 1e-2, policy_method: 'no_sharing' },
  'cityscapes-vit-s-cts': { dataset: 'cityscapes', backbone: 'vit_small_patch16_384', crop_size: 768, batch_size: 8, epochs: 216, learning_rate: 1e-2, policy_method: 'policy_net', num_tokens_notshared: 960, num_tokens_shared: 336 },
  // CamVid from scratch on 2 CPU cores: small crop, ViT-Ti, AdamW (SGD from scratch is very slow to start)
  'camvid-vit-ti-baseline': { dataset: 'camvid', backbone: 'vit_tiny_patch16_384', crop_size: 352, batch_size: 4, optimizer: 'adamw', learning_rate: 5e-4, weight_decay: 0.01, policy_method: 'no_sharing', iterations: 2000, eval_every: 2000 },
  'camvid-vit-ti-cts': { dataset: 'camvid', backbone: 'vit_tiny_patch16_384', crop_size: 352, batch_size: 4, optimizer: 'adamw', learning_rate: 5e-4, weight_decay: 0.01, policy_method: 'policy_net', num_tokens_notshared: 292, num_tokens_shared: 48, iterations: 2000, eval_every: 2000 },
};

/** Reads a JSON config file (CtsError naming the file on failure). */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CtsError(`cannot read config ${path}: ${describeFsError(e)}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new CtsError(`config ${path} is not a JSON object: ${(e as Error).message}`);
  }
}

/** Merges preset < config file < CLI flags and validates; unknown keys and bad values are CtsErrors. */
export function resolveTrainConfig(preset: string | undefined, file: Record<string, unknown> = {}, flags: Record<string, unknown> = {}, source = 'training config'): TrainConfig {
  let base: Preset = {};
  if (preset) {
    const p = TRAIN_PRESETS[preset];
    if (!p) throw new CtsError(`unknown preset '${preset}': expected one of ${Object.keys(TRAIN_PRESETS).join(', ')}`);
    base = p;
  }
  // The run length is one choice: a layer that gives epochs or iterations replaces the lower
  // layers' length (a preset's epochs with --iterations is a shorter run, not a conflict).
  let merged: Record<string, unknown> = {};
  for (const layer of [base as Record<string, unknown>, file, flags]) {
    if (layer.epochs !== undefined || layer.iterations !== undefined) {
      const { epochs: _e, iterations: _i, ...rest } = merged;
      merged = rest;
    }
    merged = { ...merged, ...layer };
  }
  const r = TrainConfigSchema.safeParse(merged);
  if (!r.success) throw new CtsError(`${source} is invalid: ${zodMessage(r.error)}`);
  return r.data;
}

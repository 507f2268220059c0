// Model configuration and the named-preset registry (timm-style: create by name + overrides, with
// unknown keys rejected). Validated with zod so config files and CLI flags share one schema.
import { z } from 'zod';
import { CtsError } from '../base/errors.js';

/** Schema of a Segmenter configuration (encoder + decoder), in the official code's vocabulary. */
export const SegmenterConfigSchema = z
  .strictObject({
    /** Backbone name (timm name of a preset, or 'custom'). */
    backbone: z.string().default('custom'),
    patch_size: z.number().int().positive().default(16),
    d_model: z.number().int().positive(),
    n_layers: z.number().int().positive(),
    n_heads: z.number().int().positive(),
    d_ff: z.number().int().positive(),
    /** Grid of the stored `encoder.pos_embed` (rows, cols); resized in-graph for other inputs. */
    pos_grid: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    n_cls: z.number().int().positive(),
    decoder: z.enum(['mask_transformer', 'linear']).default('mask_transformer'),
    decoder_n_layers: z.number().int().positive().default(2),
    decoder_n_heads: z.number().int().positive(),
    decoder_d_ff: z.number().int().positive(),
    layernorm_eps: z.number().positive().default(1e-5),
  })
  .refine((c) => c.d_model % c.n_heads === 0, { message: 'd_model must be divisible by n_heads' })
  .refine((c) => c.d_model % c.decoder_n_heads === 0, { message: 'd_model must be divisible by decoder_n_heads' });

/** A validated Segmenter configuration. */
export type SegmenterConfig = z.infer<typeof SegmenterConfigSchema>;

/** The ViT presets of the paper (segm/config.yml), patch 16, trained at 384 (24x24 pos grid). */
export const VIT_PRESETS: Record<string, { d_model: number; n_layers: number; n_heads: number }> = {
  vit_tiny_patch16_384: { d_model: 192, n_layers: 12, n_heads: 3 },
  vit_small_patch16_384: { d_model: 384, n_layers: 12, n_heads: 6 },
  vit_base_patch16_384: { d_model: 768, n_layers: 12, n_heads: 12 },
  vit_large_patch16_384: { d_model: 1024, n_layers: 24, n_heads: 16 },
};

/** Short aliases accepted wherever a backbone name is. */
export const BACKBONE_ALIASES: Record<string, string> = {
  'vit-ti': 'vit_tiny_patch16_384',
  'vit-s': 'vit_small_patch16_384',
  'vit-b': 'vit_base_patch16_384',
  'vit-l': 'vit_large_patch16_384',
  tiny: 'vit_tiny_patch16_384',
  small: 'vit_small_patch16_384',
  base: 'vit_base_patch16_384',
  large: 'vit_large_patch16_384',
};

/** Formats zod issues on one line: `key: message; key: message`. */
export function zodMessage(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.length ? i.path.join('.') : '(config)'}: ${i.message}`).join('; ');
}

/**
 * Creates a config from a preset name (or 'custom') plus overrides. Derived defaults follow the
 * official factory: MLP 4*D, decoder heads D/64, decoder MLP 4*D, pos grid = crop/patch.
 */
export function createSegmenterConfig(backbone: string, overrides: Record<string, unknown> & { image_size?: number } = {}): SegmenterConfig {
  const name = BACKBONE_ALIASES[backbone] ?? backbone;
  const preset = VIT_PRESETS[name];
  if (!preset && name !== 'custom') {
    throw new CtsError(`unknown backbone '${backbone}': expected one of ${Object.keys(VIT_PRESETS).join(', ')}, ${Object.keys(BACKBONE_ALIASES).join(', ')} or 'custom'`);
  }
  const { image_size, ...rest } = overrides;
  if (!preset && ['d_model', 'n_layers', 'n_heads'].some((k) => rest[k] === undefined)) {
    throw new CtsError(`backbone 'custom' needs d_model, n_layers and n_heads (e.g. model overrides d_model=192,n_layers=12,n_heads=3)`);
  }
  const d = (rest.d_model as number | undefined) ?? preset?.d_model;
  const patch = (rest.patch_size as number | undefined) ?? 16;
  const size = image_size ?? 384;
  const raw: Record<string, unknown> = {
    backbone: name,
    ...(preset ?? {}),
    ...(d !== undefined ? { d_ff: 4 * d, decoder_n_heads: Math.max(1, Math.floor(d / 64)), decoder_d_ff: 4 * d } : {}),
    pos_grid: [Math.floor(size / patch), Math.floor(size / patch)],
    ...rest,
  };
  return parseSegmenterConfig(raw);
}

/** Validates a config object (e.g. read from a checkpoint or a file); throws CtsError listing problems. */
export function parseSegmenterConfig(raw: unknown, source = 'model config'): SegmenterConfig {
  const r = SegmenterConfigSchema.safeParse(raw);
  if (!r.success) throw new CtsError(`${source} is invalid: ${zodMessage(r.error)}`);
  return r.data;
}

// Reading a Segmenter configuration off a state dict in the official naming, so that weights from
// the PyTorch code (or converted from it) load without a separate config file.
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { parseSegmenterConfig, type SegmenterConfig } from './config.js';

/** Overrides for what tensor shapes cannot tell. */
export interface InferConfigOptions {
  /** Encoder attention heads (default: metadata `n_heads`, else d_model/64 as every ViT preset). */
  encoderHeads?: number;
  /** Decoder attention heads (default: metadata `decoder_n_heads`, else d_model/64). */
  decoderHeads?: number;
  /** safetensors `__metadata__` of the file, if any. */
  metadata?: Record<string, string>;
  /** File name for messages. */
  source?: string;
}

function countIndexed(weights: Map<string, HostTensor>, prefix: string): number {
  let n = 0;
  while (weights.has(`${prefix}.${n}.norm1.weight`)) n++;
  return n;
}

/** Infers width, depth, classes, patch size, pos grid and decoder kind from tensor shapes. */
export function inferSegmenterConfig(weights: Map<string, HostTensor>, o: InferConfigOptions = {}): SegmenterConfig {
  const src = o.source ?? 'weights';
  const need = (k: string): number[] => {
    const t = weights.get(k);
    if (!t) throw new CtsError(`${src}: missing tensor '${k}' (expected a Segmenter state dict in the official naming, e.g. encoder.pos_embed, encoder.patch_embed.proj.weight, decoder.*)`);
    return t.shape;
  };
  const meta = o.metadata ?? {};
  if (meta.config) {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(meta.config) as Record<string, unknown>;
    } catch {
      throw new CtsError(`${src}: __metadata__.config is not valid JSON`);
    }
    if (o.encoderHeads) raw.n_heads = o.encoderHeads;
    if (o.decoderHeads) raw.decoder_n_heads = o.decoderHeads;
    return parseSegmenterConfig(raw, `${src} __metadata__.config`);
  }
  const [d, c, ph, pw] = need('encoder.patch_embed.proj.weight') as [number, number, number, number];
  if (c !== 3 || ph !== pw) throw new CtsError(`${src}: encoder.patch_embed.proj.weight is [${need('encoder.patch_embed.proj.weight')}], expected [D,3,P,P]`);
  const pos = need('encoder.pos_embed');
  const n0 = pos[1]! - 1;
  let grid: [number, number];
  if (meta.pos_grid) grid = JSON.parse(meta.pos_grid) as [number, number];
  else {
    const g = Math.round(Math.sqrt(n0));
    if (g * g !== n0) throw new CtsError(`${src}: encoder.pos_embed has ${n0} grid positions, not a square grid; add __metadata__ pos_grid "[rows, cols]"`);
    grid = [g, g];
  }
  const linear = weights.has('decoder.head.weight');
  const layers = countIndexed(weights, 'encoder.blocks');
  const num = (k: string) => (meta[k] !== undefined ? Number(meta[k]) : undefined);
  const raw = {
    backbone: 'custom',
    patch_size: ph,
    d_model: d,
    n_layers: layers,
    n_heads: o.encoderHeads ?? num('n_heads') ?? Math.max(1, Math.floor(d / 64)),
    d_ff: need('encoder.blocks.0.mlp.fc1.weight')[0],
    pos_grid: grid,
    n_cls: linear ? need('decoder.head.weight')[0] : need('decoder.cls_emb')[1],
    decoder: linear ? 'linear' : 'mask_transformer',
    decoder_n_layers: linear ? 2 : countIndexed(weights, 'decoder.blocks'),
    decoder_n_heads: o.decoderHeads ?? num('decoder_n_heads') ?? Math.max(1, Math.floor(d / 64)),
    decoder_d_ff: linear ? 4 * d : need('decoder.blocks.0.mlp.fc1.weight')[0],
    layernorm_eps: num('layernorm_eps') ?? 1e-5,
  };
  return parseSegmenterConfig(raw, src);
}

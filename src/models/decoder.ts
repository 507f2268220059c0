// Segmenter decoders (segm/model/decoder.py) working on per-token features: they return per-token
// class scores [B,N,K]; placing tokens back on the grid is the token layout's job (so CTS can
// unshare there), which keeps the decoder's attention on the reduced token set.
import { concat, div, expand, matmul, mT, mul, reduceSum, slice, sqrt, type Value } from '../graph/index.js';
import { block, blockSpec, layerNorm, layerNormSpec, linear, linearSpec, project, type BlockHooks } from '../nn/layers.js';
import { addParam, type ParamFn, type ParamSpec } from '../nn/params.js';
import type { SegmenterConfig } from './config.js';

/** Adds the decoder's parameters (`decoder.*`) to a spec. */
export function decoderSpec(spec: ParamSpec, cfg: SegmenterConfig): void {
  const d = cfg.d_model, k = cfg.n_cls;
  if (cfg.decoder === 'linear') return linearSpec(spec, 'decoder.head', d, k);
  linearSpec(spec, 'decoder.proj_dec', d, d);
  for (let i = 0; i < cfg.decoder_n_layers; i++) blockSpec(spec, `decoder.blocks.${i}`, d, cfg.decoder_d_ff);
  addParam(spec, 'decoder.cls_emb', [1, k, d]);
  addParam(spec, 'decoder.proj_patch', [d, d]);
  addParam(spec, 'decoder.proj_classes', [d, d]);
  layerNormSpec(spec, 'decoder.decoder_norm', d);
  layerNormSpec(spec, 'decoder.mask_norm', k);
}

/** Row-wise L2 normalisation over the last axis (torch `x / x.norm(dim=-1, keepdim=True)`, no eps). */
function l2normalize(x: Value): Value {
  return div(x, sqrt(reduceSum(mul(x, x), [-1], true)));
}

/**
 * Mask transformer: proj_dec, K class embeddings appended after the N patch tokens, blocks,
 * decoder_norm, then cosine similarity of projected patches and classes, LayerNorm over classes.
 * tokens [B,N,D] (encoder output without CLS) -> masks [B,N,K].
 */
export function maskTransformer(tokens: Value, p: ParamFn, cfg: SegmenterConfig, hooks: BlockHooks = {}): Value {
  const [b, n, d] = tokens.shape as [number, number, number];
  const k = cfg.n_cls;
  let x = concat([linear(tokens, p, 'decoder.proj_dec'), expand(p('decoder.cls_emb'), [b, k, d])], 1);
  for (let i = 0; i < cfg.decoder_n_layers; i++) x = block(x, p, `decoder.blocks.${i}`, cfg.decoder_n_heads, cfg.layernorm_eps, hooks);
  x = layerNorm(x, p, 'decoder.decoder_norm', cfg.layernorm_eps);
  const patches = l2normalize(project(slice(x, [0], [n], [1]), p, 'decoder.proj_patch'));
  const classes = l2normalize(project(slice(x, [n], [n + k], [1]), p, 'decoder.proj_classes'));
  return layerNorm(matmul(patches, mT(classes)), p, 'decoder.mask_norm', cfg.layernorm_eps);
}

/** Linear decoder: per-token logits from `decoder.head`. tokens [B,N,D] -> [B,N,K]. */
export function linearDecoder(tokens: Value, p: ParamFn): Value {
  return linear(tokens, p, 'decoder.head');
}

/** Runs the configured decoder. */
export function decode(tokens: Value, p: ParamFn, cfg: SegmenterConfig, hooks: BlockHooks = {}): Value {
  return cfg.decoder === 'linear' ? linearDecoder(tokens, p) : maskTransformer(tokens, p, cfg, hooks);
}

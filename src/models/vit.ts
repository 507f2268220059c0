// ViT encoder of Segmenter (segm/model/vit.py), official parameter names. The encoder is split
// into pieces (patch embedding, positional grid, transformer) so that a token layout, the plain
// one or CTS's shared one, decides which tokens enter the transformer.
import { add, concat, conv2d, dynamicQuantizeMatMul, expand, interpMatrix, reshape, resizeBilinear, slice, transpose, type Value } from '../graph/index.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { block, blockSpec, layerNorm, layerNormSpec, type BlockHooks } from '../nn/layers.js';
import { addParam, type ParamFn, type ParamSpec } from '../nn/params.js';
import type { SegmenterConfig } from './config.js';

/** Adds the encoder's parameters (`encoder.*`) to a spec. The unused ImageNet head is not included. */
export function vitSpec(spec: ParamSpec, cfg: SegmenterConfig): void {
  const d = cfg.d_model, p = cfg.patch_size;
  addParam(spec, 'encoder.cls_token', [1, 1, d]);
  addParam(spec, 'encoder.pos_embed', [1, 1 + cfg.pos_grid[0] * cfg.pos_grid[1], d]);
  addParam(spec, 'encoder.patch_embed.proj.weight', [d, 3, p, p]);
  addParam(spec, 'encoder.patch_embed.proj.bias', [d]);
  for (let i = 0; i < cfg.n_layers; i++) blockSpec(spec, `encoder.blocks.${i}`, d, cfg.d_ff);
  layerNormSpec(spec, 'encoder.norm', d);
}

/**
 * Patch embedding (Conv2d kernel = stride = patch) of an image [B,3,H,W] -> tokens [B, H/P*W/P, D].
 * In int8 (p.linearInt8) the convolution runs as the product it is: patches flattened in the
 * kernel's (channel, row, column) order, times the int8 kernel [D, 3*P*P].
 */
export function patchEmbed(x: Value, p: ParamFn, cfg: SegmenterConfig): Value {
  const P = cfg.patch_size;
  const qw = p.linearInt8?.('encoder.patch_embed.proj.weight');
  if (qw) {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const gh = Math.floor(h / P), gw = Math.floor(w / P);
    // the convolution ignores a remainder under one patch; so does the product
    const xc = gh * P === h && gw * P === w ? x : slice(x, [0, 0], [gh * P, gw * P], [2, 3]);
    const patches = reshape(transpose(reshape(xc, [b, c, gh, P, gw, P]), [0, 2, 4, 1, 3, 5]), [b, gh * gw, c * P * P]);
    return dynamicQuantizeMatMul(patches, qw.q, qw.scale, p('encoder.patch_embed.proj.bias'));
  }
  const y = conv2d(x, p('encoder.patch_embed.proj.weight'), p('encoder.patch_embed.proj.bias'), { strides: [P, P] });
  const [b, d, gh, gw] = y.shape as [number, number, number, number];
  return transpose(reshape(y, [b, d, gh * gw]), [0, 2, 1]);
}

/**
 * Positional embedding of the patch grid for a (gh, gw) input: [1, gh*gw, D] in row-major order.
 * When the stored grid differs, it is resized in-graph (bilinear, align_corners=False, as timm's
 * resize_pos_embed and the original Segmenter), so gradients still reach the stored parameter.
 */
export function posGrid(p: ParamFn, cfg: SegmenterConfig, gh: number, gw: number): Value {
  const pos = p('encoder.pos_embed');
  const d = cfg.d_model;
  const [h0, w0] = cfg.pos_grid;
  const grid = slice(pos, [1], [1 + h0 * w0], [1]);
  if (h0 === gh && w0 === gw) return grid;
  const img = transpose(reshape(grid, [1, h0, w0, d]), [0, 3, 1, 2]);
  return transpose(reshape(resizeBilinear(img, gh, gw), [1, d, gh * gw]), [0, 2, 1]);
}

/**
 * Prepends CLS and adds positional embeddings: [B,N,D] tokens with [1|B,N,D] positions ->
 * [B,1+N,D], the input of block 0 (`tokens_embedded` in the reference files).
 */
export function embedTokens(patches: Value, pos: Value, p: ParamFn): Value {
  const [b, , d] = patches.shape as [number, number, number];
  const cls = add(p('encoder.cls_token'), slice(p('encoder.pos_embed'), [0], [1], [1]));
  return concat([expand(cls, [b, 1, d]), add(patches, pos)], 1);
}

/** Transformer blocks and the final LayerNorm: [B,1+N,D] -> [B,1+N,D]. */
export function encode(x: Value, p: ParamFn, cfg: SegmenterConfig, hooks: BlockHooks = {}): Value {
  let h = x;
  for (let i = 0; i < cfg.n_layers; i++) h = block(h, p, `encoder.blocks.${i}`, cfg.n_heads, cfg.layernorm_eps, hooks);
  return layerNorm(h, p, 'encoder.norm', cfg.layernorm_eps);
}

/**
 * Host-side positional-embedding resize for converting weights to another grid (timm's
 * resize_pos_embed: CLS kept, grid bilinear with align_corners=False, no antialias).
 * pos [1, 1+h0*w0, D] -> [1, 1+gh*gw, D].
 */
export function resizePosEmbed(pos: HostTensor, from: [number, number], to: [number, number]): HostTensor {
  const [h0, w0] = from, [gh, gw] = to;
  const d = pos.shape[2]!;
  if (pos.shape.length !== 3 || pos.shape[0] !== 1 || pos.shape[1] !== 1 + h0 * w0) {
    throw new CtsError(`pos_embed [${pos.shape.join(',')}] does not hold a ${h0}x${w0} grid plus CLS`);
  }
  const src = pos.data as Float32Array;
  const mh = interpMatrix(h0, gh), mw = interpMatrix(w0, gw);
  const out = new Float32Array((1 + gh * gw) * d);
  out.set(src.subarray(0, d));
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      const o = (1 + i * gw + j) * d;
      for (let a = 0; a < h0; a++) {
        const wa = mh[i * h0 + a]!;
        if (wa === 0) continue;
        for (let b = 0; b < w0; b++) {
          const wt = wa * mw[j * w0 + b]!;
          if (wt === 0) continue;
          const s = (1 + a * w0 + b) * d;
          for (let c = 0; c < d; c++) out[o + c]! += wt * src[s + c]!;
        }
      }
    }
  }
  return { dtype: 'float32', shape: [1, 1 + gh * gw, d], data: out };
}

// Transformer building blocks with the official Segmenter parameter names (segm/model/blocks.py):
// Linear, LayerNorm, multi-head attention with fused qkv, MLP with exact GELU, pre-norm Block.
import { add as addV, attentionCore, dynamicQuantizeMatMul, gelu, gemm, layerNorm as ln, matmul, mT, mul, quantizeSymmetric, reshape, slice, softmax, transpose, type Value } from '../graph/index.js';
import { addParam, type ParamFn, type ParamSpec } from './params.js';

/**
 * PyTorch nn.Linear on the last axis: y = x W^T + b, W [out, in]. In int8 mode (p.linearInt8) the
 * product is DynamicQuantizeMatMul on the per-channel int8 weight, with the bias fused in.
 */
export function linear(x: Value, p: ParamFn, name: string, bias = true): Value {
  const qw = p.linearInt8?.(`${name}.weight`);
  if (qw) return dynamicQuantizeMatMul(x, qw.q, qw.scale, bias ? p(`${name}.bias`) : undefined);
  const w = p(`${name}.weight`);
  const [out, inF] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const x2 = x.rank === 2 ? x : reshape(x, [-1, inF]);
  const y = gemm(x2, w, bias ? p(`${name}.bias`) : undefined, { transB: true });
  return x.rank === 2 ? y : reshape(y, [...lead, out]);
}

/**
 * x @ W for a parameter W [in,out] used as a matrix (the official `x @ self.proj_patch`); in int8
 * mode a DynamicQuantizeMatMul like `linear`, quantized per column of W.
 */
export function project(x: Value, p: ParamFn, name: string): Value {
  const qw = p.linearInt8?.(name, true);
  return qw ? dynamicQuantizeMatMul(x, qw.q, qw.scale) : matmul(x, p(name));
}

/** PyTorch nn.LayerNorm over the last axis with `${name}.weight`/`.bias`. */
export function layerNorm(x: Value, p: ParamFn, name: string, eps = 1e-5): Value {
  return ln(x, p(`${name}.weight`), p(`${name}.bias`), eps);
}

/** Spec entries of a Linear layer. */
export function linearSpec(spec: ParamSpec, name: string, inF: number, outF: number, bias = true): void {
  addParam(spec, `${name}.weight`, [outF, inF]);
  if (bias) addParam(spec, `${name}.bias`, [outF]);
}

/** Spec entries of a LayerNorm. */
export function layerNormSpec(spec: ParamSpec, name: string, d: number): void {
  addParam(spec, `${name}.weight`, [d]);
  addParam(spec, `${name}.bias`, [d]);
}

/**
 * Multi-head self-attention (segm/model/blocks.py Attention): fused qkv Linear(D, 3D), per-head
 * softmax(q k^T * dh^-0.5) v, heads concatenated, proj Linear(D, D). q is scaled before the
 * product (N*dh multiplies instead of N*N); the result is the same up to float rounding.
 * In int8 (p.linearInt8), q·kᵀ runs in int8 too: k quantized symmetrically per tensor, q by the
 * product's own uint8 quantization (2.2x faster than the float product on this CPU, measured; docs/BENCHMARKS.md).
 * attn·v stays float: the probabilities (most near 1/N) do not survive a per-tensor uint8 step.
 */
export function attention(x: Value, p: ParamFn, name: string, heads: number, drop: DropFn = noDrop): Value {
  const [b, n, d] = x.shape as [number, number, number];
  const dh = d / heads;
  if (p.linearInt8) return finish(int8Attention(x, p, name, heads));
  const qkv = transpose(reshape(linear(x, p, `${name}.qkv`), [b, n, 3, heads, dh]), [2, 0, 3, 1, 4]); // 3,B,h,N,dh
  const part = (i: number) => reshape(slice(qkv, [i], [i + 1], [0]), [b, heads, n, dh]);
  const k = part(1), v = part(2);
  const q = mul(part(0), dh ** -0.5);
  // Without dropout on the probabilities (inference, or a rate of 0) the fused core's cheaper
  // backward applies; the probe returns q itself exactly when that site drops nothing.
  const core = drop(q, `${name}.attn_drop`) === q
    ? attentionCore(q, k, v)
    : matmul(drop(softmax(matmul(q, mT(k)), -1), `${name}.attn_drop`), v);
  return finish(core);
  function finish(perHead: Value): Value {
    const o = reshape(transpose(perHead, [0, 2, 1, 3]), [b, n, d]);
    return drop(linear(o, p, `${name}.proj`), `${name}.proj_drop`);
  }
}

/**
 * The int8 attention core, x [B,N,D] -> heads [B,h,N,dh]: q, k and v as three int8 products (the
 * fused qkv weight sliced, so no split of their output), k quantized to int8 per tensor and moved
 * to [B,h,dh,N] as int8 (a quarter of the bytes of a float transpose), q·kᵀ·dh^-0.5 as an int8
 * product (the scale folded into its scalar scale), softmax and attn·v in float.
 */
function int8Attention(x: Value, p: ParamFn, name: string, heads: number): Value {
  const [b, n, d] = x.shape as [number, number, number];
  const dh = d / heads;
  const w = p.linearInt8!(`${name}.qkv.weight`), bias = p(`${name}.qkv.bias`);
  const part = (i: number) => {
    const cols = (v: Value, axis: number) => slice(v, [i * d], [(i + 1) * d], [axis]);
    return reshape(dynamicQuantizeMatMul(x, cols(w.q, 1), cols(w.scale, 0), cols(bias, 0)), [b, n, heads, dh]);
  };
  const [kq, scale] = quantizeSymmetric(part(1));
  const scores = dynamicQuantizeMatMul(transpose(part(0), [0, 2, 1, 3]), transpose(kq, [0, 2, 3, 1]), mul(scale, dh ** -0.5));
  return matmul(softmax(scores, -1), transpose(part(2), [0, 2, 1, 3]));
}

/** MLP: fc1 -> exact GELU -> dropout -> fc2 -> dropout (segm/model/blocks.py FeedForward). */
export function mlp(x: Value, p: ParamFn, name: string, drop: DropFn = noDrop): Value {
  const h = drop(gelu(linear(x, p, `${name}.fc1`)), `${name}.drop1`);
  return drop(linear(h, p, `${name}.fc2`), `${name}.drop2`);
}

/** A dropout site: returns x, possibly with dropout applied (`site` names the location). */
export type DropFn = (x: Value, site: string) => Value;
const noDrop: DropFn = (x) => x;

/** Hooks that training uses to add stochastic layers (dropout, drop-path); identity at inference. */
export interface BlockHooks {
  /** Applied to each residual branch before it is added (drop-path lives here). */
  branch?: (y: Value, blockName: string, which: 'attn' | 'mlp') => Value;
  /** Dropout at the official sites: attention weights, attention projection, after GELU, after fc2. */
  drop?: DropFn;
}

/** Pre-norm transformer block: x + Attn(LN1(x)), then + MLP(LN2(x)). */
export function block(x: Value, p: ParamFn, name: string, heads: number, eps = 1e-5, hooks: BlockHooks = {}): Value {
  const br = hooks.branch ?? ((y: Value) => y);
  const a = br(attention(layerNorm(x, p, `${name}.norm1`, eps), p, `${name}.attn`, heads, hooks.drop), name, 'attn');
  const x1 = addV(x, a);
  return addV(x1, br(mlp(layerNorm(x1, p, `${name}.norm2`, eps), p, `${name}.mlp`, hooks.drop), name, 'mlp'));
}

/** Spec entries of a block of width d with MLP width dFF. */
export function blockSpec(spec: ParamSpec, name: string, d: number, dFF: number): void {
  layerNormSpec(spec, `${name}.norm1`, d);
  linearSpec(spec, `${name}.attn.qkv`, d, 3 * d);
  linearSpec(spec, `${name}.attn.proj`, d, d);
  layerNormSpec(spec, `${name}.norm2`, d);
  linearSpec(spec, `${name}.mlp.fc1`, d, dFF);
  linearSpec(spec, `${name}.mlp.fc2`, dFF, d);
}


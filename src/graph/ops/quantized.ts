// Quantized products for int8 inference. FORWARD-ONLY: these ops have no gradient rule and never
// will. Their outputs are a step function of the float inputs (activations are rounded to uint8 at
// run time), so the derivative is zero almost everywhere and a finite-difference check is
// meaningless; training always runs the float32 graph. Autodiff refuses them (no `grad`, no
// `stopsGradient`), test/graph/coverage.test.ts lists them as forward-only with this reason, and
// their forward is checked against a JS reference of the same quantization (test/graph/quantized.test.ts).
import { GraphError, defineOp, fmt, type Value } from '../ir.js';
import type { HostTensor } from '../../base/tensor.js';

/**
 * y = A·B with B int8 [..., K, N] and scales b_scale (one per column [N], or one scalar []) (symmetric,
 * no zero point), A float32 [..., M, K] quantized to uint8 per tensor at run time, plus an optional
 * bias [N]; batch dimensions broadcast as in MatMul. ONNX Runtime's contrib op
 * `com.microsoft.DynamicQuantizeMatMul`. Why that op and not DynamicQuantizeLinear + MatMulInteger
 * + Mul: one kernel (MLAS's U8S8 GEMM with the scaling fused into its output stage), and it is built
 * into onnxruntime-node and onnxruntime-web's wasm alike (both binaries carry it). B is a constant
 * weight (Linear layers) or a tensor quantized in the graph (quantizeSymmetric: attention keys).
 */
export function dynamicQuantizeMatMul(a: Value, b: Value, bScale: Value, bias?: Value): Value {
  return a.graph.apply1('DynamicQuantizeMatMul', bias ? [a, b, bScale, bias] : [a, b, bScale]);
}

defineOp('DynamicQuantizeMatMul', {
  infer: ([a, b, s, bias]) => {
    if (a!.dtype !== 'float32' || a!.rank < 2) throw new GraphError('A must be float32 of rank >= 2');
    if (b!.dtype !== 'int8' || b!.rank < 2) throw new GraphError('B must be an int8 matrix [..., K, N]');
    const [k, n] = b!.shape.slice(-2) as [number, number];
    if (a!.shape[a!.rank - 1] !== k) throw new GraphError(`inner dimensions differ: ${fmt(a!.shape)} @ ${fmt(b!.shape)}`);
    if (s!.dtype !== 'float32' || !(s!.rank === 0 || (s!.rank === 1 && s!.shape[0] === n))) throw new GraphError(`b_scale must be float32 [${n}] or a scalar, got ${s}`);
    if (bias && (bias.dtype !== 'float32' || bias.rank !== 1 || bias.shape[0] !== n)) throw new GraphError(`bias must be float32 [${n}], got ${bias}`);
    const ba = a!.shape.slice(0, -2), bb = b!.shape.slice(0, -2);
    const rank = Math.max(ba.length, bb.length);
    const batch: number[] = [];
    for (let i = 0; i < rank; i++) {
      const x = ba[ba.length - rank + i] ?? 1, y = bb[bb.length - rank + i] ?? 1;
      if (x !== y && x !== 1 && y !== 1) throw new GraphError(`batch dimensions do not broadcast: ${fmt(a!.shape)} @ ${fmt(b!.shape)}`);
      batch.push(Math.max(x, y));
    }
    return [{ shape: [...batch, a!.shape[a!.rank - 2]!, n], dtype: 'float32' }];
  },
  emit: (node, ctx, outs) => {
    const [a, b, s, bias] = node.inputs.map((v) => ctx.name(v));
    // inputs: A, B, b_scale, b_zero_point (omitted: symmetric weights), bias
    ctx.node('DynamicQuantizeMatMul', bias ? [a!, b!, s!, '', bias] : [a!, b!, s!], outs, {}, 'com.microsoft');
  },
});

/**
 * Symmetric per-tensor int8 quantization at run time: scale = max|x| / 127 (a scalar), q = x / scale
 * rounded half to even and saturated, as ONNX QuantizeLinear does. Returns [q int8 (x's shape),
 * scale float32 []]. An all-zero x gets a tiny scale instead of 0 (QuantizeLinear divides by it).
 * For operands that are activations on both sides of a product (attention's keys), where no weight
 * is known in advance; the other operand goes through DynamicQuantizeMatMul's own quantization.
 */
export function quantizeSymmetric(x: Value): [Value, Value] {
  const [q, s] = x.graph.apply('QuantizeSymmetric', [x]);
  return [q!, s!];
}

defineOp('QuantizeSymmetric', {
  infer: ([x]) => {
    if (x!.dtype !== 'float32') throw new GraphError(`x must be float32, got ${x}`);
    return [{ shape: [...x!.shape], dtype: 'int8' }, { shape: [], dtype: 'float32' }];
  },
  emit: (node, ctx, [q, s]) => {
    const x = ctx.name(node.inputs[0]!);
    const [a] = ctx.node('Abs', [x], 1);
    const [m] = ctx.node('ReduceMax', [a!], 1, { keepdims: { i: 0 } });
    const [d] = ctx.node('Div', [m!, ctx.constant({ dtype: 'float32', shape: [], data: new Float32Array([127]) })], 1);
    ctx.node('Max', [d!, ctx.constant({ dtype: 'float32', shape: [], data: new Float32Array([1e-30]) })], [s!]);
    ctx.node('QuantizeLinear', [x, s!, ctx.constant({ dtype: 'int8', shape: [], data: new Int8Array(1) })], [q!]);
  },
});

/** A Linear weight quantized for dynamicQuantizeMatMul: int8 [in,out] (transposed) and scales [out]. */
export interface QuantizedWeight {
  q: HostTensor;
  scale: HostTensor;
}

/**
 * Per-output-channel symmetric int8 quantization of a PyTorch Linear weight W [out,in] (float32):
 * scale_o = max|W[o,:]| / 127, q = round(W / scale_o) in [-127, 127], stored transposed [in,out] as
 * the op's B. -128 is never used, so the representable range is symmetric; an all-zero row gets
 * scale 1 (any scale represents it exactly, and a zero scale would divide by zero). A convolution
 * kernel [out, in, kh, kw] is taken as [out, in*kh*kw] (the patch embedding run as a product).
 */
export function quantizeLinearWeight(w: HostTensor): QuantizedWeight {
  if (w.dtype !== 'float32' || w.shape.length < 2) throw new GraphError(`a Linear weight must be float32 [out,in], got ${w.dtype}${fmt(w.shape)}`);
  const out = w.shape[0]!, inF = w.data.length / out;
  const src = w.data as Float32Array;
  const q = new Int8Array(out * inF);
  const scale = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let m = 0;
    for (let i = 0; i < inF; i++) m = Math.max(m, Math.abs(src[o * inF + i]!));
    const s = m > 0 ? Math.fround(m / 127) : 1;
    scale[o] = s;
    for (let i = 0; i < inF; i++) q[i * out + o] = clamp127(roundHalfAway(src[o * inF + i]! / s));
  }
  return { q: { dtype: 'int8', shape: [inF, out], data: q }, scale: { dtype: 'float32', shape: [out], data: scale } };
}

// Half away from zero, so that w and -w quantize to opposite codes (Math.round rounds -2.5 to -2).
const roundHalfAway = (x: number): number => Math.sign(x) * Math.round(Math.abs(x));
const clamp127 = (x: number): number => Math.max(-127, Math.min(127, x));


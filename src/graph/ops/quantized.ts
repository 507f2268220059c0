// Quantized products for int8 inference. FORWARD-ONLY: these ops have no gradient rule and never
// will. Their outputs are a step function of the float inputs (activations are rounded to uint8 at
// run time), so the derivative is zero almost everywhere and a finite-difference check is
// meaningless; training always runs the float32 graph. Autodiff refuses them (no `grad`, no
// `stopsGradient`), test/graph/coverage.test.ts lists them as forward-only with this reason, and
// their forward is checked against a JS reference of the same quantization (test/graph/quantized.test.ts).
import { GraphError, defineOp, fmt, type Value } from '../ir.js';
import type { HostTensor } from '../../base/tensor.js';

/**
 * y = A·B with B int8 [K,N] and per-column scales [N] (symmetric, no zero point), A float32 [...,M,K]
 * quantized to uint8 per tensor at run time, plus an optional bias [N]: ONNX Runtime's contrib op
 * `com.microsoft.DynamicQuantizeMatMul`. Why that op and not DynamicQuantizeLinear + MatMulInteger
 * + Mul: one kernel (MLAS's U8S8 GEMM with the scaling fused into its output stage), and it is built
 * into onnxruntime-node and onnxruntime-web's wasm alike (both binaries carry it).
 */
export function dynamicQuantizeMatMul(a: Value, b: Value, bScale: Value, bias?: Value): Value {
  return a.graph.apply1('DynamicQuantizeMatMul', bias ? [a, b, bScale, bias] : [a, b, bScale]);
}

defineOp('DynamicQuantizeMatMul', {
  infer: ([a, b, s, bias]) => {
    if (a!.dtype !== 'float32' || a!.rank < 2) throw new GraphError('A must be float32 of rank >= 2');
    if (b!.dtype !== 'int8' || b!.rank !== 2) throw new GraphError('B must be a 2-D int8 matrix [K,N]');
    const [k, n] = b!.shape as [number, number];
    if (a!.shape[a!.rank - 1] !== k) throw new GraphError(`inner dimensions differ: ${fmt(a!.shape)} @ ${fmt(b!.shape)}`);
    for (const [v, what] of [[s, 'b_scale'], [bias, 'bias']] as const) {
      if (v && (v.dtype !== 'float32' || v.rank !== 1 || v.shape[0] !== n)) throw new GraphError(`${what} must be float32 [${n}], got ${v}`);
    }
    return [{ shape: [...a!.shape.slice(0, -1), n], dtype: 'float32' }];
  },
  emit: (node, ctx, outs) => {
    const [a, b, s, bias] = node.inputs.map((v) => ctx.name(v));
    // inputs: A, B, b_scale, b_zero_point (omitted: symmetric weights), bias
    ctx.node('DynamicQuantizeMatMul', bias ? [a!, b!, s!, '', bias] : [a!, b!, s!], outs, {}, 'com.microsoft');
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
 * scale 1 (any scale represents it exactly, and a zero scale would divide by zero).
 */
export function quantizeLinearWeight(w: HostTensor): QuantizedWeight {
  if (w.dtype !== 'float32' || w.shape.length !== 2) throw new GraphError(`a Linear weight must be float32 [out,in], got ${w.dtype}${fmt(w.shape)}`);
  const [out, inF] = w.shape as [number, number];
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

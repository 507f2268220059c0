// Neural-network ops: Softmax, LogSoftmax, LayerNormalization, bilinear resize (Conv lives in conv.ts), and the
// composites built from primitives (GELU, 2x2 average pooling). Cross-entropy lives in loss.ts.
import { GraphError, defineOp, normAxis, type DType, type EmitCtx, type Value } from '../ir.js';
import { constant, emitAs, requireFloat, sameDtype } from './util.js';
import { add, emitErfF64, erf, exp, mul, sub } from './elementwise.js';
import { reduceMean, reduceSum, sumToShape } from './reduce.js';
import { expand, reshape } from './shape.js';
import { matmul } from './linalg.js';

/** Softmax along an axis. */
export function softmax(x: Value, axis = -1): Value {
  return x.graph.apply1('Softmax', [x], { axis: normAxis(axis, x.rank) });
}

/** Log-softmax along an axis. */
export function logSoftmax(x: Value, axis = -1): Value {
  return x.graph.apply1('LogSoftmax', [x], { axis: normAxis(axis, x.rank) });
}

/**
 * LayerNorm over the last axis with affine weight and bias (PyTorch nn.LayerNorm semantics,
 * biased variance). The node also outputs mean and 1/std ([..., 1]), which its gradient rule reuses;
 * float32 runs ORT's fused kernel, float64 a decomposition (ORT CPU has no float64 LayerNorm).
 */
export function layerNorm(x: Value, weight: Value, bias: Value, eps = 1e-5): Value {
  return x.graph.apply('LayerNormalization', [x, weight, bias], { eps })[0]!;
}

/**
 * Exact (erf) GELU. One op rather than a composite so that backward keeps only x: the composite's
 * rule stored x/sqrt(2) and erf(.)+1 as well, two more [tokens, 4*dim] tensors per block (~300 MB
 * for a ViT-S training step at 512x512, batch 2). The forward is emitted in the pattern ORT's
 * GeluFusion turns into one Gelu kernel; the backward recomputes erf from x.
 */
export function gelu(x: Value): Value {
  return x.graph.apply1('Gelu', [x]);
}

// d/dx x Phi(x) = Phi(x) + x phi(x), Phi(x) = (1 + erf(x/sqrt 2))/2, phi(x) = e^{-x^2/2}/sqrt(2 pi).
defineOp('Gelu', {
  infer: ([x]) => (requireFloat(x!, 'Gelu input'), [{ shape: [...x!.shape], dtype: x!.dtype }]),
  grad: ({ inputs: [x], gOut: [g] }) => {
    const cdf = add(mul(erf(mul(x!, Math.SQRT1_2)), 0.5), 0.5);
    const xpdf = mul(mul(x!, 1 / Math.sqrt(2 * Math.PI)), exp(mul(mul(x!, x!), -0.5)));
    return [mul(g!, add(cdf, xpdf))];
  },
  emit: (n, ctx, outs) => {
    const x = ctx.name(n.inputs[0]!);
    const f64 = n.inputs[0]!.dtype === 'float64';
    const c = (v: number) => ctx.constant(f64 ? { dtype: 'float64', shape: [], data: Float64Array.of(v) } : { dtype: 'float32', shape: [], data: Float32Array.of(v) });
    const [u] = ctx.node('Div', [x, c(Math.SQRT2)], 1);
    let e: string;
    if (f64) emitErfF64(ctx, u!, (e = `${outs[0]}_erf`));
    else [e] = ctx.node('Erf', [u!], 1) as [string];
    const [a] = ctx.node('Add', [e, c(1)], 1);
    const [m] = ctx.node('Mul', [x, a!], 1);
    ctx.node('Mul', [m!, c(0.5)], outs);
  },
});

export { conv2d, type ConvOptions } from './conv.js';

/** 2x2 average pooling with stride 2 (as reshape + mean, so its gradient is automatic). */
export function avgPool2x2(x: Value): Value {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (x.rank !== 4 || h % 2 || w % 2) throw new GraphError(`avgPool2x2 needs NCHW with even H, W; got ${x}`);
  return reduceMean(reshape(x, [b, c, h / 2, 2, w / 2, 2]), [3, 5]);
}

/**
 * Bilinear resize of the last two axes to (outH, outW), half-pixel centres, border clamp, no
 * antialias: PyTorch's F.interpolate(mode='bilinear', align_corners=False) for up- and downsampling.
 * float32 runs ORT's Resize; float64 and the gradient use the separable form Mh · X · Mwᵀ.
 */
export function resizeBilinear(x: Value, outH: number, outW: number): Value {
  return x.graph.apply1('ResizeBilinear', [x], { outH, outW });
}

defineOp('Softmax', {
  infer: ([x]) => (requireFloat(x!, 'Softmax input'), [{ shape: [...x!.shape], dtype: x!.dtype }]),
  grad: ({ node, outputs: [y], gOut: [g] }) => {
    const axis = node.attrs.axis as number;
    const gy = mul(g!, y!);
    return [sub(gy, mul(y!, reduceSum(gy, [axis], true)))];
  },
  emit: emitAs('Softmax', { axis: 'int' }),
});

defineOp('LogSoftmax', {
  infer: ([x]) => (requireFloat(x!, 'LogSoftmax input'), [{ shape: [...x!.shape], dtype: x!.dtype }]),
  grad: ({ node, outputs: [y], gOut: [g] }) => {
    const axis = node.attrs.axis as number;
    return [sub(g!, mul(exp(y!), reduceSum(g!, [axis], true)))];
  },
  emit: emitAs('LogSoftmax', { axis: 'int' }),
});

defineOp('LayerNormalization', {
  infer: ([x, w, b]) => {
    requireFloat(x!, 'LayerNorm input');
    sameDtype(x!, w!);
    sameDtype(x!, b!);
    const d = x!.shape[x!.rank - 1]!;
    if (w!.rank !== 1 || w!.shape[0] !== d || b!.rank !== 1 || b!.shape[0] !== d) {
      throw new GraphError(`weight ${w} and bias ${b} must be [${d}]`);
    }
    const stat = [...x!.shape.slice(0, -1), 1];
    return [
      { shape: [...x!.shape], dtype: x!.dtype },
      { shape: stat, dtype: x!.dtype },
      { shape: stat, dtype: x!.dtype },
    ];
  },
  // dx = inv (gy w - mean(gy w) - xhat mean(gy w xhat)), dweight = sum(gy xhat), dbias = sum(gy). The
  // per-row means are products with w as a column, and the weight gradient is inv as a row times
  // gy (x - mean): matmuls that only read, so the rule writes 7 token-sized tensors instead of 9.
  // Measured: ~1.3 ms less per LayerNorm of a ViT-S 512x512 batch-2 step (25 of them).
  grad: ({ inputs: [x, w, b], outputs: [, mean, inv], gOut: [gy, gMean, gInv], needs }) => {
    const axis = x!.rank - 1, d = x!.shape[axis]!;
    const xc = sub(x!, mean!);
    const gxc = gy && (needs(0) || needs(1)) ? mul(gy, xc) : undefined;
    const rows = x!.size / d;
    // sum over the last axis of v * w, as [..., 1]
    const dotW = (v: Value) => reshape(matmul(reshape(v, [rows, d]), reshape(w!, [d, 1])), inv!.shape);
    let dx: Value | undefined;
    if (needs(0)) {
      if (gy) {
        const m1 = mul(dotW(gy), 1 / d);
        const m2 = mul(mul(dotW(gxc!), inv!), 1 / d);
        dx = mul(inv!, sub(mul(gy, w!), add(mul(xc, mul(inv!, m2)), m1)));
      }
      // The statistics outputs are differentiable too: dmean/dx = 1/d, dinv/dx = -inv^2 xhat / d.
      if (gInv) {
        const t = mul(mul(gInv, mul(inv!, mul(inv!, inv!))), mul(xc, -1 / d));
        dx = dx ? add(dx, t) : t;
      }
      if (gMean) {
        const t = mul(gMean, 1 / d);
        dx = dx ? add(dx, t) : expand(t, x!.shape);
      }
    }
    return [
      dx ?? null,
      gy && needs(1) ? reshape(matmul(reshape(inv!, [1, rows]), reshape(gxc!, [rows, d])), [d]) : null,
      gy && needs(2) ? sumToShape(gy, b!.shape) : null,
    ];
  },
  // float32 runs ORT's LayerNormalization kernel, except in onnxruntime-web, whose kernel took 0.16 ms
  // for a [161,192] LayerNorm where these nine ops take 0.09 (on the CPU provider the kernel wins:
  // 0.50 against 0.91 ms at [2050,384]). ORT has no float64 kernel.
  emit: (n, ctx, outs) => {
    const [x, w, b] = n.inputs.map((v) => ctx.name(v)) as [string, string, string];
    const eps = n.attrs.eps as number;
    const dtype = n.inputs[0]!.dtype;
    if (dtype === 'float32' && ctx.target !== 'wasm') {
      return void ctx.node('LayerNormalization', [x, w, b], outs, { axis: { i: -1 }, epsilon: { f: eps } });
    }
    const [y, mean, inv] = outs as [string, string, string];
    const last = ctx.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.of(-1n) });
    const keep = { keepdims: { i: 1 } };
    ctx.node('ReduceMean', [x, last], [mean], keep);
    const [xc] = ctx.node('Sub', [x, mean], 1);
    const [sq] = ctx.node('Mul', [xc!, xc!], 1);
    const [v] = ctx.node('ReduceMean', [sq!, last], 1, keep);
    const [ve] = ctx.node('Add', [v!, ctx.constant(dtype === 'float64' ? { dtype, shape: [], data: Float64Array.of(eps) } : { dtype: 'float32', shape: [], data: Float32Array.of(eps) })], 1);
    const [sd] = ctx.node('Sqrt', [ve!], 1);
    ctx.node('Reciprocal', [sd!], [inv]);
    const [xh] = ctx.node('Mul', [xc!, inv], 1);
    const [xw] = ctx.node('Mul', [xh!, w], 1);
    ctx.node('Add', [xw!, b], [y]);
  },
});

/** 1-D interpolation matrix M [out, in] such that y = M x is PyTorch's align_corners=False linear resize. */
export function interpMatrix(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  const scale = nIn / nOut;
  for (let o = 0; o < nOut; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), nIn - 1);
    const i1 = Math.min(i0 + 1, nIn - 1);
    const l1 = src - i0;
    m[o * nIn + i0]! += 1 - l1;
    m[o * nIn + i1]! += l1;
  }
  return m;
}

/**
 * The adjoint of bilinear resizing: the gradient of resizeBilinear(x) w.r.t. x, for an input of
 * spatial size `inHW`. Y = Mh X Mwᵀ gives dX = Mhᵀ G Mw; an axis whose size is unchanged has M = I.
 */
export function resizeBilinearAdjoint(g: Value, inHW: [number, number]): Value {
  const [h, w] = inHW;
  const [oh, ow] = g.shape.slice(-2) as [number, number];
  let d = g;
  if (oh !== h) d = matmul(constant(d.graph, d.dtype, [h, oh], transposed(interpMatrix(h, oh), oh, h)), d);
  if (ow !== w) d = matmul(d, constant(d.graph, d.dtype, [ow, w], interpMatrix(w, ow)));
  return d;
}

/**
 * Input sides up to this size resize as matrix products (the separable form X Mwᵀ, then Mh ·); larger
 * ones run ORT's Resize. The dense matrices cost `in` multiply-adds per output against Resize's fixed
 * ~1 ns: measured on the 2-core machine, 150 classes upsampled x16, 32 -> 512: 0.63 against 1.08 ns
 * per output; 48 -> 768: 0.75 against 1.03; 64 -> 1024: 0.87 against 0.91 (break-even). Segmenter's
 * logits at 512² and 768² crops are 32² and 48²: the final upsampling of every inference graph.
 */
export const MATMUL_RESIZE_MAX_SIDE = 48;

/** Emits a bilinear resize of ONNX value `x` to `sizes` (full output shape) as the node(s) writing `out`. */
export function emitResizeBilinear(ctx: EmitCtx, x: string, inShape: readonly number[], dtype: DType, sizes: readonly number[], out: string): void {
  const [h, w] = inShape.slice(-2) as [number, number];
  // ORT's Resize has no float64 CPU kernel; the matmul form is exact and the same as the gradient's.
  if (dtype === 'float64' || (h <= MATMUL_RESIZE_MAX_SIDE && w <= MATMUL_RESIZE_MAX_SIDE)) {
    const [oh, ow] = sizes.slice(-2) as [number, number];
    const mat = (shape: number[], data: Float64Array) =>
      ctx.constant(dtype === 'float64' ? { dtype, shape, data } : { dtype: 'float32', shape, data: Float32Array.from(data) });
    // W first: the rows are then interpolated last, on [h, ow] slices, which ORT runs faster than one
    // [.., ow]-wide product over all rows (46 against 51-62 ms for 2x150 maps 32 -> 512).
    const rows = oh !== h;
    if (!rows && ow === w) return void ctx.node('Identity', [x], [out]);
    let cur = x;
    if (ow !== w) [cur] = ctx.node('MatMul', [cur, mat([w, ow], transposed(interpMatrix(w, ow), ow, w))], rows ? 1 : [out]) as [string];
    if (!rows) return;
    if (dtype === 'float32' && oh % h === 0) emitRowsBanded(ctx, cur, [...inShape.slice(0, -1), ow], oh / h, out);
    else ctx.node('MatMul', [mat([oh, h], interpMatrix(h, oh)), cur], [out]);
    return;
  }
  ctx.node('Resize', [x, '', '', ctx.constant({ dtype: 'int64', shape: [sizes.length], data: BigInt64Array.from(sizes, BigInt) })], [out], {
    mode: { s: 'linear' },
    coordinate_transformation_mode: { s: 'half_pixel' },
  });
}

/**
 * Rows of a float32 [.., h, W] map upsampled by an integer factor f: output row f*i + p reads only
 * source rows i-1, i and i+1 (half-pixel centres), so the rows are gathered as [.., h, 3, W] (edge
 * rows clamped) and each band of f output rows is one [f, 3] x [3, W] product, its weights the
 * nonzero entries of interpMatrix. The same products and sums as the dense Mh · X (whose other
 * terms are exact zeros), without its h-fold multiply-adds: 2x150 maps 32 -> 512 took 19 instead of
 * 30 ms on the CPU provider, the shipped web model's x16 upsample 0.6 instead of 1.0 ms in wasm.
 */
function emitRowsBanded(ctx: EmitCtx, x: string, shape: readonly number[], f: number, out: string): void {
  const [h, W] = shape.slice(-2) as [number, number];
  const oh = h * f, m = interpMatrix(h, oh);
  const idx = new BigInt64Array(h * 3), wts = new Float32Array(h * f * 3);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < 3; j++) idx[i * 3 + j] = BigInt(Math.min(h - 1, Math.max(0, i + j - 1)));
    for (let p = 0; p < f; p++) {
      const o = i * f + p;
      for (let c = Math.max(0, i - 1); c <= Math.min(h - 1, i + 1); c++) wts[(i * f + p) * 3 + c - i + 1] = m[o * h + c]!;
    }
  }
  const [z] = ctx.node('Gather', [x, ctx.constant({ dtype: 'int64', shape: [h, 3], data: idx })], 1, { axis: { i: shape.length - 2 } });
  const [y] = ctx.node('MatMul', [ctx.constant({ dtype: 'float32', shape: [h, f, 3], data: wts }), z!], 1);
  ctx.node('Reshape', [y!, ctx.constant({ dtype: 'int64', shape: [shape.length], data: BigInt64Array.from([...shape.slice(0, -2), oh, W], BigInt) })], [out]);
}

/** Transpose of a row-major [rows, cols] matrix (float64 interpolation matrices, float32 weights). */
export function transposed<T extends Float32Array | Float64Array>(m: T, rows: number, cols: number): T {
  const t = (m instanceof Float32Array ? new Float32Array(m.length) : new Float64Array(m.length)) as T;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

defineOp('ResizeBilinear', {
  infer: ([x], a) => {
    requireFloat(x!, 'resize input');
    if (x!.rank < 2) throw new GraphError('resize needs rank >= 2');
    const outH = a.outH as number, outW = a.outW as number;
    if (!(outH > 0 && outW > 0)) throw new GraphError(`bad output size ${outH}x${outW}`);
    return [{ shape: [...x!.shape.slice(0, -2), outH, outW], dtype: x!.dtype }];
  },
  grad: ({ inputs: [x], gOut: [g] }) => [resizeBilinearAdjoint(g!, x!.shape.slice(-2) as [number, number])],
  emit: (n, ctx, outs) => {
    const x = n.inputs[0]!;
    emitResizeBilinear(ctx, ctx.name(x), x.shape, x.dtype, n.outputs[0]!.shape, outs[0]!);
  },
});



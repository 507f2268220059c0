// Matrix products: MatMul (batched, NumPy broadcasting of batch dims) and Gemm (2-D, transposes).
// Linear layers use Gemm with transB=1 on PyTorch's [out, in] weights so no transposed copy of the
// weight is ever materialised, in the forward or the backward pass.
import { GraphError, defineOp, fmt, type Value } from '../ir.js';
import { broadcastShapes, emitAs, requireFloat, sameDtype } from './util.js';
import { sumToShape } from './reduce.js';
import { mul } from './elementwise.js';
import { reshape, transpose } from './shape.js';

/** Batched matrix product a[..., m, k] @ b[..., k, n]. */
export function matmul(a: Value, b: Value): Value {
  return a.graph.apply1('MatMul', [a, b]);
}

/** Gemm: alpha * op(A) @ op(B) + beta * C, A and B 2-D; op = transpose when the flag is set. */
export function gemm(a: Value, b: Value, c?: Value, o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {}): Value {
  return a.graph.apply1('Gemm', c ? [a, b, c] : [a, b], {
    transA: o.transA ? 1 : 0,
    transB: o.transB ? 1 : 0,
    alpha: o.alpha ?? 1,
    beta: o.beta ?? 1,
  });
}

/** Swaps the last two axes. */
export function mT(x: Value): Value {
  const perm = [...x.shape.keys()];
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

/**
 * aᵀ b for 2-D a [T, m] and b [T, n] (a weight gradient: T is tokens, m and n features). Why not
 * Gemm(transA=1): MLAS runs transposed-A products 10-25% slower than an explicit transpose followed
 * by a plain product (measured on the ViT-S weight gradients, T = 2050: 78-81 against 87-94 GMAC/s),
 * and ORT's MatmulTransposeFusion folds a plain Transpose feeding MatMul back into transA. Moving a
 * size-1 axis along hides the pattern. The smaller operand is the one transposed.
 */
export function aTb(a: Value, b: Value): Value {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[0] !== b.shape[0]) throw new GraphError(`aTb needs [T, m] and [T, n]; got ${a} and ${b}`);
  const unfusedT = (x: Value) => {
    const [r, c] = x.shape as [number, number];
    return reshape(transpose(reshape(x, [r, 1, c]), [2, 0, 1]), [c, r]);
  };
  return a.shape[1]! <= b.shape[1]! ? matmul(unfusedT(a), b) : transpose(matmul(unfusedT(b), a), [1, 0]);
}

defineOp('MatMul', {
  infer: ([a, b]) => {
    requireFloat(a!, 'MatMul input');
    sameDtype(a!, b!);
    if (a!.rank < 2 || b!.rank < 2) throw new GraphError('inputs must have rank >= 2');
    const [m, k] = a!.shape.slice(-2) as [number, number];
    const [k2, n] = b!.shape.slice(-2) as [number, number];
    if (k !== k2) throw new GraphError(`inner dimensions differ: ${fmt(a!.shape)} @ ${fmt(b!.shape)}`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return [{ shape: [...batch, m, n], dtype: a!.dtype }];
  },
  grad: ({ inputs: [a, b], gOut: [g], needs }) => [
    needs(0) ? sumToShape(matmul(g!, mT(b!)), a!.shape) : null,
    needs(1) ? sumToShape(matmul(mT(a!), g!), b!.shape) : null,
  ],
  emit: emitAs('MatMul'),
});

defineOp('Gemm', {
  infer: ([a, b, c], at) => {
    requireFloat(a!, 'Gemm input');
    sameDtype(a!, b!);
    if (a!.rank !== 2 || b!.rank !== 2) throw new GraphError('Gemm inputs must be 2-D');
    const [m, k] = at.transA ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [k2, n] = at.transB ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (k !== k2) throw new GraphError(`inner dimensions differ (${k} vs ${k2})`);
    if (c) {
      sameDtype(a!, c);
      const s = broadcastShapes(c.shape, [m, n]);
      if (s[0] !== m || s[1] !== n) throw new GraphError(`C ${fmt(c.shape)} does not broadcast to [${m},${n}]`);
    }
    return [{ shape: [m, n], dtype: a!.dtype }];
  },
  grad: ({ node, inputs: [a, b, c], gOut: [g], needs }) => {
    const tA = !!node.attrs.transA, tB = !!node.attrs.transB;
    const alpha = node.attrs.alpha as number, beta = node.attrs.beta as number;
    const scale = (v: Value, s: number) => (s === 1 ? v : mul(v, s));
    const dA = needs(0) ? (tA ? gemm(b!, g!, undefined, { transA: tB, transB: true }) : gemm(g!, b!, undefined, { transB: !tB })) : null;
    const dB = needs(1) ? (tB ? (tA ? gemm(g!, a!, undefined, { transA: true, transB: true }) : aTb(g!, a!)) : (tA ? gemm(a!, g!) : aTb(a!, g!))) : null;
    const dC = c && needs(2) ? sumToShape(scale(g!, beta), c.shape) : null;
    return [dA && scale(dA, alpha), dB && scale(dB, alpha), dC];
  },
  emit: emitAs('Gemm', { transA: 'int', transB: 'int', alpha: 'float', beta: 'float' }),
});

// Scaled-dot-product attention core softmax(q kᵀ) v as one op with a hand-written backward.
// Why: the generic Softmax rule makes four passes over the [B, heads, N, N] probabilities
// (g*y, its row sum, y*sum, the difference), the largest tensors of a ViT step. With the output o at
// hand, the row sums are rowsum(dP * P) = rowsum(dO * o) over only [B, heads, N, dh] (the identity
// FlashAttention uses), leaving two passes: dS = P * (dP - D). Measured: ~70 ms of a 3.3 s ViT-S step.
import { GraphError, defineOp, fmt, type Value } from '../ir.js';
import { requireFloat, sameDtype } from './util.js';
import { mul, sub } from './elementwise.js';
import { reduceSum } from './reduce.js';
import { matmul, mT } from './linalg.js';

/**
 * softmax(q kᵀ, -1) v for q [..., N, d], k [..., M, d], v [..., M, dv] (q already scaled). The
 * probabilities are kept for the backward as the op's second, internal output.
 */
export function attentionCore(q: Value, k: Value, v: Value): Value {
  return q.graph.apply('AttentionCore', [q, k, v])[0]!;
}

defineOp('AttentionCore', {
  infer: ([q, k, v]) => {
    requireFloat(q!, 'attention q');
    sameDtype(q!, k!);
    sameDtype(q!, v!);
    const r = q!.rank;
    const batch = q!.shape.slice(0, -2);
    const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
    if (r < 2 || k!.rank !== r || v!.rank !== r || !same(k!.shape.slice(0, -2), batch) || !same(v!.shape.slice(0, -2), batch)
      || k!.shape[r - 1] !== q!.shape[r - 1] || v!.shape[r - 2] !== k!.shape[r - 2]) {
      throw new GraphError(`q ${fmt(q!.shape)}, k ${fmt(k!.shape)}, v ${fmt(v!.shape)} do not fit [..., N, d], [..., M, d], [..., M, dv]`);
    }
    const n = q!.shape[r - 2]!, m = k!.shape[r - 2]!, dv = v!.shape[r - 1]!;
    return [{ shape: [...batch, n, dv], dtype: q!.dtype }, { shape: [...batch, n, m], dtype: q!.dtype }];
  },
  grad: ({ inputs: [q, k, v], outputs: [o, p], gOut: [gO, gP], needs }) => {
    if (gP) throw new GraphError('AttentionCore: its probabilities output is internal and not differentiable');
    const dS = needs(0) || needs(1) ? mul(p!, sub(matmul(gO!, mT(v!)), reduceSum(mul(gO!, o!), [-1], true))) : undefined;
    return [
      needs(0) ? matmul(dS!, k!) : null,
      needs(1) ? matmul(mT(dS!), q!) : null,
      needs(2) ? matmul(mT(p!), gO!) : null,
    ];
  },
  emit: (n, ctx, outs) => {
    const [q, k, v] = n.inputs.map((x) => ctx.name(x)) as [string, string, string];
    const r = n.inputs[0]!.rank;
    const perm = [...Array(r - 2).keys(), r - 1, r - 2];
    const [kt] = ctx.node('Transpose', [k], 1, { perm: { ints: perm } });
    const [s] = ctx.node('MatMul', [q, kt!], 1);
    ctx.node('Softmax', [s!], [outs[1]!], { axis: { i: -1 } });
    ctx.node('MatMul', [outs[1]!, v], [outs[0]!]);
  },
});

// Content-aware token sharing as graph ops (spec §3, segm/model/efficient.py): top-S superpatch
// selection from policy scores, the shared token sequence, and unsharing after the decoder. All the
// bookkeeping is in-graph (TopK, ScatterElements, Gather), so one graph covers the whole pipeline
// and the token count stays static.
import {
  GraphError, add, avgPool2x2, cast, concat, constant, expand, gather, mul, reshape, scatterElements, slice, softmax, sub, topK, transpose, zeros,
  type Value,
} from '../graph/index.js';
import type { LayoutContext, TokenLayout } from '../models/segmenter.js';
import type { TokenBudget } from './budget.js';

/** Graph values describing one batch's sharing decision. */
export interface SharingPlan {
  /** [B,N1] int64 patch indices (row-major) that keep their own token, ascending. */
  idx1: Value;
  /** [B,S] int64 superpatch indices (row-major) that are shared, ascending. */
  idxS: Value;
  /** [B,sh,sw] uint8, 1 = shared superpatch (`mask_scale2`). */
  maskShared: Value;
  /** [B,gh,gw] uint8, 1 = patch keeps its own token (`mask_scale1`). */
  maskNotShared: Value;
  /** [B,N,3] float32 (scale, row, col) of each token on the patch grid (`policy_code`). */
  policyCode: Value;
}

/** p(share) per superpatch: softmax over the 2 policy classes, channel 1, flattened row-major -> [B, sh*sw]. */
export function shareScores(policyLogits: Value): Value {
  const [b, c, sh, sw] = policyLogits.shape as [number, number, number, number];
  if (c !== 2 || policyLogits.rank !== 4) throw new GraphError(`policy logits must be [B,2,h,w], got ${policyLogits}`);
  return reshape(slice(softmax(policyLogits, 1), [1], [2], [1]), [b, sh * sw]);
}

/** Indices 0..n-1 as a float32 constant (exact below 2^24). */
function iota(like: Value, n: number, dtype: 'float32' | 'int64' = 'float32'): Value {
  return constant(like.graph, dtype, [n], Array.from({ length: n }, (_, i) => i));
}

/** Ascending sort of small non-negative int64 values (exact through float32 below 2^24). */
function sortAscending(idx: Value): Value {
  return cast(topK(cast(idx, 'float32'), idx.shape[idx.rank - 1]!, -1, false)[0], 'int64');
}

/**
 * Chooses the top-S superpatches by score (ties: lower index first, the ONNX TopK rule) and derives
 * the masks, the token order and the token codes. scores [B, sh*sw].
 */
export function planSharing(scores: Value, budget: TokenBudget): SharingPlan {
  const { gh, gw, sh, sw, numShared: S, numNotShared: n1 } = budget;
  const [b] = scores.shape as [number];
  const nb = gh * gw, ns = sh * sw;
  const idxS = sortAscending(topK(scores, S, -1, true)[1]);
  // shared flag per superpatch, then nearest x2 onto the patch grid
  const flag2 = scatterElements(zeros(scores, [b, ns], 'float32'), idxS, expand(constant(scores.graph, 'float32', [1, 1], [1]), [b, S]), 1);
  const grid2 = reshape(flag2, [b, sh, 1, sw, 1]);
  const covered = reshape(expand(grid2, [b, sh, 2, sw, 2]), [b, nb]);
  const keep = sub(1, covered);
  // keep*2nb - index: the N1 kept patches are exactly the top N1, in ascending index order
  const key = sub(mul(keep, 2 * nb), iota(scores, nb));
  const kept = topK(key, n1, -1, true)[1];
  const codes1 = constant(scores.graph, 'float32', [nb, 3], Array.from({ length: nb }, (_, i) => [1, Math.floor(i / gw), i % gw]).flat());
  const codes2 = constant(scores.graph, 'float32', [ns, 3], Array.from({ length: ns }, (_, i) => [2, 2 * Math.floor(i / sw), 2 * (i % sw)]).flat());
  const policyCode = concat([gather(codes1, kept), gather(codes2, idxS)], 1);
  return {
    idx1: kept,
    idxS,
    maskShared: cast(reshape(flag2, [b, sh, sw]), 'uint8'),
    maskNotShared: cast(reshape(keep, [b, gh, gw]), 'uint8'),
    policyCode,
  };
}

/** Rows idx[b, i] of a per-batch table [B, n, D] -> [B, m, D] (one Gather on the flattened table). */
function batchGather(table: Value, idx: Value): Value {
  const [b, n, d] = table.shape as [number, number, number];
  const m = idx.shape[1]!;
  const offsets = constant(idx.graph, 'int64', [b, 1], Array.from({ length: b }, (_, i) => i * n));
  return reshape(gather(reshape(table, [b * n, d]), add(idx, offsets)), [b, m, d]);
}

/** The CTS token layout for a given plan: shared tokens are 2x2-pooled superpatches, appended after the kept patches. */
export function sharingLayout(plan: SharingPlan, budget: TokenBudget): TokenLayout {
  const { gh, gw, sh, sw, numShared: S, numNotShared: n1 } = budget;
  return {
    embed(c: LayoutContext) {
      if (c.gh !== gh || c.gw !== gw) throw new GraphError(`sharing plan is for a ${gh}x${gw} grid, the image gives ${c.gh}x${c.gw}`);
      const d = c.pos.shape[2]!;
      // a superpatch's pixels, 2x2-average-pooled to patch size, through the same patch embedding
      const kept = batchGather(c.embed(c.image), plan.idx1);
      const shared = batchGather(c.embed(avgPool2x2(c.image)), plan.idxS);
      // positions: a kept patch's own, a shared token's the mean of the 4 it covers
      const posImg = reshape(transpose(c.pos, [0, 2, 1]), [1, d, gh, gw]);
      const pos2 = transpose(reshape(avgPool2x2(posImg), [1, d, sh * sw]), [0, 2, 1]);
      const pos = concat([gather(reshape(c.pos, [gh * gw, d]), plan.idx1), gather(reshape(pos2, [sh * sw, d]), plan.idxS)], 1);
      return { patches: concat([kept, shared], 1), pos };
    },
    toGrid(t: Value) {
      const [b, , k] = t.shape as [number, number, number];
      const nb = gh * gw;
      // token index of every grid cell: kept cells from idx1, each shared superpatch's 4 cells from idxS
      const cellsOf = constant(t.graph, 'int64', [sh * sw, 4], Array.from({ length: sh * sw }, (_, s) => {
        const r = 2 * Math.floor(s / sw), col = 2 * (s % sw);
        return [r * gw + col, r * gw + col + 1, (r + 1) * gw + col, (r + 1) * gw + col + 1];
      }).flat());
      let cell2tok = scatterElements(zeros(t, [b, nb], 'int64'), plan.idx1, expand(iota(t, n1, 'int64'), [b, n1]), 1);
      if (S > 0) {
        const cells = reshape(gather(cellsOf, plan.idxS), [b, 4 * S]);
        const tok = reshape(expand(reshape(add(iota(t, S, 'int64'), constant(t.graph, 'int64', [1], [n1])), [1, S, 1]), [b, S, 4]), [b, 4 * S]);
        cell2tok = scatterElements(cell2tok, cells, tok, 1);
      }
      return reshape(transpose(batchGather(t, cell2tok), [0, 2, 1]), [b, k, gh, gw]);
    },
  };
}

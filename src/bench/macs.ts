// Multiply-accumulate counts read off the graph itself (spec §9.3), so the number printed next to a
// timing is the one of the graph that was timed. Hand-written: fvcore (what the paper's lab uses)
// is PyTorch-only, and ORT has no FLOP counter. Convention (fvcore's, as ALGM's `flops.py` uses it):
// one multiply-add of MatMul/Gemm/Conv (and of the attention core's two products) counts 1, a bilinear resize counts 4 per output element,
// element-wise ops, normalisation and indexing count 0.
import { Graph, type Node, type Value } from '../graph/index.js';
import type { SegmenterConfig } from '../models/config.js';
import { checkpointSpec } from '../cts/checkpoint.js';
import { inputParams } from '../nn/params.js';
import { buildCtsSegmenter } from '../cts/segmenter.js';
import { tokenBudget } from '../cts/budget.js';

/** MACs of one IR node by the convention above (0 for ops that do not count). */
export function nodeMacs(n: Node): number {
  const out = n.outputs[0]!;
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  switch (n.op) {
    case 'MatMul': {
      const a = n.inputs[0]!;
      return size(out.shape) * a.shape[a.rank - 1]!;
    }
    case 'Gemm': {
      const a = n.inputs[0]!;
      const k = n.attrs.transA ? a.shape[0]! : a.shape[1]!;
      return size(out.shape) * k;
    }
    case 'Conv': {
      // weight [Cout, Cin/group, kh, kw]: each output element takes Cin/group * kh * kw products
      const [, cg, kh, kw] = n.inputs[1]!.shape as [number, number, number, number];
      return size(out.shape) * cg * kh * kw;
    }
    case 'AttentionCore': {
      // q kᵀ ([.., N, d] x [.., d, M]) then P v ([.., N, M] x [.., M, dv])
      const p = n.outputs[1]!;
      return size(p.shape) * n.inputs[0]!.shape[n.inputs[0]!.rank - 1]! + size(out.shape) * p.shape[p.rank - 1]!;
    }
    case 'ResizeBilinear':
      return 4 * size(out.shape);
    case 'SoftmaxCrossEntropy':
      // the upsampled variant contains the final resize, which the convention counts
      return n.attrs.outHW ? 4 * size(n.outputs[1]!.shape) * n.inputs[0]!.shape[1]! : 0;
    default:
      return 0;
  }
}

/** Nodes that the given values depend on (their producers and everything upstream), by node id. */
export function ancestors(graph: Graph, roots: readonly Value[]): Set<number> {
  const needed = new Set<Value>(roots);
  const keep = new Set<number>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep.add(n.id);
    for (const v of n.inputs) needed.add(v);
  }
  return keep;
}

/** MAC total and per-op totals of the part of a graph that `roots` need. */
export interface MacCount {
  total: number;
  byOp: Record<string, number>;
}

/** Counts the MACs of every node the roots depend on (each node once). */
export function countMacs(graph: Graph, roots: readonly Value[]): MacCount {
  const keep = ancestors(graph, roots);
  const byOp: Record<string, number> = {};
  let total = 0;
  for (const n of graph.nodes) {
    if (!keep.has(n.id)) continue;
    const m = nodeMacs(n);
    if (m === 0) continue;
    byOp[n.op] = (byOp[n.op] ?? 0) + m;
    total += m;
  }
  return { total, byOp };
}

/**
 * Splits a graph's MACs into named parts: each counted node goes to the first part (in the given
 * order) whose root depends on it. Parts listed earlier are upstream, e.g. policy before encoder.
 */
export function attributeMacs(graph: Graph, parts: readonly [string, Value | undefined][]): Record<string, number> {
  const seen = new Set<number>();
  const out: Record<string, number> = {};
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const [name, root] of parts) {
    out[name] = 0;
    if (!root) continue;
    for (const id of ancestors(graph, [root])) {
      if (seen.has(id)) continue;
      seen.add(id);
      out[name] += nodeMacs(byId.get(id)!);
    }
  }
  return out;
}

/** Per-image MACs of Segmenter(+CTS), split as spec §9.3's table. */
export interface SegmenterMacs {
  /** Everything the logits need. */
  total: number;
  /** Policy network (0 without sharing). */
  policy: number;
  /** Patch embedding and transformer blocks. */
  encoder: number;
  /** Decoder up to the per-token class scores on the grid. */
  decoder: number;
  /** The final bilinear upsample to the input size (4 per output element). */
  upsample: number;
  /** Tokens entering the encoder, CLS excluded. */
  tokens: number;
  byOp: Record<string, number>;
}

/** Options of segmenterMacs. */
export interface SegmenterMacsOptions {
  /** Input (height, width); default the config's pos grid times the patch size. */
  size?: [number, number];
  /** Shared superpatches S (default 0). With S > 0 the policy network is in the graph. */
  numShared?: number;
  /** Policy network width multiplier (default 1 = EfficientNet-Lite0). */
  policyWidth?: number;
}

/**
 * Builds the batch-1 graph (parameters as graph inputs, so no weights are allocated) and counts
 * its MACs. Graph construction only: no ORT session, fast even for ViT-L.
 */
export function segmenterMacs(cfg: SegmenterConfig, o: SegmenterMacsOptions = {}): SegmenterMacs {
  const size = o.size ?? [cfg.pos_grid[0] * cfg.patch_size, cfg.pos_grid[1] * cfg.patch_size];
  const S = o.numShared ?? 0;
  if (S > 0) tokenBudget(size[0], size[1], cfg.patch_size, S);
  const g = new Graph();
  const x = g.input('input', [1, 3, size[0], size[1]]);
  const spec = checkpointSpec(cfg, {
    policy: S > 0 ? 'policy_net' : 'no_sharing',
    numShared: S,
    ...(o.policyWidth !== undefined ? { policyWidth: o.policyWidth } : {}),
  });
  const { p } = inputParams(g, spec);
  const out = buildCtsSegmenter(x, p, cfg, {
    numShared: S,
    ...(S > 0 ? { policy: { kind: 'policy_net' as const, bnMode: 'eval' as const, ...(o.policyWidth !== undefined ? { width: o.policyWidth } : {}) } } : {}),
  });
  const parts = attributeMacs(g, [
    ['policy', out.policyLogits],
    ['encoder', out.encoderOut],
    ['decoder', out.masksGrid],
    ['upsample', out.logits],
  ]);
  const { total, byOp } = countMacs(g, [out.logits]);
  return {
    total,
    policy: parts.policy!,
    encoder: parts.encoder!,
    decoder: parts.decoder!,
    upsample: parts.upsample!,
    tokens: out.budget.numTokens,
    byOp,
  };
}

/** MACs in GMAC, rounded to 1e5 MACs (4 decimals) so that tiny models do not print as 0. */
export function toGmac(macs: number): number {
  return Math.round(macs / 1e5) / 1e4;
}

/** A GMAC figure for tables: 2 decimals from 1 GMAC up, 3 significant digits below. */
export function fmtGmac(g: number): string {
  return g >= 1 || g === 0 ? g.toFixed(2) : g.toPrecision(3);
}

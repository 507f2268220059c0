// Multiply-accumulate counts read off the graph itself (spec §9.3), so the number printed next to a
// timing is the one of the graph that was timed. Hand-written: fvcore (what the paper's lab uses)
// is PyTorch-only, and ORT has no FLOP counter. Convention (fvcore's, as ALGM's `flops.py` uses it):
// one multiply-add of MatMul/Gemm/Conv (and of the attention core's two products) counts 1, a bilinear resize counts 4 per output element,
// element-wise ops, normalisation and indexing count 0.
import { liveSet, type Graph, type Node, type Value } from './ir.js';

/** MACs of one IR node by the convention above (0 for ops that do not count). */
export function nodeMacs(n: Node): number {
  const out = n.outputs[0]!;
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  switch (n.op) {
    case 'MatMul': {
      const a = n.inputs[0]!;
      return size(out.shape) * a.shape[a.rank - 1]!;
    }
    case 'DynamicQuantizeMatMul': {
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

/** MAC total and per-op totals of the part of a graph that `roots` need. */
export interface MacCount {
  total: number;
  byOp: Record<string, number>;
}

/** Counts the MACs of every node the roots depend on (each node once). */
export function countMacs(graph: Graph, roots: readonly Value[]): MacCount {
  const keep = liveSet(graph, roots).nodes;
  const byOp: Record<string, number> = {};
  let total = 0;
  for (const n of graph.nodes) {
    if (!keep.has(n)) continue;
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
  const seen = new Set<Node>();
  const out: Record<string, number> = {};
  for (const [name, root] of parts) {
    out[name] = 0;
    if (!root) continue;
    for (const n of liveSet(graph, [root]).nodes) {
      if (seen.has(n)) continue;
      seen.add(n);
      out[name] += nodeMacs(n);
    }
  }
  return out;
}

/** MACs in GMAC, rounded to 1e5 MACs (4 decimals) so that tiny models do not print as 0. */
export function toGmac(macs: number): number {
  return Math.round(macs / 1e5) / 1e4;
}

/** A GMAC figure for tables: 2 decimals from 1 GMAC up, 3 significant digits below. */
export function fmtGmac(g: number): string {
  return g >= 1 || g === 0 ? g.toFixed(2) : g.toPrecision(3);
}

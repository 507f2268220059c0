// Reductions: ReduceSum, ReduceMean, ReduceMax, and the un-broadcast helper used by gradients.
import { GraphError, defineOp, fmt, normAxis, type Graph, type Node, type Value } from '../ir.js';
import { matmul } from './linalg.js';
import { expand, reshape } from './shape.js';
import { cast, div, equal, mul } from './elementwise.js';

function axesOf(x: Value, axes: readonly number[] | undefined): number[] {
  const all = axes === undefined ? [...x.shape.keys()] : axes.map((a) => normAxis(a, x.rank));
  if (new Set(all).size !== all.length) throw new GraphError(`repeated axis in ${fmt(all)}`);
  return [...all].sort((a, b) => a - b);
}

/** Sum over axes (all when omitted). */
export function reduceSum(x: Value, axes?: readonly number[], keepdims = false): Value {
  return x.graph.apply1('ReduceSum', [x], { axes: axesOf(x, axes), keepdims });
}

/** Mean over axes (all when omitted). */
export function reduceMean(x: Value, axes?: readonly number[], keepdims = false): Value {
  return x.graph.apply1('ReduceMean', [x], { axes: axesOf(x, axes), keepdims });
}

/** Max over axes; the gradient goes to the maximal elements, split evenly between ties. */
export function reduceMax(x: Value, axes?: readonly number[], keepdims = false): Value {
  return x.graph.apply1('ReduceMax', [x], { axes: axesOf(x, axes), keepdims });
}

/** Sums a broadcast gradient back to `shape` (the adjoint of NumPy broadcasting). */
export function sumToShape(g: Value, shape: readonly number[]): Value {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const R = axes.reduce((n, a) => n * g.shape[a]!, 1);
  if (axes.length && axes.every((a, i) => a === i) && R >= 64 && (g.dtype === 'float32' || g.dtype === 'float64')) {
    // Sums over leading axes (bias and LayerNorm-affine gradients) as ones[1,R] @ g[R,C]: MLAS reads
    // the rows at full speed, ORT's ReduceSum over axis 0 runs ~1.8x slower (1.18 against 0.65 ms for
    // the [2050, 1536] MLP bias gradient of ViT-S).
    return reshape(matmul(onesRow(g.graph, R, g.dtype), reshape(g, [R, g.shape.slice(axes.length).reduce((n, d) => n * d, 1)])), shape);
  }
  const s = axes.length ? reduceSum(g, axes, true) : g;
  return reshape(s, shape);
}

const ones = new WeakMap<Graph, Map<string, Value>>();

/** A [1, R] constant of ones, one per graph, length and dtype. */
function onesRow(graph: Graph, R: number, dtype: 'float32' | 'float64'): Value {
  let m = ones.get(graph);
  if (!m) ones.set(graph, (m = new Map()));
  const key = `${dtype}:${R}`;
  let v = m.get(key);
  if (!v) m.set(key, (v = graph.constant({ dtype, shape: [1, R], data: dtype === 'float32' ? new Float32Array(R).fill(1) : new Float64Array(R).fill(1) })));
  return v;
}

function reducedShape(x: Value, axes: number[], keepdims: boolean): number[] {
  return keepdims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
}

function keptShape(x: Value, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function emitReduce(op: string) {
  return (n: Node, ctx: Parameters<NonNullable<Parameters<typeof defineOp>[1]['emit']>>[1], outs: string[]) => {
    const axes = n.attrs.axes as number[];
    // Opset 18 reads empty axes as "reduce everything" unless told otherwise; ours means "none".
    ctx.node(op, [ctx.name(n.inputs[0]!), ctx.constant({ dtype: 'int64', shape: [axes.length], data: BigInt64Array.from(axes, BigInt) })], outs, {
      keepdims: { i: n.attrs.keepdims ? 1 : 0 },
      ...(axes.length === 0 ? { noop_with_empty_axes: { i: 1 } } : {}),
    });
  };
}

defineOp('ReduceSum', {
  infer: ([x], a) => [{ shape: reducedShape(x!, a.axes as number[], a.keepdims as boolean), dtype: x!.dtype }],
  grad: ({ node, inputs: [x], gOut: [g] }) => [expand(reshape(g!, keptShape(x!, node.attrs.axes as number[])), x!.shape)],
  emit: emitReduce('ReduceSum'),
});

defineOp('ReduceMean', {
  infer: ([x], a) => [{ shape: reducedShape(x!, a.axes as number[], a.keepdims as boolean), dtype: x!.dtype }],
  grad: ({ node, inputs: [x], gOut: [g] }) => {
    const axes = node.attrs.axes as number[];
    const count = axes.reduce((p, a) => p * x!.shape[a]!, 1);
    return [expand(reshape(mul(g!, 1 / count), keptShape(x!, axes)), x!.shape)];
  },
  emit: emitReduce('ReduceMean'),
});

// Subgradient choice: ties share g equally (like PyTorch's amax), so the rule is symmetric in the
// tied inputs and a max over identical values behaves like a mean.
defineOp('ReduceMax', {
  infer: ([x], a) => [{ shape: reducedShape(x!, a.axes as number[], a.keepdims as boolean), dtype: x!.dtype }],
  grad: ({ node, inputs: [x], outputs: [y], gOut: [g] }) => {
    const axes = node.attrs.axes as number[];
    const kept = keptShape(x!, axes);
    const hit = cast(equal(x!, reshape(y!, kept)), x!.dtype);
    return [mul(hit, div(reshape(g!, kept), reduceSum(hit, axes, true)))];
  },
  emit: emitReduce('ReduceMax'),
});

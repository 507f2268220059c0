// Indexing ops: Gather, GatherElements, GatherND, ScatterND/ScatterElements (add), TopK, ArgMax,
// zeros and StopGradient. Integer index paths carry no gradient; token sharing builds its
// bookkeeping here. Gathers and scatters are each other's adjoints, so their rules are built from
// one another with reduction='add' (duplicate indices must accumulate, not overwrite).
import { GraphError, defineOp, fmt, normAxis, type DType, type Graph, type Value } from '../ir.js';
import { emitAs, sameDtype, typedAttrs } from './util.js';
import { transpose, unsqueeze } from './shape.js';

function requireIndex(v: Value, what: string): void {
  if (v.dtype !== 'int64') throw new GraphError(`${what} must be int64, got ${v}`);
}

/** data.take(indices, axis): output shape data[:axis] + indices + data[axis+1:]. */
export function gather(data: Value, indices: Value, axis = 0): Value {
  return data.graph.apply1('Gather', [data, indices], { axis: normAxis(axis, data.rank) });
}

/** out[i][j]... = data[..., indices[i][j]..., ...] along axis (same rank, ONNX GatherElements). */
export function gatherElements(data: Value, indices: Value, axis: number): Value {
  return data.graph.apply1('GatherElements', [data, indices], { axis: normAxis(axis, data.rank) });
}

/** out[i...] = data[indices[i..., :]] (ONNX GatherND, batch_dims 0): the adjoint of ScatterND-add. */
export function gatherND(data: Value, indices: Value): Value {
  return data.graph.apply1('GatherND', [data, indices]);
}

/**
 * Copy of data with updates written (or added, reduction='add') at indices[..., :] (ONNX ScatterND).
 * With 'none', indices must be unique (ONNX leaves duplicate writes undefined, and the gradient rule
 * assumes every update survives).
 */
export function scatterND(data: Value, indices: Value, updates: Value, reduction: 'none' | 'add' = 'none'): Value {
  return data.graph.apply1('ScatterND', [data, indices, updates], { reduction });
}

/** Copy of data with updates written (or added) along axis at indices (ONNX ScatterElements); unique indices for 'none'. */
export function scatterElements(data: Value, indices: Value, updates: Value, axis: number, reduction: 'none' | 'add' = 'none'): Value {
  return data.graph.apply1('ScatterElements', [data, indices, updates], { axis: normAxis(axis, data.rank), reduction });
}

/** Top-k along an axis: [values, int64 indices]; equal values keep the lower index first (ONNX rule). */
export function topK(x: Value, k: number, axis = -1, largest = true): [Value, Value] {
  const [v, i] = x.graph.apply('TopK', [x], { k, axis: normAxis(axis, x.rank), largest });
  return [v!, i!];
}

/** Index of the maximum along an axis (int64; first occurrence on ties). */
export function argMax(x: Value, axis: number, keepdims = false): Value {
  return x.graph.apply1('ArgMax', [x], { axis: normAxis(axis, x.rank), keepdims });
}

/** A zero tensor made at run time (ConstantOfShape), so big zero buffers are not stored in the model. */
export function zeros(like: Graph | { graph: Graph }, shape: readonly number[], dtype: DType = 'float32'): Value {
  return ('graph' in like ? like.graph : like).apply1('Zeros', [], { shape: [...shape], dtype });
}

/** Identity whose output is treated as a constant by autodiff. */
export function stopGradient(x: Value): Value {
  return x.graph.apply1('StopGradient', [x]);
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(to - from, 0) }, (_, k) => from + k);

defineOp('Gather', {
  infer: ([d, i], a) => {
    requireIndex(i!, 'Gather indices');
    const axis = a.axis as number;
    return [{ shape: [...d!.shape.slice(0, axis), ...i!.shape, ...d!.shape.slice(axis + 1)], dtype: d!.dtype }];
  },
  grad: ({ node, inputs: [d, i], gOut: [g], needs }) => {
    if (!needs(0)) return [null, null];
    const axis = node.attrs.axis as number;
    const idx = unsqueeze(i!, i!.rank);
    if (axis === 0) return [scatterND(zeros(d!, d!.shape, d!.dtype), idx, g!, 'add'), null];
    // ScatterND addresses leading axes only: move the gathered block to the front and back again.
    const gT = transpose(g!, [...range(axis, axis + i!.rank), ...range(0, axis), ...range(axis + i!.rank, g!.rank)]);
    const moved = [d!.shape[axis]!, ...d!.shape.slice(0, axis), ...d!.shape.slice(axis + 1)];
    const s = scatterND(zeros(d!, moved, d!.dtype), idx, gT, 'add');
    return [transpose(s, [...range(1, axis + 1), 0, ...range(axis + 1, d!.rank)]), null];
  },
  emit: emitAs('Gather', { axis: 'int' }),
});

defineOp('GatherElements', {
  infer: ([d, i]) => {
    requireIndex(i!, 'GatherElements indices');
    if (i!.rank !== d!.rank) throw new GraphError(`indices ${i} must have the rank of data ${d}`);
    return [{ shape: [...i!.shape], dtype: d!.dtype }];
  },
  grad: ({ node, inputs: [d, i], gOut: [g], needs }) => [
    needs(0) ? scatterElements(zeros(d!, d!.shape, d!.dtype), i!, g!, node.attrs.axis as number, 'add') : null,
    null,
  ],
  emit: emitAs('GatherElements', { axis: 'int' }),
});

defineOp('GatherND', {
  infer: ([d, i]) => {
    requireIndex(i!, 'GatherND indices');
    const q = i!.shape[i!.rank - 1];
    if (q === undefined || q < 1 || q > d!.rank) throw new GraphError(`last axis of indices ${i} must be in [1, ${d!.rank}]`);
    return [{ shape: [...i!.shape.slice(0, -1), ...d!.shape.slice(q)], dtype: d!.dtype }];
  },
  grad: ({ inputs: [d, i], gOut: [g], needs }) => [needs(0) ? scatterND(zeros(d!, d!.shape, d!.dtype), i!, g!, 'add') : null, null],
  emit: emitAs('GatherND'),
});

// d data: with 'add' every element passes through; with 'none' the overwritten ones do not.
// d updates: each update received the output gradient at its target position.
defineOp('ScatterND', {
  infer: ([d, i, u]) => {
    requireIndex(i!, 'ScatterND indices');
    sameDtype(d!, u!);
    const q = i!.shape[i!.rank - 1];
    if (q === undefined || q < 1 || q > d!.rank) throw new GraphError(`last axis of indices ${i} must be in [1, ${d!.rank}]`);
    const want = [...i!.shape.slice(0, -1), ...d!.shape.slice(q)];
    if (u!.rank !== want.length || u!.shape.some((s, k) => s !== want[k])) throw new GraphError(`updates ${u} must be ${fmt(want)}`);
    return [{ shape: [...d!.shape], dtype: d!.dtype }];
  },
  grad: ({ node, inputs: [, i, u], gOut: [g], needs }) => [
    needs(0) ? (node.attrs.reduction === 'add' ? g! : scatterND(g!, i!, zeros(g!, u!.shape, g!.dtype))) : null,
    null,
    needs(2) ? gatherND(g!, i!) : null,
  ],
  emit: emitAs('ScatterND', { reduction: 'string' }),
});

defineOp('ScatterElements', {
  infer: ([d, i, u]) => {
    requireIndex(i!, 'ScatterElements indices');
    sameDtype(d!, u!);
    if (i!.rank !== d!.rank || u!.rank !== d!.rank || i!.shape.some((s, k) => s !== u!.shape[k])) {
      throw new GraphError(`indices ${i} and updates ${u} must share a shape of the rank of data ${d}`);
    }
    return [{ shape: [...d!.shape], dtype: d!.dtype }];
  },
  grad: ({ node, inputs: [, i, u], gOut: [g], needs }) => {
    const axis = node.attrs.axis as number;
    return [
      needs(0) ? (node.attrs.reduction === 'add' ? g! : scatterElements(g!, i!, zeros(g!, u!.shape, g!.dtype), axis)) : null,
      null,
      needs(2) ? gatherElements(g!, i!, axis) : null,
    ];
  },
  emit: emitAs('ScatterElements', { axis: 'int', reduction: 'string' }),
});

defineOp('TopK', {
  infer: ([x], a) => {
    const axis = a.axis as number, k = a.k as number;
    if (!Number.isInteger(k) || k < 0 || k > x!.shape[axis]!) throw new GraphError(`k=${k} outside [0, ${x!.shape[axis]}]`);
    const shape = [...x!.shape];
    shape[axis] = k;
    return [{ shape, dtype: x!.dtype }, { shape: [...shape], dtype: 'int64' }];
  },
  stopsGradient: true,
  emit: (n, ctx, outs) => {
    const k = ctx.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.of(BigInt(n.attrs.k as number)) });
    ctx.node('TopK', [ctx.name(n.inputs[0]!), k], outs, { axis: { i: n.attrs.axis as number }, largest: { i: n.attrs.largest ? 1 : 0 }, sorted: { i: 1 } });
  },
});

defineOp('ArgMax', {
  infer: ([x], a) => {
    const axis = a.axis as number;
    const shape = a.keepdims ? x!.shape.map((d, i) => (i === axis ? 1 : d)) : x!.shape.filter((_, i) => i !== axis);
    return [{ shape, dtype: 'int64' }];
  },
  stopsGradient: true,
  emit: (n, ctx, outs) => void ctx.node('ArgMax', [ctx.name(n.inputs[0]!)], outs, typedAttrs(n.attrs, { axis: 'int', keepdims: 'int' })),
});

defineOp('Zeros', {
  infer: (_, a) => [{ shape: [...(a.shape as number[])], dtype: a.dtype as DType }],
  emit: (n, ctx, outs) => {
    const s = n.attrs.shape as number[];
    const dtype = n.attrs.dtype as DType;
    const value = dtype === 'float64' ? Float64Array.of(0) : dtype === 'int64' ? BigInt64Array.of(0n) : dtype === 'int32' ? Int32Array.of(0) : dtype === 'float32' ? Float32Array.of(0) : Uint8Array.of(0);
    ctx.node('ConstantOfShape', [ctx.constant({ dtype: 'int64', shape: [s.length], data: BigInt64Array.from(s, BigInt) })], outs, {
      value: { t: { dtype, shape: [1], data: value } },
    });
  },
});

defineOp('StopGradient', {
  infer: ([x]) => [{ shape: [...x!.shape], dtype: x!.dtype }],
  stopsGradient: true,
  emit: emitAs('Identity'),
});



// Shape and layout ops: Reshape, Transpose, Concat, Slice, Expand, Pad, Identity.
// Static attributes (target shape, slice bounds, pads) are emitted as int64 initializers because
// opset >= 13 takes them as inputs; keeping them static lets ORT constant-fold and plan memory.
import { GraphError, defineOp, fmt, normAxis, sizeOf, type Value } from '../ir.js';
import { emitAs } from './util.js';
import { sumToShape } from './reduce.js';

/** Reshape to a static shape; one -1 is inferred. */
export function reshape(x: Value, shape: readonly number[]): Value {
  return x.graph.apply1('Reshape', [x], { shape: [...shape] });
}

/** Permute axes (default: reverse). */
export function transpose(x: Value, perm?: readonly number[]): Value {
  return x.graph.apply1('Transpose', [x], { perm: perm ? [...perm] : [...x.shape.keys()].reverse() });
}

/** Concatenate along an axis. */
export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw new GraphError('concat of no values');
  return xs[0]!.graph.apply1('Concat', xs, { axis });
}

/** Static slice; `ends` are clamped to the dimension; steps must be positive. */
export function slice(x: Value, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): Value {
  return x.graph.apply1('Slice', [x], {
    starts: [...starts],
    ends: [...ends],
    axes: axes ? [...axes] : starts.map((_, i) => i),
    steps: steps ? [...steps] : starts.map(() => 1),
  });
}

/** Broadcast to a larger shape (NumPy rules). */
export function expand(x: Value, shape: readonly number[]): Value {
  return x.graph.apply1('Expand', [x], { shape: [...shape] });
}

/** Insert a size-1 axis (implemented as Reshape). */
export function unsqueeze(x: Value, axis: number): Value {
  const a = normAxis(axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Remove a size-1 axis (implemented as Reshape). */
export function squeeze(x: Value, axis: number): Value {
  const a = normAxis(axis, x.rank);
  if (x.shape[a] !== 1) throw new GraphError(`squeeze: axis ${axis} of ${x} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Constant padding: `pads` = [begin_0..begin_{r-1}, end_0..end_{r-1}] (ONNX order), non-negative. */
export function pad(x: Value, pads: readonly number[], value = 0): Value {
  return x.graph.apply1('Pad', [x], { pads: [...pads], value });
}

/** Identity (used to give an output its own name). */
export function identity(x: Value): Value {
  return x.graph.apply1('Identity', [x]);
}

/** Split into equal-or-given parts along an axis (as Slices, so gradients stay simple). */
export function split(x: Value, sizes: readonly number[], axis: number): Value[] {
  const a = normAxis(axis, x.rank);
  if (sizes.reduce((p, q) => p + q, 0) !== x.shape[a]) throw new GraphError(`split: sizes ${fmt(sizes)} do not sum to ${x.shape[a]}`);
  let off = 0;
  return sizes.map((s) => {
    const v = slice(x, [off], [off + s], [a]);
    off += s;
    return v;
  });
}

function resolveShape(x: Value, shape: readonly number[]): number[] {
  const out = [...shape];
  const neg = out.filter((d) => d === -1).length;
  if (neg > 1) throw new GraphError(`reshape: more than one -1 in ${fmt(shape)}`);
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  if (neg === 1) {
    if (known === 0 || x.size % known !== 0) throw new GraphError(`cannot reshape ${fmt(x.shape)} to ${fmt(shape)}`);
    out[out.indexOf(-1)] = x.size / known;
  }
  if (sizeOf(out) !== x.size) throw new GraphError(`cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  return out;
}

defineOp('Reshape', {
  infer: ([x], a) => [{ shape: resolveShape(x!, a.shape as number[]), dtype: x!.dtype }],
  grad: ({ inputs: [x], gOut: [g] }) => [reshape(g!, x!.shape)],
  emit: (n, ctx, outs) => {
    const shape = n.outputs[0]!.shape;
    ctx.node('Reshape', [ctx.name(n.inputs[0]!), ctx.constant({ dtype: 'int64', shape: [shape.length], data: BigInt64Array.from(shape, BigInt) })], outs);
  },
});

defineOp('Transpose', {
  infer: ([x], a) => {
    const perm = a.perm as number[];
    const sorted = [...perm].sort((p, q) => p - q);
    if (perm.length !== x!.rank || sorted.some((p, i) => p !== i)) throw new GraphError(`bad perm ${fmt(perm)}`);
    return [{ shape: perm.map((p) => x!.shape[p]!), dtype: x!.dtype }];
  },
  grad: ({ node, gOut: [g] }) => {
    const perm = node.attrs.perm as number[];
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [transpose(g!, inv)];
  },
  emit: emitAs('Transpose', { perm: 'ints' }),
});

defineOp('Concat', {
  infer: (xs, a) => {
    const x0 = xs[0]!;
    const axis = normAxis(a.axis as number, x0.rank);
    let total = 0;
    for (const x of xs) {
      if (x.rank !== x0.rank || x.dtype !== x0.dtype || x.shape.some((d, i) => i !== axis && d !== x0.shape[i])) {
        throw new GraphError(`inputs must match except on axis ${axis}`);
      }
      total += x.shape[axis]!;
    }
    const shape = [...x0.shape];
    shape[axis] = total;
    return [{ shape, dtype: x0.dtype }];
  },
  grad: ({ node, inputs, gOut: [g], needs }) => {
    const axis = normAxis(node.attrs.axis as number, inputs[0]!.rank);
    let off = 0;
    return inputs.map((x, i) => {
      const len = x.shape[axis]!;
      const r = needs(i) ? slice(g!, [off], [off + len], [axis]) : null;
      off += len;
      return r;
    });
  },
  emit: (n, ctx, outs) => {
    ctx.node('Concat', n.inputs.map((v) => ctx.name(v)), outs, { axis: { i: normAxis(n.attrs.axis as number, n.inputs[0]!.rank) } });
  },
});

/** Normalised slice parameters, one entry per sliced axis. */
export function sliceParams(x: Value, a: Record<string, unknown>): { axis: number; start: number; len: number; step: number }[] {
  const starts = a.starts as number[], ends = a.ends as number[], axes = a.axes as number[], steps = a.steps as number[];
  if (starts.length !== ends.length || axes.length !== starts.length || steps.length !== starts.length) {
    throw new GraphError('starts/ends/axes/steps lengths differ');
  }
  return axes.map((ax, i) => {
    const axis = normAxis(ax, x.rank);
    const dim = x.shape[axis]!;
    const step = steps[i]!;
    if (!(step > 0)) throw new GraphError(`only positive steps are supported (got ${step})`);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    const s = clamp(starts[i]!), e = clamp(ends[i]!);
    const len = e > s ? Math.ceil((e - s) / step) : 0;
    return { axis, start: s, len, step };
  });
}

defineOp('Slice', {
  infer: ([x], a) => {
    const shape = [...x!.shape];
    for (const p of sliceParams(x!, a)) shape[p.axis] = p.len;
    return [{ shape, dtype: x!.dtype }];
  },
  grad: ({ node, inputs: [x], gOut: [g] }) => {
    // Undo each axis' slice in turn: zero-interleave for step > 1, then pad to the full size.
    let d = g!;
    for (const p of sliceParams(x!, node.attrs)) {
      const dim = x!.shape[p.axis]!;
      if (p.step > 1 && p.len > 0) {
        const s = [...d.shape];
        const inner = unsqueeze(d, p.axis + 1);
        const padsI = new Array<number>(2 * inner.rank).fill(0);
        padsI[inner.rank + p.axis + 1] = p.step - 1;
        s[p.axis] = p.len * p.step;
        d = reshape(pad(inner, padsI), s);
        d = slice(d, [0], [(p.len - 1) * p.step + 1], [p.axis]);
      }
      const pads = new Array<number>(2 * d.rank).fill(0);
      pads[p.axis] = p.start;
      pads[d.rank + p.axis] = dim - p.start - d.shape[p.axis]!;
      d = pad(d, pads);
    }
    return [d];
  },
  emit: (n, ctx, outs) => {
    const ps = sliceParams(n.inputs[0]!, n.attrs);
    const c = (xs: number[]) => ctx.constant({ dtype: 'int64', shape: [xs.length], data: BigInt64Array.from(xs, BigInt) });
    ctx.node('Slice', [
      ctx.name(n.inputs[0]!),
      c(ps.map((p) => p.start)),
      c(ps.map((p) => p.start + p.len * p.step)),
      c(ps.map((p) => p.axis)),
      c(ps.map((p) => p.step)),
    ], outs);
  },
});

defineOp('Expand', {
  infer: ([x], a) => {
    const shape = a.shape as number[];
    if (shape.length < x!.rank) throw new GraphError(`cannot expand to lower rank ${fmt(shape)}`);
    x!.shape.forEach((d, i) => {
      const t = shape[shape.length - x!.rank + i]!;
      if (d !== 1 && d !== t) throw new GraphError(`cannot expand ${fmt(x!.shape)} to ${fmt(shape)}`);
    });
    return [{ shape: [...shape], dtype: x!.dtype }];
  },
  grad: ({ inputs: [x], gOut: [g] }) => [sumToShape(g!, x!.shape)],
  emit: (n, ctx, outs) => {
    const s = n.attrs.shape as number[];
    ctx.node('Expand', [ctx.name(n.inputs[0]!), ctx.constant({ dtype: 'int64', shape: [s.length], data: BigInt64Array.from(s, BigInt) })], outs);
  },
});

defineOp('Pad', {
  infer: ([x], a) => {
    const pads = a.pads as number[];
    if (pads.length !== 2 * x!.rank || pads.some((p) => p < 0 || !Number.isInteger(p))) {
      throw new GraphError(`pads ${fmt(pads)} must be ${2 * x!.rank} non-negative integers`);
    }
    return [{ shape: x!.shape.map((d, i) => d + pads[i]! + pads[i + x!.rank]!), dtype: x!.dtype }];
  },
  grad: ({ node, inputs: [x], gOut: [g] }) => {
    const pads = node.attrs.pads as number[];
    const r = x!.rank;
    const axes = [...Array(r).keys()].filter((i) => pads[i]! > 0 || pads[i + r]! > 0);
    if (axes.length === 0) return [g!];
    return [slice(g!, axes.map((i) => pads[i]!), axes.map((i) => pads[i]! + x!.shape[i]!), axes)];
  },
  emit: (n, ctx, outs) => {
    const pads = n.attrs.pads as number[];
    const x = n.inputs[0]!;
    const value = scalarTensor(x.dtype, (n.attrs.value as number) ?? 0);
    ctx.node('Pad', [ctx.name(x), ctx.constant({ dtype: 'int64', shape: [pads.length], data: BigInt64Array.from(pads, BigInt) }), ctx.constant(value)], outs, { mode: { s: 'constant' } });
  },
});

function scalarTensor(dtype: Value['dtype'], v: number) {
  const g = { dtype, shape: [] as number[] };
  switch (dtype) {
    case 'float32': return { ...g, data: Float32Array.of(v) };
    case 'float64': return { ...g, data: Float64Array.of(v) };
    case 'int64': return { ...g, data: BigInt64Array.of(BigInt(v)) };
    case 'int32': return { ...g, data: Int32Array.of(v) };
    default: return { ...g, data: Uint8Array.of(v) };
  }
}

defineOp('Identity', {
  infer: ([x]) => [{ shape: [...x!.shape], dtype: x!.dtype }],
  grad: ({ gOut: [g] }) => [g!],
  emit: emitAs('Identity'),
});


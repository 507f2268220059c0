// Elementwise ops with NumPy broadcasting, comparisons, Where and Cast.
import { GraphError, ONNX_ELEM, defineOp, isFloat, type DType, type EmitCtx, type Value } from '../ir.js';
import { broadcastShapes, emitAs, lift, requireFloat, sameDtype, scalar } from './util.js';
import { sumToShape } from './reduce.js';

type Operand = Value | number;

function binary(op: string, a: Operand, b: Operand): Value {
  if (typeof a === 'number' && typeof b === 'number') throw new GraphError(`${op} of two numbers`);
  const x = typeof a === 'number' ? lift(b as Value, a) : a;
  const y = lift(x, b);
  return x.graph.apply1(op, [x, y]);
}

/** a + b */
export const add = (a: Operand, b: Operand): Value => binary('Add', a, b);
/** a - b */
export const sub = (a: Operand, b: Operand): Value => binary('Sub', a, b);
/** a * b */
export const mul = (a: Operand, b: Operand): Value => binary('Mul', a, b);
/** a / b */
export const div = (a: Operand, b: Operand): Value => binary('Div', a, b);
/** Elementwise maximum (gradient goes to the larger input; ties to the first). */
export const maximum = (a: Operand, b: Operand): Value => binary('Max', a, b);
/** a == b (bool) */
export const equal = (a: Operand, b: Operand): Value => binary('Equal', a, b);
/** a < b (bool) */
export const less = (a: Operand, b: Operand): Value => binary('Less', a, b);
/** a > b (bool) */
export const greater = (a: Operand, b: Operand): Value => binary('Greater', a, b);

const unary = (op: string) => (x: Value): Value => x.graph.apply1(op, [x]);
/** -x */
export const neg = unary('Neg');
/** e^x */
export const exp = unary('Exp');
/** natural log */
export const log = unary('Log');
/** square root */
export const sqrt = unary('Sqrt');
/** 1/x */
export const reciprocal = unary('Reciprocal');
/** Gauss error function (exact; used by GELU). */
export const erf = unary('Erf');
/** hyperbolic tangent */
export const tanh = unary('Tanh');
/** max(x, 0) */
export const relu = unary('Relu');
/** logical not (bool) */
export const not = unary('Not');

/** Clamp to [min, max] (ReLU6 is clip(x, 0, 6)). Gradient passes where min < x < max. */
export function clip(x: Value, min: number, max: number): Value {
  return x.graph.apply1('Clip', [x], { min, max });
}

/** cond ? a : b, broadcasting. */
export function where(cond: Value, a: Operand, b: Operand): Value {
  const like = typeof a === 'number' ? (b as Value) : a;
  return cond.graph.apply1('Where', [cond, lift(like, a), lift(like, b)]);
}

/** Converts dtype (gradient flows only between float dtypes). */
export function cast(x: Value, to: DType): Value {
  return x.dtype === to ? x : x.graph.apply1('Cast', [x], { to });
}

function binaryInfer(outBool: boolean) {
  return ([a, b]: readonly Value[]) => {
    sameDtype(a!, b!);
    return [{ shape: broadcastShapes(a!.shape, b!.shape), dtype: outBool ? ('bool' as const) : a!.dtype }];
  };
}
const sameInfer = ([x]: readonly Value[]) => [{ shape: [...x!.shape], dtype: x!.dtype }];
const floatInfer = ([x]: readonly Value[]) => {
  requireFloat(x!, 'input');
  return sameInfer([x!]);
};

defineOp('Add', {
  infer: binaryInfer(false),
  grad: ({ inputs: [a, b], gOut: [g] }) => [sumToShape(g!, a!.shape), sumToShape(g!, b!.shape)],
  emit: emitAs('Add'),
});
defineOp('Sub', {
  infer: binaryInfer(false),
  grad: ({ inputs: [a, b], gOut: [g], needs }) => [sumToShape(g!, a!.shape), needs(1) ? sumToShape(neg(g!), b!.shape) : null],
  emit: emitAs('Sub'),
});
defineOp('Mul', {
  infer: binaryInfer(false),
  grad: ({ inputs: [a, b], gOut: [g], needs }) => [
    needs(0) ? sumToShape(mul(g!, b!), a!.shape) : null,
    needs(1) ? sumToShape(mul(g!, a!), b!.shape) : null,
  ],
  emit: emitAs('Mul'),
});
defineOp('Div', {
  infer: binaryInfer(false),
  grad: ({ inputs: [a, b], outputs: [y], gOut: [g], needs }) => [
    needs(0) ? sumToShape(div(g!, b!), a!.shape) : null,
    needs(1) ? sumToShape(neg(div(mul(g!, y!), b!)), b!.shape) : null,
  ],
  emit: emitAs('Div'),
});
defineOp('Max', {
  infer: binaryInfer(false),
  grad: ({ inputs: [a, b], gOut: [g], needs }) => {
    const takeA = cast(greaterOrEqual(a!, b!), g!.dtype);
    return [
      needs(0) ? sumToShape(mul(g!, takeA), a!.shape) : null,
      needs(1) ? sumToShape(mul(g!, sub(1, takeA)), b!.shape) : null,
    ];
  },
  emit: emitAs('Max'),
});
function greaterOrEqual(a: Value, b: Value): Value {
  return not(less(a, b));
}
for (const op of ['Equal', 'Less', 'Greater']) defineOp(op, { infer: binaryInfer(true), emit: emitAs(op) });
defineOp('Not', {
  infer: ([x]) => {
    if (x!.dtype !== 'bool') throw new GraphError('Not needs a bool input');
    return sameInfer([x!]);
  },
  emit: emitAs('Not'),
});

defineOp('Neg', { infer: sameInfer, grad: ({ gOut: [g] }) => [neg(g!)], emit: emitAs('Neg') });
defineOp('Exp', { infer: floatInfer, grad: ({ outputs: [y], gOut: [g] }) => [mul(g!, y!)], emit: emitAs('Exp') });
defineOp('Log', { infer: floatInfer, grad: ({ inputs: [x], gOut: [g] }) => [div(g!, x!)], emit: emitAs('Log') });
defineOp('Sqrt', { infer: floatInfer, grad: ({ outputs: [y], gOut: [g] }) => [div(mul(g!, 0.5), y!)], emit: emitAs('Sqrt') });
defineOp('Reciprocal', {
  infer: floatInfer,
  grad: ({ outputs: [y], gOut: [g] }) => [neg(mul(g!, mul(y!, y!)))],
  emit: emitAs('Reciprocal'),
});
defineOp('Tanh', {
  infer: floatInfer,
  grad: ({ outputs: [y], gOut: [g] }) => [mul(g!, sub(1, mul(y!, y!)))],
  emit: emitAs('Tanh'),
});
defineOp('Relu', {
  infer: floatInfer,
  grad: ({ inputs: [x], gOut: [g] }) => [mul(g!, cast(greater(x!, 0), g!.dtype))],
  emit: emitAs('Relu'),
});
defineOp('Clip', {
  infer: floatInfer,
  grad: ({ node, inputs: [x], gOut: [g] }) => {
    const inside = cast(greater(x!, node.attrs.min as number), g!.dtype);
    const below = cast(less(x!, node.attrs.max as number), g!.dtype);
    return [mul(g!, mul(inside, below))];
  },
  emit: (n, ctx, outs) => {
    const x = n.inputs[0]!;
    const t = (v: number) => ctx.constant(x.dtype === 'float64' ? { dtype: 'float64', shape: [], data: Float64Array.of(v) } : { dtype: 'float32', shape: [], data: Float32Array.of(v) });
    ctx.node('Clip', [ctx.name(x), t(n.attrs.min as number), t(n.attrs.max as number)], outs);
  },
});

// d/dx erf(x) = 2/sqrt(pi) * exp(-x^2)
defineOp('Erf', {
  infer: floatInfer,
  grad: ({ inputs: [x], gOut: [g] }) => [mul(g!, mul(exp(neg(mul(x!, x!))), 2 / Math.sqrt(Math.PI)))],
  emit: (n, ctx, outs) => {
    const x = n.inputs[0]!;
    if (x.dtype !== 'float64') return void ctx.node('Erf', [ctx.name(x)], outs);
    emitErfF64(ctx, ctx.name(x), outs[0]!);
  },
});

/**
 * float64 erf as ONNX nodes. ORT CPU has no float64 Erf; this is the series
 * erf(x) = 2/sqrt(pi) x e^{-x^2} sum_n (2x^2)^n/(2n+1)!!, which has only positive terms (no
 * cancellation); |x| is clamped at 6 where erf is 1 to 1e-17.
 */
export function emitErfF64(ctx: EmitCtx, x: string, out: string): void {
  const c = (v: number) => ctx.constant({ dtype: 'float64', shape: [], data: Float64Array.of(v) });
  const [xc] = ctx.node('Clip', [x, c(-6), c(6)], 1);
  const [x2] = ctx.node('Mul', [xc!, xc!], 1);
  const [t] = ctx.node('Mul', [x2!, c(2)], 1);
  let s = c(1);
  for (let k = 120; k >= 0; k--) {
    const [ts] = ctx.node('Mul', [t!, c(1 / (2 * k + 3))], 1);
    const [p] = ctx.node('Mul', [ts!, s], 1);
    [s] = ctx.node('Add', [p!, c(1)], 1) as [string];
  }
  const [nx2] = ctx.node('Neg', [x2!], 1);
  const [e] = ctx.node('Exp', [nx2!], 1);
  const [xe] = ctx.node('Mul', [xc!, e!], 1);
  const [xes] = ctx.node('Mul', [xe!, s], 1);
  ctx.node('Mul', [xes!, c(2 / Math.sqrt(Math.PI))], [out]);
}

defineOp('Where', {
  infer: ([c, a, b]) => {
    if (c!.dtype !== 'bool') throw new GraphError('Where condition must be bool');
    sameDtype(a!, b!);
    return [{ shape: broadcastShapes(c!.shape, broadcastShapes(a!.shape, b!.shape)), dtype: a!.dtype }];
  },
  grad: ({ inputs: [c, a, b], gOut: [g], needs }) => {
    const zero = scalar(g!.graph, 0, g!.dtype);
    return [null, needs(1) ? sumToShape(where(c!, g!, zero), a!.shape) : null, needs(2) ? sumToShape(where(c!, zero, g!), b!.shape) : null];
  },
  emit: emitAs('Where'),
});

defineOp('Cast', {
  infer: ([x], a) => [{ shape: [...x!.shape], dtype: a.to as DType }],
  grad: ({ inputs: [x], outputs: [y], gOut: [g] }) => (isFloat(x!.dtype) && isFloat(y!.dtype) ? [cast(g!, x!.dtype)] : [null]),
  emit: (n, ctx, outs) => void ctx.node('Cast', [ctx.name(n.inputs[0]!)], outs, { to: { i: ONNX_ELEM[n.attrs.to as DType] } }),
});

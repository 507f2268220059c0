// Shared helpers for op definitions: constants, typed-attribute emission, broadcasting.
import { toFloat16Bits } from '../../base/float16.js';
import { GraphError, fmt, type Attrs, type DType, type EmitCtx, type Graph, type HostTensor, type Node, type OnnxAttrs, type Value } from '../ir.js';

/** Allocates a host tensor of a dtype filled from numbers. */
export function tensorOf(dtype: DType, shape: readonly number[], values: ArrayLike<number>): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new GraphError(`constant: ${values.length} values for shape ${fmt(shape)}`);
  let data: HostTensor['data'];
  switch (dtype) {
    case 'float32': data = Float32Array.from(values); break;
    case 'float64': data = Float64Array.from(values); break;
    case 'int32': data = Int32Array.from(values); break;
    case 'int64': data = BigInt64Array.from(Array.from(values, (x) => BigInt(Math.trunc(x)))); break;
    case 'uint8': case 'bool': data = Uint8Array.from(values); break;
    case 'int8': data = Int8Array.from(values); break;
    case 'float16': data = Uint16Array.from(values, toFloat16Bits); break;
  }
  return { dtype, shape: [...shape], data };
}

/** A constant value in graph g. */
export function constant(g: Graph, dtype: DType, shape: readonly number[], values: ArrayLike<number>): Value {
  return g.constant(tensorOf(dtype, shape, values));
}

/** A rank-0 constant of the given dtype. */
export function scalar(g: Graph, x: number, dtype: DType = 'float32'): Value {
  return constant(g, dtype, [], [x]);
}

/** An int64 1-D constant (ONNX shape/axes/indices inputs). */
export function i64(g: Graph, xs: readonly number[]): Value {
  return constant(g, 'int64', [xs.length], xs);
}

/** Turns a number operand into a scalar constant matching `like`'s dtype. */
export function lift(like: Value, x: Value | number): Value {
  return typeof x === 'number' ? scalar(like.graph, x, like.dtype) : x;
}

/** NumPy broadcasting of two shapes; throws a readable error when incompatible. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new GraphError(`shapes ${fmt(a)} and ${fmt(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Axis kinds of attributes, so the emitter can type them (ONNX separates ints and floats). */
export type AttrKind = 'int' | 'float' | 'ints' | 'floats' | 'string';

/** Converts node attrs to typed ONNX attrs using a kind table; undefined attrs are skipped. */
export function typedAttrs(attrs: Attrs, kinds: Record<string, AttrKind>): OnnxAttrs {
  const out: OnnxAttrs = {};
  for (const [k, kind] of Object.entries(kinds)) {
    const v = attrs[k];
    if (v === undefined) continue;
    switch (kind) {
      case 'int': out[k] = { i: typeof v === 'boolean' ? Number(v) : (v as number) }; break;
      case 'float': out[k] = { f: v as number }; break;
      case 'ints': out[k] = { ints: v as number[] }; break;
      case 'floats': out[k] = { floats: v as number[] }; break;
      case 'string': out[k] = { s: v as string }; break;
    }
  }
  return out;
}

/** Emitter for ops that map 1:1 to an ONNX op with the same inputs. */
export function emitAs(opType: string, kinds: Record<string, AttrKind> = {}, domain?: string) {
  return (node: Node, ctx: EmitCtx, outs: string[]): void => {
    ctx.node(opType, node.inputs.map((v) => ctx.name(v)), outs, typedAttrs(node.attrs, kinds), domain);
  };
}

/** Asserts a value is of a floating dtype. */
export function requireFloat(v: Value, what: string): void {
  if (v.dtype !== 'float32' && v.dtype !== 'float64') throw new GraphError(`${what} must be float32/float64, got ${v.dtype}`);
}

/** Asserts two values share a dtype. */
export function sameDtype(a: Value, b: Value): void {
  if (a.dtype !== b.dtype) throw new GraphError(`dtype mismatch ${a.dtype} vs ${b.dtype}`);
}

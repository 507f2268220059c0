// Integer ops for in-graph, counter-based random numbers (dropout masks that are a pure function
// of a seed input, so a resumed run draws exactly the masks an uninterrupted run would have).
import { GraphError, defineOp, type Value } from '../ir.js';
import { emitAs } from './util.js';

/** int64 [start, start+1, ..., start+n-1] computed at run time from a scalar int64 `start` (not constant-folded). */
export function rangeFrom(start: Value, n: number): Value {
  return start.graph.apply1('RangeFrom', [start], { n });
}

/** Bitwise AND of int64 values. */
export function bitAnd(a: Value, b: Value): Value {
  return a.graph.apply1('BitwiseAnd', [a, b]);
}

/** Bitwise XOR of int64 values. */
export function bitXor(a: Value, b: Value): Value {
  return a.graph.apply1('BitwiseXor', [a, b]);
}

function intInfer(op: string) {
  return ([a, b]: readonly Value[]) => {
    if (a!.dtype !== 'int64' || b!.dtype !== 'int64') throw new GraphError(`${op} needs int64 inputs`);
    if (a!.shape.length < b!.shape.length) throw new GraphError(`${op}: broadcast the smaller operand second`);
    return [{ shape: [...a!.shape], dtype: 'int64' as const }];
  };
}

defineOp('BitwiseAnd', { infer: intInfer('BitwiseAnd'), stopsGradient: true, emit: emitAs('BitwiseAnd') });
defineOp('BitwiseXor', { infer: intInfer('BitwiseXor'), stopsGradient: true, emit: emitAs('BitwiseXor') });

defineOp('RangeFrom', {
  infer: ([s], a) => {
    if (s!.dtype !== 'int64' || s!.rank !== 0) throw new GraphError('RangeFrom needs a scalar int64 start');
    return [{ shape: [a.n as number], dtype: 'int64' }];
  },
  stopsGradient: true,
  emit: (n, ctx, outs) => {
    const start = ctx.name(n.inputs[0]!);
    const c = (v: number) => ctx.constant({ dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(v)) });
    const [limit] = ctx.node('Add', [start, c(n.attrs.n as number)], 1);
    ctx.node('Range', [start, limit!, c(1)], outs);
  },
});

// Reverse-mode automatic differentiation over the IR: appends the backward pass to the same graph,
// so forward, backward and optimizer update compile into one ORT session.
import { GraphError, isFloat, opDef, type GradCtx, type Node, type Value } from './ir.js';
import { add } from './ops/elementwise.js';
import { constant } from './ops/util.js';
import { concat, sliceParams } from './ops/shape.js';
import { zeros } from './ops/indexing.js';

/**
 * Gradients of a scalar (or seeded) `loss` w.r.t. each value of `wrt`; null where the loss does not
 * depend on it. `seed` (same shape as loss) replaces the implicit ones, for vector-Jacobian products.
 */
export function grad(loss: Value, wrt: readonly Value[], seed?: Value): (Value | null)[] {
  const g = loss.graph;
  if (!isFloat(loss.dtype)) throw new GraphError(`grad: loss ${loss} is not floating point`);
  if (!seed && loss.size !== 1) throw new GraphError(`grad: loss ${loss} is not a scalar; pass a seed`);
  // 1. values that depend on some wrt value (forward sweep over the topological node order)
  const dep = new Set<Value>(wrt.filter((w) => isFloat(w.dtype)));
  for (const n of g.nodes) {
    if (!n.inputs.some((v) => dep.has(v))) continue;
    if (opDef(n.op).stopsGradient) continue;
    for (const o of n.outputs) if (isFloat(o.dtype)) dep.add(o);
  }
  if (!dep.has(loss)) return wrt.map(() => null);
  // 2. nodes on a path to the loss (backward sweep)
  const live = new Set<Value>([loss]);
  const nodes = g.nodes.filter((n) => n.outputs.some((o) => dep.has(o)));
  const onPath = new Set<(typeof nodes)[number]>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) continue;
    onPath.add(n);
    for (const v of n.inputs) if (dep.has(v)) live.add(v);
  }
  // 3. accumulate vector-Jacobian products in reverse order
  const grads = new Map<Value, Value>();
  grads.set(loss, seed ?? constant(g, loss.dtype, loss.shape, new Array(loss.size).fill(1)));
  const parts = slicePartitions(nodes.filter((n) => onPath.has(n)));
  const pending = new Map<Value, (Value | null)[]>();
  // A value split by slices along one axis (attention's q, k, v from the fused qkv) gets its
  // gradient as one Concat of the pieces' gradients, instead of a zero-padded copy per piece plus adds.
  const take = (v: Value): Value | null => {
    const got = pending.get(v);
    if (got) {
      pending.delete(v);
      const info = parts.get(v)!;
      const pieces: Value[] = [];
      info.ranges.forEach(([start, end], k) => {
        const shape = v.shape.map((d, j) => (j === info.axis ? end - start : d));
        pieces.push(got[k] ?? zeros(g, shape, v.dtype));
      });
      grads.set(v, pieces.length === 1 ? pieces[0]! : concat(pieces, info.axis));
    }
    return grads.get(v) ?? null;
  };
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!onPath.has(n)) continue;
    const gOut = n.outputs.map((o) => take(o));
    const slot = n.op === 'Slice' ? parts.get(n.inputs[0]!)?.slots.get(n) : undefined;
    if (slot !== undefined) {
      const x = n.inputs[0]!;
      if (!pending.has(x)) pending.set(x, parts.get(x)!.ranges.map(() => null));
      pending.get(x)![slot] = gOut[0] ?? null;
      continue;
    }
    if (gOut.every((x) => x === null)) continue;
    const def = opDef(n.op);
    if (!def.grad) throw new GraphError(`grad: op ${n.op} has no gradient rule but lies between the parameters and the loss`);
    const ctx: GradCtx = {
      node: n,
      inputs: n.inputs,
      outputs: n.outputs,
      gOut,
      needs: (k) => live.has(n.inputs[k]!),
    };
    const gIn = def.grad(ctx);
    n.inputs.forEach((x, k) => {
      const gx = gIn[k];
      if (!gx || !live.has(x)) return;
      if (gx.dtype !== x.dtype || gx.shape.length !== x.shape.length || gx.shape.some((d, j) => d !== x.shape[j])) {
        throw new GraphError(`grad rule of ${n.op} returned ${gx} for input ${x}`);
      }
      const prev = grads.get(x);
      grads.set(x, prev ? add(prev, gx) : gx);
    });
  }
  return wrt.map((w) => take(w));
}

/** How a value is cut by the slices that consume it: the axis, each piece's [start, end), and which piece each Slice node is. */
interface Partition {
  axis: number;
  ranges: [number, number][];
  slots: Map<Node, number>;
}

/**
 * Values whose every consumer among `nodes` is a step-1 Slice along one common axis with disjoint
 * ranges (gaps become zero pieces). Only those with at least two slices are worth a Concat.
 */
function slicePartitions(nodes: readonly Node[]): Map<Value, Partition> {
  const users = new Map<Value, Node[]>();
  for (const n of nodes) for (const v of new Set(n.inputs)) users.set(v, [...(users.get(v) ?? []), n]);
  const out = new Map<Value, Partition>();
  for (const [v, us] of users) {
    if (us.length < 2 || us.some((u) => u.op !== 'Slice' || u.inputs[0] !== v)) continue;
    const cuts = us.map((u) => {
      const ps = sliceParams(v, u.attrs).filter((p) => p.start !== 0 || p.len !== v.shape[p.axis] || p.step !== 1);
      return ps.length === 1 && ps[0]!.step === 1 ? { u, axis: ps[0]!.axis, start: ps[0]!.start, end: ps[0]!.start + ps[0]!.len } : undefined;
    });
    if (cuts.some((c) => !c) || new Set(cuts.map((c) => c!.axis)).size !== 1) continue;
    const sorted = cuts.map((c) => c!).sort((a, b) => a.start - b.start);
    if (sorted.some((c, k) => c.end <= c.start || (k > 0 && c.start < sorted[k - 1]!.end))) continue;
    const axis = sorted[0]!.axis, dim = v.shape[axis]!;
    const ranges: [number, number][] = [];
    const slots = new Map<Node, number>();
    let at = 0;
    for (const c of sorted) {
      if (c.start > at) ranges.push([at, c.start]);
      slots.set(c.u, ranges.length);
      ranges.push([c.start, c.end]);
      at = c.end;
    }
    if (at < dim) ranges.push([at, dim]);
    out.set(v, { axis, ranges, slots });
  }
  return out;
}

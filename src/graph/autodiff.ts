// Reverse-mode automatic differentiation over the IR: appends the backward pass to the same graph,
// so forward, backward and optimizer update compile into one ORT session.
import { GraphError, isFloat, opDef, type GradCtx, type Value } from './ir.js';
import { add } from './ops/elementwise.js';
import { constant } from './ops/util.js';

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
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!onPath.has(n)) continue;
    const gOut = n.outputs.map((o) => grads.get(o) ?? null);
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
  return wrt.map((w) => grads.get(w) ?? null);
}

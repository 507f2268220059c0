// Finite-difference gradient checks in float64 (tinygrad-style per-op tests). Builds f(inputs),
// reduces it to a scalar with a fixed random weighting (so every output element matters), appends
// the backward pass with our autodiff, and compares against central differences run through ORT.
import assert from 'node:assert/strict';
import { Graph, constant, grad, mul, reduceSum, type DType, type Value } from '../../src/graph/index.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import type { HostTensor } from '../../src/base/tensor.js';

import { rng } from './random.js';

export { rng };

/** Float64 host tensor with uniform values in [lo, hi). */
export function randTensor(shape: number[], seed: number, lo = -1, hi = 1, dtype: DType = 'float64'): HostTensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, () => lo + (hi - lo) * r());
  return { dtype, shape, data: dtype === 'float32' ? Float32Array.from(vals) : Float64Array.from(vals) };
}

/** One input of a gradient check: its value, and whether to differentiate w.r.t. it. */
export interface CheckInput {
  value: HostTensor;
  /** Default: true for float inputs. */
  diff?: boolean;
}

/** Options of gradCheck. */
export interface GradCheckOptions {
  eps?: number;
  /** Tolerance on |analytic - numeric| relative to max(1, |numeric|) per element. */
  tol?: number;
  /** Inputs larger than this are checked along random directions instead of per element. */
  maxElements?: number;
  seed?: number;
}

/**
 * Checks the gradient of `build` w.r.t. every differentiable input against central finite
 * differences. Returns the worst error seen (asserts it is below `tol`).
 */
export async function gradCheck(build: (...xs: Value[]) => Value, inputs: CheckInput[], opts: GradCheckOptions = {}): Promise<number> {
  const eps = opts.eps ?? 1e-6, tol = opts.tol ?? 1e-6, maxEl = opts.maxElements ?? 64;
  const g = new Graph();
  const xs = inputs.map((c, i) => g.input(`x${i}`, c.value.shape, c.value.dtype));
  const y = build(...xs);
  assert.equal(y.dtype, 'float64', 'gradCheck needs a float64 output');
  const w = randTensor([...y.shape], (opts.seed ?? 7) + 1000, 0.5, 1.5);
  const loss = reduceSum(mul(y, constant(g, 'float64', y.shape, w.data as Float64Array)));
  g.output('loss', loss);
  const which = inputs.map((c, i) => (c.diff ?? (c.value.dtype === 'float64')) ? i : -1).filter((i) => i >= 0);
  const grads = grad(loss, which.map((i) => xs[i]!));
  grads.forEach((gv, k) => {
    assert.ok(gv, `no gradient reached input ${which[k]}`);
    g.output(`g${which[k]}`, gv!);
  });
  const sess = await CompiledGraph.compile(g);
  const feeds = (vals: HostTensor[]) => Object.fromEntries(vals.map((v, i) => [`x${i}`, v]));
  const base = inputs.map((c) => c.value);
  const res = await sess.run(feeds(base));
  const lossAt = async (i: number, dir: Float64Array, s: number) => {
    const vals = base.map((v, k) => {
      if (k !== i) return v;
      const d = Float64Array.from(v.data as Float64Array, (x, j) => x + s * dir[j]!);
      return { ...v, data: d };
    });
    return ((await sess.run(feeds(vals), ['loss'])).loss!.data as Float64Array)[0]!;
  };
  let worst = 0;
  const r = rng(opts.seed ?? 7);
  for (const i of which) {
    const an = res[`g${i}`]!.data as Float64Array;
    const n = an.length;
    const dirs: Float64Array[] = [];
    if (n <= maxEl) {
      for (let j = 0; j < n; j++) {
        const d = new Float64Array(n);
        d[j] = 1;
        dirs.push(d);
      }
    } else {
      for (let k = 0; k < 6; k++) dirs.push(Float64Array.from({ length: n }, () => r() * 2 - 1));
    }
    for (const d of dirs) {
      const num = ((await lossAt(i, d, eps)) - (await lossAt(i, d, -eps))) / (2 * eps);
      let ana = 0;
      for (let j = 0; j < n; j++) ana += an[j]! * d[j]!;
      const err = Math.abs(ana - num) / Math.max(1, Math.abs(num));
      worst = Math.max(worst, err);
      assert.ok(err <= tol, `input ${i}: analytic ${ana} vs numeric ${num} (err ${err.toExponential(2)} > ${tol})`);
    }
  }
  await sess.release();
  return worst;
}

/** Asserts two float arrays agree within atol + rtol*|b| elementwise; returns the max abs diff. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = 0, what = 'values'): number {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= atol + rtol * Math.abs(b[i]!))) {
      assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]} (|diff| ${d.toExponential(3)} > ${atol} + ${rtol}*|b|)`);
    }
    if (d > worst) (worst = d), (at = i);
  }
  void at;
  return worst;
}

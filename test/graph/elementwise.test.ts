// Elementwise ops: finite-difference gradient checks (float64) with every broadcasting pattern,
// forward values against JS, float32-vs-float64 agreement of Erf, and readable shape errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Graph, GraphError, add, cast, clip, div, equal, erf, exp, grad, greater, less, log, maximum, mul, neg, not, reciprocal,
  reduceSum, relu, sqrt, sub, tanh, tensorOf, where, type Value,
} from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { assertClose, gradCheck, randTensor } from '../helpers/gradcheck.js';

/** Pushes values at least `margin` away from each point (kinks of Relu/Clip, poles of 1/x). */
function awayFrom(t: HostTensor, points: number[], margin = 0.1): HostTensor {
  const data = Float64Array.from(t.data as Float64Array, (v) => {
    for (const p of points) if (Math.abs(v - p) < margin) v = v < p ? p - margin : p + margin;
    return v;
  });
  return { ...t, data };
}

/**
 * erf by formulas other than the graph's lowering: the alternating Maclaurin series for |x| <= 2.5
 * (it cancels badly beyond) and erfc's continued fraction above.
 */
function erfJs(x: number): number {
  if (Math.abs(x) > 2.5) {
    const z = Math.abs(x);
    let t = z;
    for (let k = 80; k >= 1; k--) t = z + k / 2 / t;
    return Math.sign(x) * (1 - Math.exp(-z * z) / (Math.sqrt(Math.PI) * t));
  }
  let term = x, sum = x;
  for (let n = 1; n < 80; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const binaries: [string, (a: Value, b: Value) => Value][] = [
  ['Add', add], ['Sub', sub], ['Mul', mul], ['Div', div], ['Max', maximum],
];
// same shape, both sides broadcast, rank extension on either side, a scalar on either side
const shapePairs: [number[], number[]][] = [
  [[2, 3], [2, 3]], [[2, 1, 4], [3, 1]], [[4], [2, 3, 4]], [[2, 3, 4], [3, 1]], [[], [2, 3]], [[2, 3], [1]],
];

for (const [name, f] of binaries) {
  test(`grad ${name} with broadcasting`, async () => {
    let seed = 10;
    for (const [sa, sb] of shapePairs) {
      const a = randTensor(sa, seed++);
      // Div needs a denominator away from 0; the others are smooth (Max away from ties w.p. 1)
      const b = name === 'Div' ? randTensor(sb, seed++, 0.5, 1.5) : randTensor(sb, seed++);
      await gradCheck(f, [{ value: a }, { value: b }]);
    }
  });
}

test('grad of binary ops with number operands', async () => {
  await gradCheck((x) => add(sub(2, x), mul(div(1, x), 3)), [{ value: randTensor([2, 3], 1, 0.5, 2) }]);
  await gradCheck((x) => maximum(x, 0.2), [{ value: awayFrom(randTensor([3, 4], 2), [0.2]) }]);
});

const unaries: [string, (x: Value) => Value, (s: number[], seed: number) => HostTensor][] = [
  ['Neg', neg, (s, k) => randTensor(s, k)],
  ['Exp', exp, (s, k) => randTensor(s, k)],
  ['Log', log, (s, k) => randTensor(s, k, 0.3, 3)],
  ['Sqrt', sqrt, (s, k) => randTensor(s, k, 0.3, 3)],
  ['Reciprocal', reciprocal, (s, k) => awayFrom(randTensor(s, k, -2, 2), [0], 0.3)],
  ['Tanh', tanh, (s, k) => randTensor(s, k, -2, 2)],
  ['Relu', relu, (s, k) => awayFrom(randTensor(s, k), [0])],
  ['Clip', (x) => clip(x, -0.5, 0.6), (s, k) => awayFrom(randTensor(s, k), [-0.5, 0.6])],
  // past |x| = 6 the lowering clamps; the analytic derivative there is ~1e-16, like the numeric one
  ['Erf', erf, (s, k) => randTensor(s, k, -3, 3)],
];
for (const [name, f, data] of unaries) {
  test(`grad ${name}`, async () => {
    await gradCheck(f, [{ value: data([2, 3, 4], 3) }]);
    await gradCheck(f, [{ value: data([], 4) }]);
  });
}

test('grad Where with broadcast condition and branches', async () => {
  const cond = tensorOf('bool', [2, 1, 3], [1, 0, 1, 0, 0, 1]);
  await gradCheck((c, a, b) => where(c, a, b), [{ value: cond }, { value: randTensor([2, 4, 3], 5) }, { value: randTensor([3], 6) }]);
  await gradCheck((c, a, b) => where(c, a, b), [{ value: cond }, { value: randTensor([], 7) }, { value: randTensor([2, 2, 3], 8) }]);
  await gradCheck((c, a) => where(c, 1, a), [{ value: cond }, { value: randTensor([4, 3], 9) }]);
});

test('grad Cast: float64 no-op node and float64 -> float32 -> float64', async () => {
  await gradCheck((x) => mul(x.graph.apply1('Cast', [x], { to: 'float64' }), x), [{ value: randTensor([2, 3], 11) }]);
  assert.equal(cast(new Graph().input('x', [2], 'float64'), 'float64').kind, 'input', 'cast to the same dtype adds no node');
  // float32 rounding (~6e-8) would swamp eps = 1e-6; the chain is linear in x so a large eps is exact
  await gradCheck((x) => cast(mul(cast(x, 'float32'), cast(x, 'float32')), 'float64'), [{ value: randTensor([2, 3], 12) }], { eps: 1e-2, tol: 2e-4 });
});

test('no gradient flows through an integer cast', () => {
  const g = new Graph();
  const x = g.input('x', [3], 'float64');
  assert.deepEqual(grad(reduceSum(cast(cast(x, 'int64'), 'float64')), [x]), [null]);
});

async function forward(outs: (g: Graph, xs: Value[]) => Record<string, Value>, feeds: HostTensor[]): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const xs = feeds.map((t, i) => g.input(`x${i}`, t.shape, t.dtype));
  for (const [k, v] of Object.entries(outs(g, xs))) g.output(k, v);
  return runOnce(g, Object.fromEntries(feeds.map((t, i) => [`x${i}`, t])));
}

test('Erf: float64 lowering matches a JS series; float32 fused matches float64 to ~1e-6', async () => {
  const xs = Array.from({ length: 81 }, (_, i) => -4 + i * 0.1).concat([-7, 7, 1e-3, -1e-5]);
  const x32 = tensorOf('float32', [xs.length], xs);
  const x64 = tensorOf('float64', [xs.length], Array.from(x32.data as Float32Array));
  const r = await forward((_, [a, b]) => ({ y32: erf(a!), y64: erf(b!) }), [x32, x64]);
  const y64 = r.y64!.data as Float64Array, y32 = r.y32!.data as Float32Array;
  assertClose(y64, Array.from(x64.data as Float64Array, (v) => erfJs(v)), 1e-14, 1e-13, 'erf f64');
  let worst = 0;
  for (let i = 0; i < xs.length; i++) worst = Math.max(worst, Math.abs(y32[i]! - y64[i]!) / Math.max(Math.abs(y64[i]!), 1e-3));
  assert.ok(worst < 1.5e-6, `float32 Erf vs float64 lowering: max relative diff ${worst}`);
});

test('comparisons, Not and Max forward values', async () => {
  const a = tensorOf('float64', [4], [1, 2, 3, 4]), b = tensorOf('float64', [4], [2, 2, 2, 2]);
  const r = await forward((_, [x, y]) => ({ eq: equal(x!, y!), lt: less(x!, y!), gt: greater(x!, y!), ne: not(equal(x!, y!)), mx: maximum(x!, y!) }), [a, b]);
  assert.deepEqual([...r.eq!.data], [0, 1, 0, 0]);
  assert.deepEqual([...r.lt!.data], [1, 0, 0, 0]);
  assert.deepEqual([...r.gt!.data], [0, 0, 1, 1]);
  assert.deepEqual([...r.ne!.data], [1, 0, 1, 1]);
  assert.deepEqual([...r.mx!.data], [2, 2, 3, 4]);
});

test('shape errors name the op and the shapes', () => {
  const g = new Graph();
  const a = g.input('a', [2, 3]), b = g.input('b', [4]);
  assert.throws(() => add(a, b), (e: unknown) => e instanceof GraphError && /^Add\(a:float32\[2,3\], b:float32\[4\]\).*\[2,3\] and \[4\] do not broadcast/.test(e.message));
  assert.throws(() => mul(a, g.input('c', [2, 3], 'float64')), /Mul\(.*dtype mismatch float32 vs float64/);
  assert.throws(() => where(a, a, a), /Where\(.*condition must be bool/);
  assert.throws(() => exp(g.input('i', [2], 'int64')), /Exp\(.*must be float32\/float64, got int64/);
});

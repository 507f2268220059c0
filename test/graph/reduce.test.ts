// Reductions: gradient checks for ReduceSum/ReduceMean (keepdims both ways, all/some/no axes) and
// ReduceMax (away from ties by finite differences; the even split on ties by exact values).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, GraphError, grad, mul, reduceMax, reduceMean, reduceSum, sumToShape, tensorOf } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

const cases: [number[] | undefined, boolean][] = [
  [undefined, false], [undefined, true], [[1], false], [[1], true], [[0, 2], false], [[-1, 0], true],
];

for (const [name, f] of [['ReduceSum', reduceSum], ['ReduceMean', reduceMean], ['ReduceMax', reduceMax]] as const) {
  test(`grad ${name}: axes and keepdims`, async () => {
    // random data has no ties, so ReduceMax is differentiable there
    for (const [axes, keep] of cases) await gradCheck((x) => f(x, axes, keep), [{ value: randTensor([2, 3, 4], 1) }]);
  });
}

test('reduction over an empty axis list is the identity (not ONNX\'s reduce-all)', async () => {
  const g = new Graph();
  const x = g.input('x', [2, 2], 'float64');
  g.output('s', reduceSum(x, [], true));
  g.output('m', reduceMean(x, []));
  g.output('mx', reduceMax(x, []));
  const r = await runOnce(g, { x: tensorOf('float64', [2, 2], [1, 2, 3, 4]) });
  for (const k of ['s', 'm', 'mx']) {
    assert.deepEqual(r[k]!.shape, [2, 2]);
    assert.deepEqual([...r[k]!.data], [1, 2, 3, 4]);
  }
  await gradCheck((v) => reduceSum(v, []), [{ value: randTensor([2, 3], 2) }]);
});

test('ReduceMax forward and its gradient split evenly on ties', async () => {
  const g = new Graph();
  const x = g.input('x', [2, 4], 'float64');
  const y = reduceMax(x, [1]);
  const w = g.constant(tensorOf('float64', [2], [1, 10]));
  g.output('y', y);
  g.output('dx', grad(reduceSum(mul(y, w)), [x])[0]!);
  const r = await runOnce(g, { x: tensorOf('float64', [2, 4], [3, 1, 3, 3, -1, 5, 2, 0]) });
  assert.deepEqual([...r.y!.data], [3, 5]);
  assert.deepEqual([...r.dx!.data], [1 / 3, 0, 1 / 3, 1 / 3, 0, 10, 0, 0]);
});

test('sumToShape is the adjoint of broadcasting', async () => {
  await gradCheck((x) => sumToShape(x, [3, 1]), [{ value: randTensor([2, 3, 4], 3) }]);
  await gradCheck((x) => sumToShape(x, []), [{ value: randTensor([2, 3], 4) }]);
});

test('reduction errors name the op', () => {
  const x = new Graph().input('x', [2, 3]);
  assert.throws(() => reduceSum(x, [2]), (e: unknown) => e instanceof GraphError && /axis 2 out of range for rank 2/.test(e.message));
  assert.throws(() => reduceMean(x, [1, -1]), /repeated axis in \[1,1\]/);
});

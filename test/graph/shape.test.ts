// Layout ops: gradient checks for Reshape, Transpose, Concat, Slice, Expand, Pad, Identity and the
// builders made of them (unsqueeze, squeeze, split), forward values of Slice/Pad, and shape errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Graph, GraphError, concat, expand, grad, identity, mul, pad, reduceSum, reshape, slice, split, squeeze, tensorOf, transpose, unsqueeze,
  type Value,
} from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

test('grad Reshape (with -1), unsqueeze, squeeze', async () => {
  await gradCheck((x) => reshape(x, [3, -1]), [{ value: randTensor([2, 3, 2], 1) }]);
  await gradCheck((x) => squeeze(unsqueeze(x, -1), 2), [{ value: randTensor([2, 3], 2) }]);
  await gradCheck((x) => reshape(x, []), [{ value: randTensor([1, 1], 3) }]);
});

test('grad Transpose with non-trivial perms', async () => {
  for (const perm of [[1, 0], [2, 0, 1], [1, 3, 0, 2], [0, 2, 1, 3]]) {
    const shape = [2, 3, 4, 5].slice(0, perm.length);
    await gradCheck((x) => transpose(x, perm), [{ value: randTensor(shape, perm.length + perm[0]!) }], { maxElements: 32 });
  }
  await gradCheck((x) => transpose(x), [{ value: randTensor([2, 3, 4], 4) }]);
});

test('grad Concat of 3 inputs, middle and negative axes', async () => {
  await gradCheck((a, b, c) => concat([a, b, c], 1), [
    { value: randTensor([2, 1, 3], 5) }, { value: randTensor([2, 4, 3], 6) }, { value: randTensor([2, 2, 3], 7) },
  ]);
  await gradCheck((a, b, c) => concat([a, b, c], -1), [
    { value: randTensor([2, 1], 8) }, { value: randTensor([2, 3], 9) }, { value: randTensor([2, 2], 10) },
  ]);
  // the same value twice: both slices of the gradient accumulate into it
  await gradCheck((a, b) => concat([a, b, a], 0), [{ value: randTensor([2, 3], 11) }, { value: randTensor([1, 3], 12) }]);
});

test('grad Slice: steps > 1, negative starts, several axes, clamped ends', async () => {
  const x = randTensor([5, 7], 13);
  await gradCheck((v) => slice(v, [1], [5], [1], [2]), [{ value: x }]);
  await gradCheck((v) => slice(v, [-4], [100], [1], [3]), [{ value: x }]);
  await gradCheck((v) => slice(v, [-3, 0], [-1, 7], [0, 1], [1, 2]), [{ value: x }]);
  await gradCheck((v) => slice(v, [0, 6], [5, 7], [-1, 0], [4, 1]), [{ value: randTensor([7, 5, 2], 14) }], { maxElements: 70 });
});

test('Slice forward values with step and negative start', async () => {
  const g = new Graph();
  const x = g.input('x', [10], 'float64');
  g.output('a', slice(x, [-7], [10], [0], [3]));
  g.output('b', slice(x, [1], [-1], [0], [4]));
  const r = await runOnce(g, { x: tensorOf('float64', [10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) });
  assert.deepEqual([...r.a!.data], [3, 6, 9]);
  assert.deepEqual([...r.b!.data], [1, 5]);
});

test('grad Expand and Pad', async () => {
  await gradCheck((x) => expand(x, [2, 3, 4]), [{ value: randTensor([3, 1], 15) }]);
  await gradCheck((x) => expand(x, [2, 3]), [{ value: randTensor([], 16) }]);
  await gradCheck((x) => pad(x, [1, 0, 2, 0, 3, 1], 0.5), [{ value: randTensor([2, 3, 2], 17) }]);
  await gradCheck((x) => pad(x, [0, 0, 0, 0]), [{ value: randTensor([2, 2], 18) }]);
});

test('Pad forward value fill', async () => {
  const g = new Graph();
  const x = g.input('x', [1, 2], 'float64');
  g.output('y', pad(x, [1, 0, 0, 2], -1));
  const r = await runOnce(g, { x: tensorOf('float64', [1, 2], [5, 6]) });
  assert.deepEqual(r.y!.shape, [2, 4]);
  assert.deepEqual([...r.y!.data], [-1, -1, -1, -1, 5, 6, -1, -1]);
});

test('grad Identity and split', async () => {
  await gradCheck((x) => mul(identity(x), x), [{ value: randTensor([3, 2], 19) }]);
  await gradCheck((x) => {
    const [a, b, c] = split(x, [1, 3, 2], 1) as [Value, Value, Value];
    return concat([mul(a, c.graph.constant(tensorOf('float64', [], [2]))), c, b], 1);
  }, [{ value: randTensor([2, 6], 20) }]);
});

test('slices that partition a value get one Concat gradient: gaps, unused pieces, overlaps, fallbacks', async () => {
  const x2 = (v: Value) => mul(v, v);
  // three pieces along axis 1 (like q, k, v), one of them unused by the loss: zero piece
  await gradCheck((x) => concat([x2(slice(x, [0], [2], [1])), slice(x, [4], [6], [1])], 1), [{ value: randTensor([2, 6, 3], 21) }]);
  // a gap between the pieces and a piece ending before the axis end
  await gradCheck((x) => concat([slice(x, [1], [2], [0]), x2(slice(x, [3], [4], [0]))], 0), [{ value: randTensor([5, 2], 22) }]);
  // overlapping slices and a slice on another axis: the per-slice rule (pad and add) is used
  await gradCheck((x) => concat([x2(slice(x, [0], [3], [1])), slice(x, [2], [4], [1])], 1), [{ value: randTensor([2, 4], 23) }]);
  await gradCheck((x) => concat([slice(x, [0], [1], [0]), x2(reshape(slice(x, [1], [2], [1]), [1, 2]))], 0), [{ value: randTensor([2, 2], 24) }]);
  // the partitioned gradient is one Concat, not Pads
  const g = new Graph();
  const x = g.input('x', [2, 6], 'float64');
  const parts = [0, 2, 4].map((s) => slice(x, [s], [s + 2], [1]));
  const [dx] = grad(reduceSum(concat([mul(parts[0]!, parts[1]!), parts[2]!], 1)), [x]);
  assert.equal(dx!.node?.op, 'Concat');
  assert.ok(!g.nodes.some((n) => n.op === 'Pad'), 'no Pad in the backward');
});

test('shape errors name the op and the shapes', () => {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  assert.throws(() => reshape(x, [4, 2]), (e: unknown) => e instanceof GraphError && /^Reshape\(x:float32\[2,3\]\): cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/.test(e.message));
  assert.throws(() => reshape(x, [-1, 4]), /Reshape\(.*cannot reshape \[2,3\] to \[-1,4\]/);
  assert.throws(() => concat([x, g.input('y', [3, 3])], 1), (e: unknown) => e instanceof GraphError && /^Concat\(x:float32\[2,3\], y:float32\[3,3\]\): inputs must match except on axis 1/.test(e.message));
  assert.throws(() => transpose(x, [0, 0]), /Transpose\(x:float32\[2,3\]\): bad perm \[0,0\]/);
  assert.throws(() => expand(x, [4, 3]), /Expand\(.*cannot expand \[2,3\] to \[4,3\]/);
  assert.throws(() => pad(x, [1, 1]), /Pad\(.*pads \[1,1\] must be 4 non-negative integers/);
  assert.throws(() => slice(x, [0], [2], [0], [-1]), /Slice\(.*only positive steps/);
  assert.throws(() => squeeze(x, 0), /squeeze: axis 0 of x:float32\[2,3\] is not 1/);
  assert.throws(() => split(x, [1, 1], 1), /split: sizes \[1,1\] do not sum to 3/);
});

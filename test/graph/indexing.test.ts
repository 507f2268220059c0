// Indexing ops: gradient checks of Gather (any axis, duplicate and negative indices), GatherElements,
// GatherND and the scatters (add and none), exact accumulation of duplicates, and the forward values
// of the non-differentiable helpers (TopK, ArgMax, Zeros, StopGradient).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Graph, GraphError, argMax, gather, gatherElements, gatherND, grad, mul, reduceSum, scatterElements, scatterND, stopGradient,
  tensorOf, topK, zeros,
} from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

const idx = (shape: number[], values: number[]) => ({ value: tensorOf('int64', shape, values) });

test('grad Gather on axis 0 with duplicate, 2-D and scalar indices', async () => {
  const data = { value: randTensor([4, 3], 1) };
  await gradCheck((d, i) => gather(d, i, 0), [data, idx([5], [1, 3, 1, 0, 1])]);
  await gradCheck((d, i) => gather(d, i, 0), [data, idx([2, 3], [2, 2, 0, 3, 2, 1])]);
  await gradCheck((d, i) => gather(d, i, 0), [data, idx([], [2])]);
});

test('grad Gather on inner and negative axes (transposed to axis 0), negative indices', async () => {
  const data = { value: randTensor([2, 4, 3], 2) };
  await gradCheck((d, i) => gather(d, i, 1), [data, idx([3], [3, 0, 3])]);
  await gradCheck((d, i) => gather(d, i, -1), [data, idx([2, 2], [2, 2, 0, 2])]);
  await gradCheck((d, i) => gather(d, i, 1), [data, idx([2, 1], [1, 1])]);
  await gradCheck((d, i) => gather(d, i, 2), [data, idx([], [1])]);
  await gradCheck((d, i) => gather(d, i, 1), [data, idx([3], [-1, 0, -1])]);
});

test('Gather gradient accumulates duplicates exactly', async () => {
  const g = new Graph();
  const d = g.input('d', [4, 2], 'float64');
  const y = gather(d, g.constant(tensorOf('int64', [5], [1, 1, 3, 1, -1])), 0);
  g.output('dd', grad(reduceSum(y), [d])[0]!);
  const r = await runOnce(g, { d: randTensor([4, 2], 3) });
  assert.deepEqual([...r.dd!.data], [0, 0, 3, 3, 0, 0, 2, 2]);
});

test('grad GatherElements on each axis with duplicates', async () => {
  const data = { value: randTensor([3, 4], 4) };
  await gradCheck((d, i) => gatherElements(d, i, 0), [data, idx([2, 4], [0, 2, 2, 1, 0, 0, 2, 1])]);
  await gradCheck((d, i) => gatherElements(d, i, 1), [data, idx([3, 5], [3, 3, 0, 1, 3, 0, 0, 0, 2, 1, 1, 2, 3, 3, 3])]);
  await gradCheck((d, i) => gatherElements(d, i, -1), [data, idx([3, 1], [1, 3, 0])]);
});

test('grad GatherND with partial and full index tuples, duplicates', async () => {
  const data = { value: randTensor([3, 4, 2], 5) };
  await gradCheck((d, i) => gatherND(d, i), [data, idx([3, 1], [2, 0, 2])]);
  await gradCheck((d, i) => gatherND(d, i), [data, idx([2, 2, 2], [0, 1, 2, 3, 0, 1, 1, 1])]);
  await gradCheck((d, i) => gatherND(d, i), [data, idx([2, 3], [0, 0, 1, 0, 0, 1])]);
});

test('grad ScatterND with reduction add (duplicates) and none (unique)', async () => {
  const data = { value: randTensor([4, 3], 6) };
  await gradCheck((d, i, u) => scatterND(d, i, u, 'add'), [data, idx([3, 1], [1, 3, 1]), { value: randTensor([3, 3], 7) }]);
  await gradCheck((d, i, u) => scatterND(d, i, u, 'add'), [data, idx([2, 2], [0, 2, 0, 2]), { value: randTensor([2], 8) }]);
  await gradCheck((d, i, u) => scatterND(d, i, u), [data, idx([2, 1], [3, 0]), { value: randTensor([2, 3], 9) }]);
  await gradCheck((d, i, u) => scatterND(d, i, u), [data, idx([2, 2], [1, 2, 3, 0]), { value: randTensor([2], 10) }]);
});

test('grad ScatterElements with reduction add (duplicates) and none (unique)', async () => {
  const data = { value: randTensor([3, 4], 11) };
  await gradCheck((d, i, u) => scatterElements(d, i, u, 1, 'add'), [data, idx([3, 2], [1, 1, 0, 3, 2, 2]), { value: randTensor([3, 2], 12) }]);
  await gradCheck((d, i, u) => scatterElements(d, i, u, 0, 'add'), [data, idx([2, 4], [2, 2, 0, 1, 2, 0, 0, 1]), { value: randTensor([2, 4], 13) }]);
  await gradCheck((d, i, u) => scatterElements(d, i, u, 0), [data, idx([2, 3], [2, 0, 1, 0, 1, 2]), { value: randTensor([2, 3], 14) }]);
});

test('scatter forward values: none overwrites, add accumulates', async () => {
  const g = new Graph();
  const d = g.input('d', [4], 'float64');
  const i = g.constant(tensorOf('int64', [3, 1], [2, 0, 2]));
  const u = g.constant(tensorOf('float64', [3], [10, 20, 30]));
  g.output('add', scatterND(d, i, u, 'add'));
  g.output('none', scatterND(d, g.constant(tensorOf('int64', [2, 1], [3, 0])), g.constant(tensorOf('float64', [2], [7, 8]))));
  g.output('el', scatterElements(d, g.constant(tensorOf('int64', [3], [1, 1, 3])), u, 0, 'add'));
  const r = await runOnce(g, { d: tensorOf('float64', [4], [1, 2, 3, 4]) });
  assert.deepEqual([...r.add!.data], [21, 2, 43, 4]);
  assert.deepEqual([...r.none!.data], [8, 2, 3, 7]);
  assert.deepEqual([...r.el!.data], [1, 32, 3, 34]);
});

test('non-differentiable helpers: TopK, ArgMax, Zeros, StopGradient', async () => {
  const g = new Graph();
  const x = g.input('x', [2, 4], 'float64');
  const [v, ix] = topK(x, 2, 1);
  g.output('v', v);
  g.output('i', ix);
  g.output('am', argMax(x, 1, true));
  g.output('z', zeros(x, [2, 3], 'float64'));
  // only the direct path carries gradient; the stopped copy is a constant
  g.output('dx', grad(reduceSum(mul(x, stopGradient(x))), [x])[0]!);
  assert.deepEqual(grad(reduceSum(v), [x]), [null], 'TopK stops gradient');
  const xs = tensorOf('float64', [2, 4], [3, 9, 9, 1, -5, -2, -8, -3]);
  const r = await runOnce(g, { x: xs });
  assert.deepEqual([...r.v!.data], [9, 9, -2, -3]);
  assert.deepEqual([...r.i!.data], [1n, 2n, 1n, 3n]);
  assert.deepEqual(r.am!.shape, [2, 1]);
  assert.deepEqual([...r.am!.data], [1n, 1n]);
  assert.deepEqual([...r.z!.data], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...r.dx!.data], [...xs.data]);
});

test('indexing errors name the op and the shapes', () => {
  const g = new Graph();
  const d = g.input('d', [4, 3]);
  assert.throws(() => gather(d, g.input('f', [2])), (e: unknown) => e instanceof GraphError && /^Gather\(d:float32\[4,3\], f:float32\[2\]\): Gather indices must be int64/.test(e.message));
  assert.throws(() => gatherElements(d, g.input('i', [4], 'int64'), 0), /GatherElements\(.*must have the rank of data/);
  assert.throws(() => scatterND(d, g.input('j', [2, 1], 'int64'), g.input('u', [2, 2])), /ScatterND\(.*updates u:float32\[2,2\] must be \[2,3\]/);
  assert.throws(() => gatherND(d, g.input('k', [2, 3], 'int64')), /GatherND\(.*last axis of indices .* must be in \[1, 2\]/);
  assert.throws(() => topK(d, 5, 1), /TopK\(.*k=5 outside \[0, 3\]/);
});

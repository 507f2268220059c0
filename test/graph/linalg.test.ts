// Matrix products: gradient checks for MatMul with batch broadcasting and Gemm with every
// transpose combination, alpha/beta and broadcast C; forward Gemm against JS; shape errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, GraphError, gemm, matmul, mT, tensorOf } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { assertClose, gradCheck, randTensor } from '../helpers/gradcheck.js';

test('grad MatMul: plain, batched, batch broadcast on either or both sides', async () => {
  const pairs: [number[], number[]][] = [
    [[3, 4], [4, 2]],
    [[2, 3, 4], [2, 4, 2]],
    [[2, 3, 4], [4, 2]],
    [[3, 4], [2, 4, 2]],
    [[2, 1, 3, 2], [3, 2, 2]],
  ];
  let seed = 1;
  for (const [a, b] of pairs) await gradCheck(matmul, [{ value: randTensor(a, seed++) }, { value: randTensor(b, seed++) }]);
});

test('grad mT (last-two-axes transpose) inside a product', async () => {
  await gradCheck((a) => matmul(a, mT(a)), [{ value: randTensor([2, 3, 2], 11) }]);
});

// alpha/beta are float ONNX attributes (float32), so the test uses values exact in float32
for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    test(`grad Gemm transA=${transA} transB=${transB} with alpha, beta and broadcast C`, async () => {
      const [m, k, n] = [3, 4, 2];
      const a = randTensor(transA ? [k, m] : [m, k], 21), b = randTensor(transB ? [n, k] : [k, n], 22);
      const o = { transA, transB, alpha: 0.75, beta: -1.5 };
      for (const cShape of [[m, n], [n], [m, 1], [1, n], []]) {
        await gradCheck((x, y, c) => gemm(x, y, c, o), [{ value: a }, { value: b }, { value: randTensor(cShape, 23) }]);
      }
      await gradCheck((x, y) => gemm(x, y, undefined, o), [{ value: a }, { value: b }]);
    });
  }
}

test('Gemm forward equals alpha * op(A) op(B) + beta * C', async () => {
  const a = randTensor([4, 3], 31), b = randTensor([2, 4], 32), c = randTensor([2], 33);
  const g = new Graph();
  const [x, y, z] = [g.input('a', [4, 3], 'float64'), g.input('b', [2, 4], 'float64'), g.input('c', [2], 'float64')];
  g.output('y', gemm(x, y, z, { transA: true, transB: true, alpha: 0.5, beta: 2 }));
  const r = await runOnce(g, { a, b, c });
  const A = a.data as Float64Array, B = b.data as Float64Array, C = c.data as Float64Array;
  const want: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let t = 0; t < 4; t++) s += A[t * 3 + i]! * B[j * 4 + t]!;
      want.push(0.5 * s + 2 * C[j]!);
    }
  }
  assertClose(r.y!.data as Float64Array, want, 1e-14, 0, 'gemm');
});

test('matmul/gemm errors name the op and the shapes', () => {
  const g = new Graph();
  const a = g.input('a', [2, 3]), b = g.input('b', [4, 5]);
  assert.throws(() => matmul(a, b), (e: unknown) => e instanceof GraphError && /^MatMul\(a:float32\[2,3\], b:float32\[4,5\]\): inner dimensions differ: \[2,3\] @ \[4,5\]/.test(e.message));
  assert.throws(() => matmul(g.input('c', [2, 2, 3]), g.input('d', [3, 3, 2])), /MatMul\(.*\[2\] and \[3\] do not broadcast/);
  assert.throws(() => gemm(a, b), /Gemm\(.*inner dimensions differ \(3 vs 4\)/);
  assert.throws(() => gemm(a, g.input('e', [3, 2]), g.input('f', [3, 1])), /Gemm\(.*do not broadcast/);
  assert.throws(() => matmul(g.input('v', [3]), a), /MatMul\(.*rank >= 2/);
  assert.throws(() => matmul(g.constant(tensorOf('int64', [1, 1], [1])), g.constant(tensorOf('int64', [1, 1], [1]))), /float32\/float64, got int64/);
});

// BatchNorm2d composite: finite-difference gradients in both modes, and the forward values
// (normalisation and PyTorch's running-statistics update) against a plain JS computation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, grad, reduceSum } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { batchNorm } from '../../src/nn/batchnorm.js';
import { assertClose, gradCheck, randTensor } from '../helpers/gradcheck.js';

const X = [3, 4, 5, 6];
const C = X[1]!;
const runningVar = () => randTensor([C], 4, 0.5, 2);

for (const mode of ['eval', 'train'] as const) {
  test(`batchNorm ${mode}: gradient w.r.t. x, weight and bias matches finite differences`, async () => {
    await gradCheck(
      (x, w, b, rm, rv) => batchNorm(x!, { weight: w!, bias: b!, runningMean: rm!, runningVar: rv! }, mode).y,
      [
        // an offset mean makes the centring matter
        { value: randTensor(X, 1, -1, 3) },
        { value: randTensor([C], 2, 0.5, 1.5) },
        { value: randTensor([C], 3) },
        { value: randTensor([C], 5), diff: false },
        { value: runningVar(), diff: false },
      ],
      { tol: 1e-6 },
    );
  });
}

test('batchNorm: forward and running-stat update match a JS computation (PyTorch semantics)', async () => {
  const x = randTensor(X, 11, -2, 4), w = randTensor([C], 12), b = randTensor([C], 13);
  const rm = randTensor([C], 14), rv = runningVar();
  const g = new Graph();
  const ins = [g.input('x', X, 'float64'), g.input('w', [C], 'float64'), g.input('b', [C], 'float64'), g.input('rm', [C], 'float64'), g.input('rv', [C], 'float64')];
  const params = { weight: ins[1]!, bias: ins[2]!, runningMean: ins[3]!, runningVar: ins[4]! };
  const tr = batchNorm(ins[0]!, params, 'train', { eps: 1e-5, momentum: 0.1 });
  const ev = batchNorm(ins[0]!, params, 'eval');
  assert.equal(ev.runningMean, undefined);
  g.output('y', tr.y);
  g.output('rm2', tr.runningMean!);
  g.output('rv2', tr.runningVar!);
  g.output('ye', ev.y);
  const out = await runOnce(g, { x, w, b, rm, rv });
  const [n, , h, wd] = X as [number, number, number, number];
  const xs = x.data as Float64Array, cnt = n * h * wd;
  const at = (i: number, c: number, p: number) => xs[(i * C + c) * h * wd + p]!;
  const wv = w.data as Float64Array, bv = b.data as Float64Array, rmv = rm.data as Float64Array, rvv = rv.data as Float64Array;
  const y = new Float64Array(xs.length), ye = new Float64Array(xs.length);
  const rm2 = new Float64Array(C), rv2 = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let i = 0; i < n; i++) for (let p = 0; p < h * wd; p++) s += at(i, c, p);
    const mean = s / cnt;
    let ss = 0;
    for (let i = 0; i < n; i++) for (let p = 0; p < h * wd; p++) ss += (at(i, c, p) - mean) ** 2;
    rm2[c] = 0.9 * rmv[c]! + 0.1 * mean;
    rv2[c] = 0.9 * rvv[c]! + 0.1 * (ss / (cnt - 1));
    for (let i = 0; i < n; i++) for (let p = 0; p < h * wd; p++) {
      const k = (i * C + c) * h * wd + p;
      y[k] = ((at(i, c, p) - mean) / Math.sqrt(ss / cnt + 1e-5)) * wv[c]! + bv[c]!;
      ye[k] = ((at(i, c, p) - rmv[c]!) / Math.sqrt(rvv[c]! + 1e-5)) * wv[c]! + bv[c]!;
    }
  }
  assertClose(out.y!.data as Float64Array, y, 1e-12, 0, 'train output');
  assertClose(out.ye!.data as Float64Array, ye, 1e-12, 0, 'eval output');
  assertClose(out.rm2!.data as Float64Array, rm2, 1e-14, 0, 'running_mean');
  assertClose(out.rv2!.data as Float64Array, rv2, 1e-14, 0, 'running_var (unbiased batch variance)');
});

test('batchNorm: running statistics carry no gradient, and misuse is a readable error', () => {
  const g = new Graph();
  const x = g.input('x', [2, 2, 1, 1], 'float64');
  const v = (n: string) => g.input(n, [2], 'float64');
  const r = batchNorm(x, { weight: v('w'), bias: v('b'), runningMean: v('rm'), runningVar: v('rv') }, 'train');
  assert.deepEqual(grad(reduceSum(r.runningVar!), [x]), [null]);
  const one = g.input('one', [1, 2, 1, 1], 'float64');
  assert.throws(() => batchNorm(one, { weight: v('w1'), bias: v('b1'), runningMean: v('rm1'), runningVar: v('rv1') }, 'train'), /more than one value per channel/);
  assert.throws(() => batchNorm(x, { weight: g.input('w3', [3], 'float64'), bias: v('b2'), runningMean: v('rm2'), runningVar: v('rv2') }, 'eval'), /weight .* must be float64\[2\]/);
});

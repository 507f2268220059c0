// Conv: float64 finite-difference checks of the gradient rules (input, weight, bias) across the
// variants the policy net and the patch embedding use, and agreement of ORT's float32 Conv (forward
// and backward) with the float64 im2col lowering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, conv2d, constant, grad, mul, reduceSum, type ConvOptions, type DType } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { gradCheck, randTensor } from '../helpers/gradcheck.js';

interface Case {
  name: string;
  x: number[];
  w: number[];
  bias: boolean;
  o: ConvOptions;
}

const cases: Case[] = [
  { name: '1x1 stride 1, bias', x: [2, 3, 4, 5], w: [4, 3, 1, 1], bias: true, o: {} },
  { name: '1x1 stride 2, odd size', x: [2, 3, 5, 5], w: [4, 3, 1, 1], bias: false, o: { strides: [2, 2] } },
  { name: '3x3 no padding, bias', x: [2, 2, 5, 6], w: [3, 2, 3, 3], bias: true, o: {} },
  { name: '3x3 pad 1 (same)', x: [2, 2, 5, 4], w: [3, 2, 3, 3], bias: false, o: { pads: [1, 1] } },
  { name: '3x3 stride 2 pad 1, even size', x: [2, 3, 6, 6], w: [4, 3, 3, 3], bias: true, o: { strides: [2, 2], pads: [1, 1] } },
  { name: '3x3 stride 2 pad 1, odd size', x: [1, 2, 7, 5], w: [3, 2, 3, 3], bias: false, o: { strides: [2, 2], pads: [1, 1] } },
  { name: '3x3 stride 2 no pad, uncovered edge', x: [2, 2, 6, 6], w: [2, 2, 3, 3], bias: false, o: { strides: [2, 2] } },
  { name: '5x5 pad 2', x: [2, 2, 6, 5], w: [2, 2, 5, 5], bias: true, o: { pads: [2, 2] } },
  { name: '5x5 stride 2 pad 2, even size', x: [2, 2, 8, 8], w: [3, 2, 5, 5], bias: false, o: { strides: [2, 2], pads: [2, 2] } },
  { name: 'asymmetric stride/pad, rectangular kernel', x: [1, 2, 7, 6], w: [2, 2, 3, 2], bias: true, o: { strides: [2, 1], pads: [1, 0, 0, 1] } },
  { name: 'dilated 3x3 dilation 2 pad 2', x: [2, 2, 7, 7], w: [2, 2, 3, 3], bias: false, o: { pads: [2, 2], dilations: [2, 2] } },
  { name: 'dilated + strided', x: [1, 2, 9, 8], w: [2, 2, 3, 3], bias: true, o: { strides: [2, 2], pads: [1, 1], dilations: [2, 2] } },
  { name: 'grouped (2 groups)', x: [2, 4, 5, 5], w: [6, 2, 3, 3], bias: true, o: { pads: [1, 1], group: 2 } },
  { name: 'grouped stride 2', x: [2, 4, 6, 5], w: [4, 2, 3, 3], bias: false, o: { strides: [2, 2], pads: [1, 1], group: 2 } },
  { name: 'depthwise 3x3 stride 1', x: [2, 4, 5, 6], w: [4, 1, 3, 3], bias: false, o: { pads: [1, 1], group: 4 } },
  { name: 'depthwise 3x3 stride 2, even size', x: [2, 4, 8, 6], w: [4, 1, 3, 3], bias: false, o: { strides: [2, 2], pads: [1, 1], group: 4 } },
  { name: 'depthwise 3x3 stride 2, odd size', x: [2, 3, 7, 7], w: [3, 1, 3, 3], bias: true, o: { strides: [2, 2], pads: [1, 1], group: 3 } },
  { name: 'depthwise 5x5 stride 2, even size', x: [2, 3, 8, 8], w: [3, 1, 5, 5], bias: false, o: { strides: [2, 2], pads: [2, 2], group: 3 } },
  { name: 'depthwise 5x5 stride 1', x: [1, 3, 6, 6], w: [3, 1, 5, 5], bias: true, o: { pads: [2, 2], group: 3 } },
  { name: 'depthwise multiplier 2', x: [2, 2, 5, 5], w: [4, 1, 3, 3], bias: false, o: { pads: [1, 1], group: 2 } },
  { name: '1x1 with pad 1 (input gradient crops)', x: [2, 2, 4, 3], w: [3, 2, 1, 1], bias: true, o: { pads: [1, 1] } },
  { name: 'patch embedding (kernel = stride = 4)', x: [2, 3, 8, 8], w: [5, 3, 4, 4], bias: true, o: { strides: [4, 4] } },
];

for (const [i, c] of cases.entries()) {
  test(`conv gradcheck: ${c.name}`, async () => {
    const inputs = [{ value: randTensor(c.x, 10 + i) }, { value: randTensor(c.w, 20 + i) }];
    if (c.bias) inputs.push({ value: randTensor([c.w[0]!], 30 + i) });
    await gradCheck((x, w, b) => conv2d(x!, w!, b, c.o), inputs, { seed: i, tol: 1e-7 });
  });
}

/** Forward, dx, dw (and db) of a weighted-sum loss, run in the given dtype. */
async function convAndGrads(c: Case, dtype: DType, seed: number): Promise<Float64Array[]> {
  const g = new Graph();
  const x = g.input('x', c.x, dtype), w = g.input('w', c.w, dtype);
  const b = c.bias ? g.input('b', [c.w[0]!], dtype) : undefined;
  const y = conv2d(x, w, b, c.o);
  const r = randTensor([...y.shape], seed + 99, 0.5, 1.5, dtype);
  const loss = reduceSum(mul(y, constant(g, dtype, y.shape, r.data as Float64Array)));
  const gs = grad(loss, b ? [x, w, b] : [x, w]);
  g.output('y', y);
  gs.forEach((v, k) => g.output(`g${k}`, v!));
  const feeds = {
    x: randTensor(c.x, seed, -1, 1, dtype),
    w: randTensor(c.w, seed + 1, -1, 1, dtype),
    ...(b ? { b: randTensor([c.w[0]!], seed + 2, -1, 1, dtype) } : {}),
  };
  const out = await runOnce(g, feeds);
  return ['y', 'g0', 'g1', ...(b ? ['g2'] : [])].map((k) => Float64Array.from(out[k]!.data as Float32Array | Float64Array));
}

test('conv: float32 native Conv (forward and backward) matches the float64 lowering', async () => {
  let worst = 0;
  for (const [i, c0] of cases.entries()) {
    // larger shapes so that the float32 kernels take their real (blocked, NCHWc) paths
    const grouped = (c0.o.group ?? 1) > 1;
    const c = { ...c0, x: [c0.x[0]!, c0.x[1]! * 4, c0.x[2]! + 9, c0.x[3]! + 10], w: [c0.w[0]! * 4, c0.w[1]! * (grouped ? 1 : 4), c0.w[2]!, c0.w[3]!] };
    if (grouped) c.o = { ...c.o, group: c0.o.group! * 4 };
    const a = await convAndGrads(c, 'float32', 100 + i);
    const e = await convAndGrads(c, 'float64', 100 + i);
    a.forEach((arr, k) => {
      const ref = e[k]!;
      const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let d = 0;
      for (let j = 0; j < arr.length; j++) d = Math.max(d, Math.abs(arr[j]! - ref[j]!));
      worst = Math.max(worst, d / scale);
      assert.ok(d / scale < 2e-6, `${c.name}, output ${k}: max |f32 - f64| / max|f64| = ${(d / scale).toExponential(2)}`);
    });
  }
  console.log(`# worst relative float32/float64 difference: ${worst.toExponential(2)}`);
});

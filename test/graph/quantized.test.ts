// The forward-only int8 product (DynamicQuantizeMatMul): per-channel weight quantization on the
// host, the op's output against a JS model of the same arithmetic (uint8 activations quantized per
// tensor at run time, int8 weights, int32 sums, float scales), shape checks, and int8 Linear layers
// built through constantParams. There is no gradient test: see src/graph/ops/quantized.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, GraphError, dynamicQuantizeMatMul, emitOnnx, grad, quantizeLinearWeight, reduceSum } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { constantParams } from '../../src/nn/params.js';
import { linear } from '../../src/nn/layers.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { randTensor } from '../helpers/gradcheck.js';

const f32 = (shape: number[], seed: number, lo = -1, hi = 1): HostTensor => randTensor(shape, seed, lo, hi, 'float32');

const roundHalfEven = (x: number): number => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** ORT's dynamic quantization of A (uint8, per tensor, range widened to hold 0) and its int8 product. */
function reference(a: Float32Array, m: number, k: number, q: Int8Array, scaleB: Float32Array, n: number, bias?: Float32Array): Float32Array {
  let lo = 0, hi = 0;
  for (const v of a) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  const s = Math.fround((hi - lo) / 255);
  const zp = roundHalfEven(Math.max(0, Math.min(255, 0 - lo / s)));
  const qa = a.map((v) => Math.max(0, Math.min(255, roundHalfEven(v / s) + zp)));
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let t = 0; t < k; t++) acc += (qa[i * k + t]! - zp) * q[t * n + j]!;
      y[i * n + j] = acc * s * scaleB[j]! + (bias ? bias[j]! : 0);
    }
  }
  return y;
}

test('quantizeLinearWeight: per output channel, symmetric, transposed to [in,out], error at most half a step', () => {
  const w = f32([3, 5], 1);
  (w.data as Float32Array).fill(0, 10, 15); // an all-zero row
  const { q, scale } = quantizeLinearWeight(w);
  assert.deepEqual(q.shape, [5, 3]);
  assert.equal(q.dtype, 'int8');
  const qd = q.data as Int8Array, sd = scale.data as Float32Array, wd = w.data as Float32Array;
  for (let o = 0; o < 3; o++) {
    let mx = 0, top = 0;
    for (let i = 0; i < 5; i++) {
      mx = Math.max(mx, Math.abs(wd[o * 5 + i]!));
      top = Math.max(top, Math.abs(qd[i * 3 + o]!));
      assert.ok(Math.abs(qd[i * 3 + o]! * sd[o]! - wd[o * 5 + i]!) <= sd[o]! / 2 + 1e-7);
    }
    if (mx > 0) assert.equal(top, 127, 'the largest weight of a channel maps to ±127');
    assert.equal(sd[o], mx > 0 ? Math.fround(mx / 127) : 1);
  }
  assert.throws(() => quantizeLinearWeight(f32([4], 2)), GraphError);
});

test('DynamicQuantizeMatMul forward equals the JS model of its arithmetic, with and without bias, rank 2 and 3', async () => {
  const [k, n] = [24, 7];
  const { q, scale } = quantizeLinearWeight(f32([n, k], 3, -0.5, 0.5));
  const bias = f32([n], 4);
  for (const [shape, withBias] of [[[5, k], true], [[2, 3, k], false], [[4, k], false]] as const) {
    const a = f32([...shape], 5 + shape.length, -2, 3);
    const g = new Graph();
    const x = g.input('a', shape);
    g.output('y', dynamicQuantizeMatMul(x, g.constant(q), g.constant(scale), withBias ? g.constant(bias) : undefined));
    const y = (await runOnce(g, { a })).y!;
    assert.deepEqual(y.shape, [...shape.slice(0, -1), n]);
    const m = a.data.length / k;
    const want = reference(a.data as Float32Array, m, k, q.data as Int8Array, scale.data as Float32Array, n, withBias ? (bias.data as Float32Array) : undefined);
    const tol = 1e-5 * Math.max(...Array.from(want, Math.abs));
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(y.data[i] as number - want[i]!) <= tol, `y[${i}] = ${y.data[i]} vs ${want[i]}`);
  }
});

test('int8 Linear through constantParams: close to float32, int8 weights in the file, and no gradient', async () => {
  const weights = new Map([['l.weight', f32([64, 96], 7, -0.2, 0.2)], ['l.bias', f32([64], 8)]]);
  const x = f32([2, 10, 96], 9);
  const run = async (precision: 'fp32' | 'int8') => {
    const g = new Graph();
    const xi = g.input('x', x.shape);
    const y = linear(xi, constantParams(g, weights, { precision }), 'l');
    g.output('y', y);
    return { y: (await runOnce(g, { x })).y!.data as Float32Array, bytes: emitOnnx(g).length, g, xi, yv: y };
  };
  const fp = await run('fp32'), i8 = await run('int8');
  let err = 0, mag = 0;
  for (let i = 0; i < fp.y.length; i++) (err = Math.max(err, Math.abs(fp.y[i]! - i8.y[i]!))), (mag = Math.max(mag, Math.abs(fp.y[i]!)));
  assert.ok(err > 0 && err < 0.02 * mag, `int8 error ${err} against outputs up to ${mag}`);
  // 64x96 weights: 24.6 kB in float32, 6.1 kB in int8 plus 64 scales
  assert.ok(i8.bytes < fp.bytes / 3, `int8 graph ${i8.bytes} B, float ${fp.bytes} B`);
  assert.throws(() => grad(reduceSum(i8.yv), [i8.xi]), /DynamicQuantizeMatMul has no gradient rule/);
});

test('DynamicQuantizeMatMul refuses float weights, mismatched inner dimensions and wrong scales', () => {
  const g = new Graph();
  const a = g.input('a', [4, 8]);
  const { q, scale } = quantizeLinearWeight(f32([3, 8], 10));
  const qb = g.constant(q), s = g.constant(scale);
  assert.throws(() => dynamicQuantizeMatMul(a, g.input('w', [8, 3]), s), /B must be a 2-D int8 matrix/);
  assert.throws(() => dynamicQuantizeMatMul(g.input('a2', [4, 6]), qb, s), /inner dimensions differ/);
  assert.throws(() => dynamicQuantizeMatMul(a, qb, g.input('s2', [4])), /b_scale must be float32 \[3\]/);
});

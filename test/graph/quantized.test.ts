// The forward-only int8 product (DynamicQuantizeMatMul): per-channel weight quantization on the
// host, the op's output against a JS model of the same arithmetic (uint8 activations quantized per
// tensor at run time, int8 weights, int32 sums, float scales), shape checks, and int8 Linear layers
// built through constantParams. There is no gradient test: see src/graph/ops/quantized.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, GraphError, dynamicQuantizeMatMul, emitOnnx, grad, mT, quantizeLinearWeight, quantizeSymmetric, reduceSum } from '../../src/graph/index.js';
import onnxProto from 'onnx-proto';
import { fromFloat16Bits, toFloat16Bits } from '../../src/base/float16.js';
import { attention, project } from '../../src/nn/layers.js';
import { patchEmbed } from '../../src/models/vit.js';
import { createSegmenterConfig } from '../../src/models/config.js';
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
  assert.throws(() => dynamicQuantizeMatMul(a, g.input('w', [8, 3]), s), /B must be an int8 matrix/);
  assert.throws(() => dynamicQuantizeMatMul(g.input('a2', [4, 6]), qb, s), /inner dimensions differ/);
  assert.throws(() => dynamicQuantizeMatMul(a, qb, g.input('s2', [4])), /b_scale must be float32 \[3\]/);
});

/** ONNX QuantizeLinear to int8 with zero point 0: x / s rounded half to even, saturated to [-128, 127]. */
const quantizeInt8 = (x: number, s: number): number => Math.max(-128, Math.min(127, roundHalfEven(x / s)));

test('QuantizeSymmetric: scale max|x|/127, codes as ONNX QuantizeLinear, an all-zero tensor stays finite', async () => {
  const cases: [HostTensor, boolean][] = [[f32([3, 4, 5], 20, -3, 2), false], [{ dtype: 'float32', shape: [2, 3], data: new Float32Array(6) }, true]];
  for (const [x, zero] of cases) {
    const g = new Graph();
    const [q, s] = quantizeSymmetric(g.input('x', x.shape));
    assert.equal(q.dtype, 'int8');
    assert.deepEqual(s.shape, []);
    g.output('q', q);
    g.output('s', s);
    const r = await runOnce(g, { x });
    const xd = x.data as Float32Array;
    const m = Math.max(...Array.from(xd, Math.abs));
    const scale = r.s!.data[0] as number;
    assert.ok(Number.isFinite(scale) && scale > 0);
    if (!zero) assert.equal(scale, Math.fround(Math.fround(m) / 127));
    const qd = r.q!.data as Int8Array;
    for (let i = 0; i < xd.length; i++) assert.equal(qd[i], zero ? 0 : quantizeInt8(xd[i]!, scale), `code ${i}`);
    if (!zero) assert.equal(Math.max(...Array.from(qd, Math.abs)), 127);
  }
});

test('DynamicQuantizeMatMul with a batched int8 B quantized in the graph and a scalar scale equals the JS model', async () => {
  // attention's q kᵀ: q [2,3,5,8] float, k [2,3,6,8] quantized per tensor, alpha folded into the scale
  const qa = f32([2, 3, 5, 8], 21, -2, 2), ka = f32([2, 3, 6, 8], 22, -1.5, 1);
  const g = new Graph();
  const [kq, s] = quantizeSymmetric(g.input('k', ka.shape));
  g.output('y', dynamicQuantizeMatMul(g.input('q', qa.shape), mT(kq), s));
  g.output('kq', kq);
  g.output('s', s);
  const r = await runOnce(g, { q: qa, k: ka });
  assert.deepEqual(r.y!.shape, [2, 3, 5, 6]);
  const codes = r.kq!.data as Int8Array, scale = r.s!.data[0] as number;
  // A is quantized over the whole batch at once: run the reference on all of A, per batch slice of B
  const a = qa.data as Float32Array;
  let lo = 0, hi = 0;
  for (const v of a) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  const sa = Math.fround((hi - lo) / 255), zp = roundHalfEven(Math.max(0, Math.min(255, -lo / sa)));
  const y = r.y!.data as Float32Array;
  for (let bh = 0; bh < 6; bh++) for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) {
    let acc = 0;
    for (let t = 0; t < 8; t++) {
      const av = Math.max(0, Math.min(255, roundHalfEven(a[(bh * 5 + i) * 8 + t]! / sa) + zp));
      acc += (av - zp) * codes[(bh * 6 + j) * 8 + t]!;
    }
    const want = acc * sa * scale;
    assert.ok(Math.abs(y[(bh * 5 + i) * 6 + j]! - want) <= 1e-5 * (1 + Math.abs(want)), `y[${bh},${i},${j}] = ${y[(bh * 5 + i) * 6 + j]} vs ${want}`);
  }
  assert.throws(() => dynamicQuantizeMatMul(g.input('a3', [4, 5, 8]), g.constant({ dtype: 'int8', shape: [3, 8, 2], data: new Int8Array(48) }), s), /do not broadcast/);
});

test('int8 attention, patch embedding and x @ W projection stay close to float32, and the int8 file names its weights', async () => {
  const cfg = createSegmenterConfig('custom', { d_model: 64, n_heads: 2, n_layers: 1, d_ff: 128, patch_size: 8, image_size: 32, n_cls: 3 });
  const weights = new Map([
    ['a.qkv.weight', f32([192, 64], 30, -0.3, 0.3)], ['a.qkv.bias', f32([192], 31, -0.1, 0.1)],
    ['a.proj.weight', f32([64, 64], 32, -0.2, 0.2)], ['a.proj.bias', f32([64], 33, -0.1, 0.1)],
    ['encoder.patch_embed.proj.weight', f32([64, 3, 8, 8], 34, -0.1, 0.1)], ['encoder.patch_embed.proj.bias', f32([64], 35, -0.1, 0.1)],
    ['proj_patch', f32([64, 40], 38, -0.3, 0.3)], // [in,out], used as x @ W
  ]);
  const x = f32([2, 20, 64], 36, -2, 2), img = f32([1, 3, 36, 33], 37, -2, 2); // a remainder under one patch
  const run = async (precision: 'fp32' | 'int8') => {
    const g = new Graph();
    const p = constantParams(g, weights, { precision });
    g.output('att', attention(g.input('x', x.shape), p, 'a', 2));
    g.output('emb', patchEmbed(g.input('img', img.shape), p, cfg));
    g.output('proj', project(g.input('x2', x.shape), p, 'proj_patch'));
    const bytes = emitOnnx(g);
    const r = await runOnce(g, { x, img, x2: x });
    return { att: r.att!, emb: r.emb!, proj: r.proj!, names: onnxProto.onnx.ModelProto.decode(bytes).graph!.initializer!.map((t) => t.name!) };
  };
  const fp = await run('fp32'), i8 = await run('int8');
  for (const key of ['att', 'emb', 'proj'] as const) {
    const a = fp[key].data as Float32Array, b = i8[key].data as Float32Array;
    assert.deepEqual(i8[key].shape, fp[key].shape);
    let err = 0, mag = 0;
    for (let i = 0; i < a.length; i++) (err = Math.max(err, Math.abs(a[i]! - b[i]!))), (mag = Math.max(mag, Math.abs(a[i]!)));
    assert.ok(err > 0 && err < 0.03 * mag, `${key}: int8 error ${err} against outputs up to ${mag}`);
  }
  assert.deepEqual(fp.emb.shape, [1, 16, 64]);
  assert.deepEqual(fp.proj.shape, [2, 20, 40]);
  for (const n of ['a.qkv.weight', 'a.proj.bias', 'encoder.patch_embed.proj.weight']) assert.ok(fp.names.includes(n), `fp32 file names ${n}`);
  for (const n of ['a.qkv.weight_quantized', 'a.qkv.weight_scale', 'a.qkv.bias', 'encoder.patch_embed.proj.weight_quantized', 'proj_patch_quantized']) assert.ok(i8.names.includes(n), `int8 file names ${n}`);
  assert.ok(!i8.names.includes('a.qkv.weight'), 'no float copy of a quantized weight');
});

test('int8 stores a convolution kernel asked for as float as float16, cast back at run time', async () => {
  const weights = new Map([['conv.weight', f32([8, 4, 3, 3], 40, -0.5, 0.5)], ['fc.weight', f32([8, 4], 41)]]);
  const g = new Graph();
  const p = constantParams(g, weights, { precision: 'int8' });
  g.output('w', p('conv.weight'));
  g.output('f', p('fc.weight')); // rank 2 asked as float: stays float32
  const names = onnxProto.onnx.ModelProto.decode(emitOnnx(g)).graph!.initializer!.map((t) => `${t.name}:${t.dataType}`);
  assert.deepEqual(names.sort(), ['conv.weight__f16:10', 'fc.weight:1']);
  const r = await runOnce(g);
  const w = weights.get('conv.weight')!.data as Float32Array, back = r.w!.data as Float32Array;
  assert.deepEqual(Array.from(back), Array.from(w, (x) => fromFloat16Bits(toFloat16Bits(x))));
  assert.ok(back.some((x, i) => x !== w[i]), 'float16 rounding changed some weights');
  assert.deepEqual(r.f!.data, weights.get('fc.weight')!.data);
});

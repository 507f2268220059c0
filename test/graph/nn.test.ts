// NN ops and composites: gradient checks of Softmax/LogSoftmax, LayerNormalization (all three
// outputs), ResizeBilinear, softmaxCrossEntropy, gelu and avgPool2x2; forward values against JS;
// ORT's float32 fused kernels against our float64 lowerings; shape errors. (Conv: conv.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Graph, GraphError, MATMUL_RESIZE_MAX_SIDE, add, avgPool2x2, gelu, grad, interpMatrix, layerNorm, logSoftmax, mul, resizeBilinear,
  softmax, softmaxCrossEntropy, tensorOf, upsampledCrossEntropy, attentionCore, matmul, mT, reduceSum, type Value,
} from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { emitOnnx } from '../../src/graph/onnx.js';
import onnxProto from 'onnx-proto';
import type { HostTensor } from '../../src/base/tensor.js';
import { assertClose, gradCheck, randTensor } from '../helpers/gradcheck.js';

/** Runs a graph on inputs x0, x1, ... and returns its named outputs. */
async function forward(outs: (xs: Value[]) => Record<string, Value>, feeds: HostTensor[]): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const xs = feeds.map((t, i) => g.input(`x${i}`, t.shape, t.dtype));
  for (const [k, v] of Object.entries(outs(xs))) g.output(k, v);
  return runOnce(g, Object.fromEntries(feeds.map((t, i) => [`x${i}`, t])));
}

/** A float32 tensor and its exact float64 widening, so both graphs see identical numbers. */
function pair(shape: number[], seed: number): [HostTensor, HostTensor] {
  const t32 = randTensor(shape, seed, -1, 1, 'float32');
  return [t32, { dtype: 'float64', shape, data: Float64Array.from(t32.data as Float32Array) }];
}

/** max |a - b| / max(|b|, 1): relative for values of magnitude >= 1, absolute below. */
function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1));
  return w;
}

const f64 = (t: HostTensor) => t.data as Float64Array;
const ints = (shape: number[], v: number[]) => ({ value: tensorOf('int64', shape, v) });

test('grad Softmax and LogSoftmax on every axis', async () => {
  for (const axis of [0, 1, -1]) {
    await gradCheck((x) => softmax(x, axis), [{ value: randTensor([2, 3, 4], 1 - axis, -2, 2) }]);
    await gradCheck((x) => logSoftmax(x, axis), [{ value: randTensor([2, 3, 4], 5 - axis, -2, 2) }]);
  }
});

test('grad LayerNormalization through Y, and through Mean / InvStdDev', async () => {
  const x = { value: randTensor([2, 3, 5], 10, -2, 2) }, w = { value: randTensor([5], 11) }, b = { value: randTensor([5], 12) };
  await gradCheck((a, c, d) => layerNorm(a, c, d), [x, w, b], { maxElements: 30 });
  await gradCheck((a, c, d) => layerNorm(a, c, d, 0.1), [{ value: randTensor([4], 13) }, { value: randTensor([4], 14) }, { value: randTensor([4], 15) }]);
  const all = (a: Value, c: Value, d: Value) => a.graph.apply('LayerNormalization', [a, c, d], { eps: 1e-5 }) as [Value, Value, Value];
  await gradCheck((a, c, d) => {
    const [y, m, s] = all(a, c, d);
    return add(y, mul(m, s));
  }, [x, w, b], { maxElements: 30 });
  // the statistics do not depend on the affine parameters
  const fixed = [{ ...w, diff: false }, { ...b, diff: false }];
  await gradCheck((a, c, d) => all(a, c, d)[1], [x, ...fixed]);
  await gradCheck((a, c, d) => all(a, c, d)[2], [x, ...fixed]);
});

/** PyTorch LayerNorm over the last axis, in float64 JS: [y, mean, 1/std]. */
function layerNormJs(x: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, d: number, eps: number): number[][] {
  const y: number[] = [], means: number[] = [], invs: number[] = [];
  for (let r = 0; r < x.length / d; r++) {
    const row = x.subarray(r * d, (r + 1) * d);
    const mean = row.reduce((p, q) => p + q, 0) / d;
    const inv = 1 / Math.sqrt(row.reduce((p, q) => p + (q - mean) ** 2, 0) / d + eps);
    row.forEach((v, j) => y.push((v - mean) * inv * w[j]! + b[j]!));
    means.push(mean);
    invs.push(inv);
  }
  return [y, means, invs];
}

test('LayerNormalization: float64 lowering matches JS; ORT float32 fused fills Mean/InvStdDev and agrees', async () => {
  const [x32, x64] = pair([3, 4, 6], 20), [w32, w64] = pair([6], 21), [b32, b64] = pair([6], 22);
  const r = await forward(([a, c, d, e, f, h]) => {
    const [y32, m32, s32] = a!.graph.apply('LayerNormalization', [a!, c!, d!], { eps: 1e-5 });
    const [y64, m64, s64] = a!.graph.apply('LayerNormalization', [e!, f!, h!], { eps: 1e-5 });
    return { y32: y32!, m32: m32!, s32: s32!, y64: y64!, m64: m64!, s64: s64! };
  }, [x32, w32, b32, x64, w64, b64]);
  const [y, m, s] = layerNormJs(f64(x64), f64(w64), f64(b64), 6, 1e-5) as [number[], number[], number[]];
  assertClose(f64(r.y64!), y, 1e-14, 1e-13, 'y f64');
  assertClose(f64(r.m64!), m, 1e-15, 1e-14, 'mean f64');
  assertClose(f64(r.s64!), s, 1e-14, 1e-13, 'invstd f64');
  assert.deepEqual(r.m32!.shape, [3, 4, 1]);
  assert.deepEqual(r.s32!.shape, [3, 4, 1]);
  const diffs = [maxRelDiff(r.y32!.data as Float32Array, y), maxRelDiff(r.m32!.data as Float32Array, m), maxRelDiff(r.s32!.data as Float32Array, s)];
  assert.ok(diffs.every((d) => d < 2e-6), `float32 fused LayerNorm vs float64: max rel diffs y/mean/invstd ${diffs.map((d) => d.toExponential(2))}`);
});

test('LayerNormalization for the wasm build: elementwise ops instead of the kernel, the same values (and Mean/InvStdDev)', async () => {
  const [x32, x64] = pair([3, 5, 16], 23), [w32, w64] = pair([16], 24), [b32, b64] = pair([16], 25);
  const g = new Graph();
  const [a, c, d] = [g.input('x', x32.shape), g.input('w', w32.shape), g.input('b', b32.shape)];
  const [y, m, s] = g.apply('LayerNormalization', [a, c, d], { eps: 1e-5 });
  g.output('y', y!);
  g.output('m', m!);
  g.output('s', s!);
  const ops = (target: 'cpu' | 'wasm') => onnxProto.onnx.ModelProto.decode(emitOnnx(g, { target })).graph!.node!.map((n) => n.opType);
  assert.deepEqual(ops('cpu'), ['LayerNormalization']);
  assert.ok(!ops('wasm').includes('LayerNormalization') && ops('wasm').includes('ReduceMean'), `wasm: ${ops('wasm').join(' ')}`);
  const feeds = { x: x32, w: w32, b: b32 };
  const [ref] = [layerNormJs(f64(x64), f64(w64), f64(b64), 16, 1e-5)] as [number[][]];
  const cpu = await runOnce(g, feeds), wasm = await runOnce(g, feeds, { emit: { target: 'wasm' } });
  for (const [k, i] of [['y', 0], ['m', 1], ['s', 2]] as const) {
    assert.ok(maxRelDiff(wasm[k]!.data as Float32Array, ref[i]!) < 2e-6, `${k}: wasm form vs float64`);
    assert.ok(maxRelDiff(wasm[k]!.data as Float32Array, cpu[k]!.data as Float32Array) < 2e-6, `${k}: wasm form vs the kernel`);
  }
});

test('grad ResizeBilinear: up, down, mixed, unchanged axis, rank 2', async () => {
  const x = { value: randTensor([1, 2, 3, 4], 30) };
  for (const [oh, ow] of [[5, 7], [2, 2], [6, 3], [3, 9]] as const) await gradCheck((v) => resizeBilinear(v, oh, ow), [x]);
  await gradCheck((v) => resizeBilinear(v, 2, 5), [{ value: randTensor([4, 3], 31) }]);
});

/** PyTorch's bilinear (align_corners=False, no antialias) written directly per output pixel. */
function resizeJs(x: Float64Array, h: number, w: number, oh: number, ow: number): number[] {
  const src = (o: number, n: number, no: number): [number, number, number] => {
    const s = Math.max((o + 0.5) * (n / no) - 0.5, 0);
    const i0 = Math.min(Math.floor(s), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  const out: number[] = [];
  for (let c = 0; c < x.length / (h * w); c++) {
    for (let oy = 0; oy < oh; oy++) {
      const [y0, y1, ly] = src(oy, h, oh);
      for (let ox = 0; ox < ow; ox++) {
        const [x0, x1, lx] = src(ox, w, ow);
        const at = (yy: number, xx: number) => x[c * h * w + yy * w + xx]!;
        out.push((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
      }
    }
  }
  return out;
}

test('ResizeBilinear: float32 (matmul form up to 48 per side, ORT Resize above) equals the float64 form; x0.5 is the exact 2x2 mean', async () => {
  // x16, x2, x0.5, non-square with different factors, and non-integer ratios either way; the last
  // three have a side above MATMUL_RESIZE_MAX_SIDE, so their float32 runs ORT's Resize
  const cases: [number[], number, number][] = [
    [[1, 2, 3, 2], 48, 32], [[2, 1, 5, 4], 10, 8], [[1, 3, 8, 6], 4, 3], [[1, 1, 4, 7], 9, 3], [[1, 2, 6, 6], 8, 8], [[1, 1, 37, 5], 32, 7],
    [[1, 2, 50, 3], 100, 48], [[1, 1, 4, 64], 8, 32], [[2, 1, 49, 49], 98, 98],
  ];
  assert.equal(MATMUL_RESIZE_MAX_SIDE, 48);
  let seed = 40;
  for (const [shape, oh, ow] of cases) {
    const [x32, x64] = pair(shape, seed++);
    const r = await forward(([a, b]) => ({ y32: resizeBilinear(a!, oh, ow), y64: resizeBilinear(b!, oh, ow) }), [x32, x64]);
    const [h, w] = shape.slice(2) as [number, number];
    assertClose(f64(r.y64!), resizeJs(f64(x64), h, w, oh, ow), 1e-15, 0, `f64 ${shape} -> ${oh}x${ow}`);
    const d = maxRelDiff(r.y32!.data as Float32Array, f64(r.y64!));
    assert.ok(d < 1e-6, `float32 vs float64 form ${shape} -> ${oh}x${ow}: ${d.toExponential(2)}`);
    if (oh * 2 === h && ow * 2 === w) {
      const xs = f64(x64), mean: number[] = [];
      for (let c = 0; c < xs.length / (h * w); c++) {
        for (let i = 0; i < oh; i++) {
          for (let j = 0; j < ow; j++) {
            const at = (di: number, dj: number) => xs[c * h * w + (2 * i + di) * w + 2 * j + dj]!;
            mean.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4);
          }
        }
      }
      assertClose(f64(r.y64!), mean, 1e-15, 0, 'x0.5 f64 = 2x2 mean');
      assertClose(r.y32!.data as Float32Array, mean, 1e-7, 0, 'x0.5 f32 = 2x2 mean');
    }
  }
  assert.deepEqual([...interpMatrix(4, 2)], [0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5]);
});

test('ResizeBilinear: an integer upsampling factor runs its rows as banded 3-row products, equal to the dense product', async () => {
  // x16 (the logits), x3 (odd: a phase reads one row), one source row, and different factors per axis
  const cases: [number[], number, number][] = [[[2, 3, 8, 8], 128, 128], [[1, 2, 4, 5], 12, 15], [[1, 1, 1, 6], 4, 12], [[3, 2, 7, 3], 35, 9], [[1, 2, 5, 5], 10, 5]];
  let seed = 70;
  for (const [shape, oh, ow] of cases) {
    const [h, w] = shape.slice(2) as [number, number];
    const g = new Graph();
    const x = g.input('x', shape);
    g.output('banded', resizeBilinear(x, oh, ow));
    const mat = (r: number, c: number, m: Float64Array) => g.constant({ dtype: 'float32', shape: [r, c], data: Float32Array.from(m) });
    const mw = new Float64Array(w * ow);
    const iw = interpMatrix(w, ow);
    for (let i = 0; i < w; i++) for (let o = 0; o < ow; o++) mw[i * ow + o] = iw[o * w + i]!;
    g.output('dense', matmul(mat(oh, h, interpMatrix(h, oh)), matmul(x, mat(w, ow, mw))));
    const ops = onnxProto.onnx.ModelProto.decode(emitOnnx(g)).graph!.node!.map((n) => n.opType);
    assert.ok(ops.includes('Gather'), `${shape} -> ${oh}x${ow}: the banded form is emitted`);
    const r = await runOnce(g, { x: randTensor(shape, seed++, -4, 4, 'float32') });
    // the same two products per output; measured bit-identical with MLAS here, 1 ulp allowed for other kernels
    assertClose(r.banded!.data as Float32Array, r.dense!.data as Float32Array, 1e-7, 2e-7, `${shape} -> ${oh}x${ow}`);
  }
});

/** interpMatrix with the source coordinate rounded as float32 arithmetic rounds it. */
function interpMatrixF32(nIn: number, nOut: number): Float64Array {
  const f = Math.fround, m = new Float64Array(nOut * nIn), scale = f(nOut / nIn);
  for (let o = 0; o < nOut; o++) {
    const src = Math.min(Math.max(f(f(f(o + 0.5) / scale) - 0.5), 0), nIn - 1);
    const i0 = Math.floor(src), l = f(src - i0);
    m[o * nIn + i0]! += 1 - l;
    m[o * nIn + Math.min(i0 + 1, nIn - 1)]! += l;
  }
  return m;
}

test('ResizeBilinear: at large non-integer downsampling ORT float32 differs by its float32 source coordinates', async () => {
  // ORT computes (o + 0.5) / scale - 0.5 in float32, whose rounding grows with the coordinate: ~5e-6
  // from the exact form at 100 -> 7, while it matches a float32-coordinate emulation to float32 noise.
  const [x32, x64] = pair([1, 1, 100, 1], 60);
  const r = await forward(([a, b]) => ({ y32: resizeBilinear(a!, 7, 1), y64: resizeBilinear(b!, 7, 1) }), [x32, x64]);
  const m = interpMatrixF32(100, 7), xs = f64(x64);
  const emulated = Array.from({ length: 7 }, (_, o) => xs.reduce((s, v, i) => s + m[o * 100 + i]! * v, 0));
  assertClose(r.y32!.data as Float32Array, emulated, 2e-7, 0, 'ORT f32 vs float32-coordinate emulation');
  const d = maxRelDiff(r.y32!.data as Float32Array, f64(r.y64!));
  assert.ok(d < 2e-5, `float32 Resize vs matmul form at 100 -> 7: ${d.toExponential(2)}`);
});

/** Mean cross-entropy over non-ignored pixels of logits [B,K,P] (flattened pixels), in float64 JS. */
function crossEntropyJs(logits: Float64Array, labels: number[], k: number, p: number, ignore: number): number {
  let total = 0, count = 0;
  labels.forEach((lab, n) => {
    if (lab === ignore) return;
    const b = Math.floor(n / p), px = n % p;
    const z = Array.from({ length: k }, (_, c) => logits[(b * k + c) * p + px]!);
    const mx = Math.max(...z);
    total += mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0)) - z[lab]!;
    count++;
  });
  return count ? total / count : 0;
}

test('softmaxCrossEntropy: gradient with ignored pixels, forward value, all-ignored is 0', async () => {
  const logits = randTensor([2, 3, 2, 2], 50, -3, 3);
  const labels = [0, 2, 255, 1, 255, 255, 2, 0];
  await gradCheck((z, l) => softmaxCrossEntropy(z, l), [{ value: logits }, ints([2, 2, 2], labels)], { maxElements: 24 });
  const none = Array<number>(8).fill(7);
  await gradCheck((z, l) => softmaxCrossEntropy(z, l, 7), [{ value: logits }, ints([2, 2, 2], none)], { maxElements: 24 });
  const r = await forward(([z, l, m]) => {
    const lossAll = softmaxCrossEntropy(z!, m!, 7);
    return { loss: softmaxCrossEntropy(z!, l!), lossAll, gAll: grad(lossAll, [z!])[0]! };
  }, [logits, tensorOf('int64', [2, 2, 2], labels), tensorOf('int64', [2, 2, 2], none)]);
  assertClose(f64(r.loss!), [crossEntropyJs(f64(logits), labels, 3, 4, 255)], 1e-14, 1e-14, 'loss');
  assert.deepEqual([...f64(r.lossAll!)], [0]);
  assert.ok(f64(r.gAll!).every((v) => v === 0), 'all-ignored gradient is exactly 0');
});

test('softmaxCrossEntropy: float32 is stable for large logits and matches float64, rank 2 and rank 4', async () => {
  // Logits of +-1000 overflow a naive exp; the max-shifted form must stay finite and exact.
  const big = randTensor([2, 4, 3, 1], 51, -1000, 1000);
  const labels = [3, 0, 255, 1, 2, 0];
  const r = await forward(([z, l]) => {
    const loss = softmaxCrossEntropy(z!, l!);
    return { loss, g: grad(loss, [z!])[0]! };
  }, [{ ...big, dtype: 'float32', data: Float32Array.from(big.data as Float64Array) }, tensorOf('int64', [2, 3, 1], labels)]);
  const want = crossEntropyJs(Float64Array.from(Float32Array.from(big.data as Float64Array)), labels, 4, 3, 255);
  assertClose(f64(r.loss!), [want], 1e-4, 1e-6, 'loss');
  assert.ok(f64(r.g!).every(Number.isFinite));
  // Gradient rows of valid pixels sum to zero (softmax minus one-hot), ignored pixels get nothing.
  const g = f64(r.g!);
  for (let b = 0; b < 2; b++) for (let p = 0; p < 3; p++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += g[(b * 4 + k) * 3 + p]!;
    assert.ok(Math.abs(s) < 1e-6, `row sum ${s}`);
    if (labels[b * 3 + p] === 255) for (let k = 0; k < 4; k++) assert.ok(g[(b * 4 + k) * 3 + p] === 0);
  }
  await gradCheck((z, l) => softmaxCrossEntropy(z, l), [{ value: randTensor([5, 3], 52, -2, 2) }, ints([5], [2, 255, 0, 1, 1])]);
});

test('upsampledCrossEntropy equals cross-entropy of the bilinear upsampling, value and gradient', async () => {
  // Bands reading one or two source rows (x4, elementwise); many bands of 1-3 rows (shared source rows
  // between bands); downsampling (unread rows); x2, whose short runs merge into matmul bands.
  const cases = [[2, [2, 3], [8, 12], undefined], [2, [3, 4], [11, 13], 40], [1, [3, 2], [5, 4], 7], [1, [6, 5], [2, 3], 10], [1, [4, 3], [8, 6], undefined]] as [number, [number, number], [number, number], number | undefined][];
  for (const [b, hw, HW, bandValues] of cases) {
    const o = bandValues ? { bandValues } : {};
    const z = randTensor([b, 3, ...hw], 60 + b, -3, 3);
    const labels = Array.from({ length: b * HW[0] * HW[1] }, (_, i) => (i % 7 === 3 ? 255 : (i * 5) % 3));
    const l = tensorOf('int64', [b, ...HW], labels);
    const r = await forward(([x, y]) => {
      const fused = upsampledCrossEntropy(x!, y!, 255, o);
      const plain = softmaxCrossEntropy(resizeBilinear(x!, HW[0], HW[1]), y!);
      return { fused, plain, gf: grad(fused, [x!])[0]!, gp: grad(plain, [x!])[0]! };
    }, [z, l]);
    assertClose(f64(r.fused!), [...f64(r.plain!)], 1e-12, 1e-12, 'loss');
    assertClose(f64(r.gf!), [...f64(r.gp!)], 1e-12, 1e-12, 'gradient');
    await gradCheck((x, y) => upsampledCrossEntropy(x, y, 255, o), [{ value: z }, ints([b, ...HW], labels)], { maxElements: 12 });
  }
});

test('upsampledCrossEntropy: float32 logits far from 0 (shifted at low resolution) neither overflow nor drift', async () => {
  // exp(300) overflows float32; classes 40 apart make the softmax nearly one-hot.
  const z32 = randTensor([2, 4, 3, 3], 64, -20, 20, 'float32');
  const d = z32.data as Float32Array;
  for (let i = 0; i < d.length; i++) d[i] = d[i]! + (Math.floor(i / 9) % 4 === 1 ? 340 : 300);
  const HW = [40, 24];
  const labels = Array.from({ length: 2 * HW[0]! * HW[1]! }, (_, i) => (i % 11 === 5 ? 255 : (i * 7) % 4));
  const r = await forward(([x, y]) => {
    const fused = upsampledCrossEntropy(x!, y!, 255, { bandValues: 200 });
    const plain = softmaxCrossEntropy(resizeBilinear(x!, HW[0]!, HW[1]!), y!);
    return { fused, plain, gf: grad(fused, [x!])[0]!, gp: grad(plain, [x!])[0]! };
  }, [z32, tensorOf('int64', [2, ...HW], labels)]);
  const [lf, lp] = [(r.fused!.data as Float32Array)[0]!, (r.plain!.data as Float32Array)[0]!];
  assert.ok(Number.isFinite(lf) && lf > 1, `loss ${lf}`);
  assert.ok(Math.abs(lf - lp) <= 1e-5 * lp, `loss ${lf} vs ${lp}`);
  assert.ok(maxRelDiff(r.gf!.data as Float32Array, r.gp!.data as Float32Array) < 1e-6, 'gradient');
});

test('attentionCore: equals softmax(q kT) v in value and gradient, finite differences for q, k, v', async () => {
  const q = randTensor([2, 3, 5, 4], 70, -1, 1), k = randTensor([2, 3, 6, 4], 71, -1, 1), v = randTensor([2, 3, 6, 2], 72, -1, 1);
  const r = await forward(([a, b, c]) => {
    const fused = attentionCore(a!, b!, c!);
    const plain = matmul(softmax(matmul(a!, mT(b!)), -1), c!);
    const w = a!.graph.constant(randTensor([2, 3, 5, 2], 73));
    const gf = grad(reduceSum(mul(fused, w)), [a!, b!, c!]), gp = grad(reduceSum(mul(plain, w)), [a!, b!, c!]);
    return { fused, plain, ...Object.fromEntries(gf.map((x, i) => [`f${i}`, x!])), ...Object.fromEntries(gp.map((x, i) => [`p${i}`, x!])) };
  }, [q, k, v]);
  assertClose(f64(r.fused!), [...f64(r.plain!)], 1e-14, 1e-14, 'value');
  for (let i = 0; i < 3; i++) assertClose(f64(r[`f${i}`]!), [...f64(r[`p${i}`]!)], 1e-13, 1e-13, `gradient ${i}`);
  await gradCheck(attentionCore, [{ value: q }, { value: k }, { value: v }], { maxElements: 24 });
  const g = new Graph();
  assert.throws(() => attentionCore(g.input('q', [2, 5, 4]), g.input('k', [2, 6, 3]), g.input('v', [2, 6, 2])), /AttentionCore\(.*\): q \[2,5,4\], k \[2,6,3\], v \[2,6,2\] do not fit/);
});

/** erf: alternating Maclaurin series for |x| <= 2.5, erfc's continued fraction above. */
function erfJs(x: number): number {
  const z = Math.abs(x);
  if (z > 2.5) {
    let t = z;
    for (let k = 80; k >= 1; k--) t = z + k / 2 / t;
    return Math.sign(x) * (1 - Math.exp(-z * z) / (Math.sqrt(Math.PI) * t));
  }
  let term = x, sum = x;
  for (let n = 1; n < 80; n++) sum += (term *= (-x * x) / n) / (2 * n + 1);
  return (2 / Math.sqrt(Math.PI)) * sum;
}

test('gelu: forward against JS erf, gradient, float32 fused vs float64', async () => {
  const xs = Array.from({ length: 41 }, (_, i) => -5 + i * 0.25);
  const x32 = tensorOf('float32', [41], xs), x64 = tensorOf('float64', [41], xs);
  const r = await forward(([a, b]) => ({ y32: gelu(a!), y64: gelu(b!) }), [x32, x64]);
  const want = xs.map((v) => 0.5 * v * (1 + erfJs(v / Math.SQRT2)));
  assertClose(f64(r.y64!), want, 1e-14, 1e-13, 'gelu f64');
  const d = maxRelDiff(r.y32!.data as Float32Array, want);
  assert.ok(d < 1e-6, `float32 gelu vs float64: ${d.toExponential(2)}`);
  await gradCheck(gelu, [{ value: randTensor([3, 5], 51, -4, 4) }]);
});

test('avgPool2x2: forward 2x2 means and gradient', async () => {
  const x = tensorOf('float64', [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
  const r = await forward(([a]) => ({ y: avgPool2x2(a!) }), [x]);
  assert.deepEqual(r.y!.shape, [1, 1, 1, 2]);
  assert.deepEqual([...f64(r.y!)], [3.5, 5.5]);
  await gradCheck(avgPool2x2, [{ value: randTensor([2, 2, 4, 2], 52) }]);
});

test('nn errors name the op and the shapes', () => {
  const g = new Graph();
  const z = g.input('z', [2, 3, 4, 4]);
  assert.throws(() => softmaxCrossEntropy(z, g.input('l', [2, 4, 5], 'int64')), (e: unknown) => e instanceof GraphError &&
    /^SoftmaxCrossEntropy\(z:float32\[2,3,4,4\], l:int64\[2,4,5\]\): labels \[2,4,5\] do not match logits \[2,3,4,4\] without the class axis \(want \[2,4,4\]\)/.test(e.message));
  assert.throws(() => softmaxCrossEntropy(z, g.input('m', [2, 4, 4])), /SoftmaxCrossEntropy\(.*\): labels must be int64/);
  const x = g.input('x', [2, 5]);
  assert.throws(() => layerNorm(x, g.input('w', [4]), g.input('b', [5])), /LayerNormalization\(x:float32\[2,5\], w:float32\[4\], b:float32\[5\]\): weight .* must be \[5\]/);
  assert.throws(() => resizeBilinear(x, 0, 3), /ResizeBilinear\(.*bad output size 0x3/);
  assert.throws(() => avgPool2x2(g.input('o', [1, 1, 3, 4])), /avgPool2x2 needs NCHW with even H, W; got o:float32\[1,1,3,4\]/);
  assert.throws(() => softmax(x, 2), /axis 2 out of range for rank 2/);
});

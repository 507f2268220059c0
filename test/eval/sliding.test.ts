// The sliding-window inference of spec §6.2: anchors, the upsampling of small views, the host-side
// bilinear resize, and the merged logits against a naive reference (one window at a time, dense
// interpolation matrices, float64 canvas) for images smaller than, equal to and larger than the
// window, square and not.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Predictor } from '../../src/cts/predictor.js';
import { interpMatrix } from '../../src/graph/ops/nn.js';
import {
  addSoftmax, argmaxChannels, flipRows, resizeBilinear, slidingLogits, upsampledSize, windowAnchors, type FloatImage,
} from '../../src/eval/sliding.js';
import { normalizeImage } from '../../src/eval/evaluate.js';
import { assertClose, rng } from '../helpers/gradcheck.js';
import { randomImage, tinyCheckpoint } from './tiny-model.js';

test('window anchors follow the official rule (spec §6.2 examples)', () => {
  assert.deepEqual(windowAnchors(512, 512, 512), [0]);
  assert.deepEqual(windowAnchors(683, 512, 512), [0, 171]);
  assert.deepEqual(windowAnchors(520, 480, 320), [0, 40]);
  assert.deepEqual(windowAnchors(693, 480, 320), [0, 213]);
  const h = windowAnchors(1024, 768, 512), w = windowAnchors(2048, 768, 512);
  assert.deepEqual(h, [0, 256]);
  assert.deepEqual(w, [0, 512, 1024, 1280]);
  assert.equal(h.length * w.length, 8);
  assert.deepEqual(windowAnchors(1088, 512, 512), [0, 512, 576]);
  assert.throws(() => windowAnchors(500, 512, 512), /smaller than the 512px window/);
  assert.throws(() => windowAnchors(600, 512, 0), /positive integer/);
});

test('views smaller than the window are upsampled so the short side equals it (long side int(ratio*window))', () => {
  assert.deepEqual(upsampledSize(256, 342, [512, 512]), [512, 684]); // the 0.5 view of a 512x683 ADE image
  assert.deepEqual(upsampledSize(384, 512, [512, 512]), [512, 682]); // 512*512/384 = 682.67
  assert.deepEqual(upsampledSize(600, 400, [512, 512]), [768, 512]);
  assert.deepEqual(upsampledSize(300, 300, [512, 512]), [512, 512]);
  assert.deepEqual(upsampledSize(512, 683, [512, 512]), [512, 683]);
  assert.deepEqual(upsampledSize(1024, 2048, [768, 768]), [1024, 2048]);
  assert.deepEqual(upsampledSize(40, 100, [64, 96]), [64, 160]);
});

function denseResize(img: FloatImage, oh: number, ow: number): Float64Array {
  const { channels: C, height: H, width: W, data } = img;
  const mh = interpMatrix(H, oh), mw = interpMatrix(W, ow);
  const tmp = new Float64Array(C * H * ow), out = new Float64Array(C * oh * ow);
  for (let c = 0; c < C; c++) for (let a = 0; a < H; a++) for (let j = 0; j < ow; j++) {
    let s = 0;
    for (let b = 0; b < W; b++) s += data[(c * H + a) * W + b]! * mw[j * W + b]!;
    tmp[(c * H + a) * ow + j] = s;
  }
  for (let c = 0; c < C; c++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
    let s = 0;
    for (let a = 0; a < H; a++) s += mh[i * H + a]! * tmp[(c * H + a) * ow + j]!;
    out[(c * oh + i) * ow + j] = s;
  }
  return out;
}

test('host bilinear resize equals the interpolation-matrix form (half-pixel, clamped, no antialias)', () => {
  const r = rng(3);
  const img: FloatImage = { channels: 2, height: 7, width: 11, data: Float32Array.from({ length: 2 * 7 * 11 }, () => r() * 2 - 1) };
  for (const [oh, ow] of [[14, 22], [3, 5], [7, 30], [20, 4], [1, 1]] as const) {
    const got = resizeBilinear(img, oh, ow);
    assert.deepEqual([got.channels, got.height, got.width], [2, oh, ow]);
    assertClose(got.data, Float32Array.from(denseResize(img, oh, ow)), 3e-6); // float32 arithmetic vs float64
  }
  const same = resizeBilinear(img, 7, 11);
  assert.deepEqual(same.data, img.data);
  assert.notEqual(same.data, img.data); // a copy: callers flip it in place
  // x2 upsampling of a ramp: output 0 clamps to input 0, output 1 lies a quarter of the way to input 1
  const ramp = resizeBilinear({ channels: 1, height: 1, width: 4, data: Float32Array.of(0, 4, 8, 12) }, 1, 8);
  assert.deepEqual([...ramp.data], [0, 1, 3, 5, 7, 9, 11, 12]);
});

test('row flips, softmax accumulation and argmax', () => {
  const lab = Uint8Array.from([0, 1, 2, 3, 4, 5]); // 2x3
  assert.deepEqual([...flipRows(Uint8Array.from(lab), 1, 2, 3)], [2, 1, 0, 5, 4, 3]);
  const logits = Float32Array.from([0, 1000, 2, 0, 1, 0]); // K=2, n=3: channel-major
  const acc = new Float32Array(6);
  addSoftmax(logits, 2, 3, acc);
  assertClose(acc, Float32Array.from([0.5, 1, 1 / (1 + Math.E ** -2), 0.5, 0, 1 / (1 + Math.E ** 2)]), 1e-6);
  assert.deepEqual([...argmaxChannels(Float32Array.from([1, 5, 3, 1, 2, 3]), 2, 3)], [0, 0, 0]); // tie -> first class
});

// --- against a naive reference through the model ---

const ckpt = tinyCheckpoint();
const p1 = await Predictor.create(ckpt, { batch: 1 });
const p3 = await Predictor.create(ckpt, { batch: 3 });
after(async () => {
  await p1.release();
  await p3.release();
});

/** Naive §6.2: official upsample rule, arange-filter anchors, one window at a time, float64 canvas, dense resize. */
async function reference(view: FloatImage, ws: number, stride: number, out: [number, number]): Promise<{ logits: Float64Array; windows: number }> {
  let { height: h, width: w } = view;
  if (Math.min(h, w) < ws) {
    const [nh, nw] = h < w ? [ws, Math.trunc((w / h) * ws)] : [Math.trunc((h / w) * ws), ws];
    view = { channels: 3, height: nh, width: nw, data: Float32Array.from(denseResize(view, nh, nw)) };
    [h, w] = [nh, nw];
  }
  const arange = (n: number) => Array.from({ length: Math.ceil(n / stride) }, (_, i) => i * stride);
  const ha = [...arange(h).filter((a) => a < h - ws), h - ws], wa = [...arange(w).filter((a) => a < w - ws), w - ws];
  const K = 4, canvas = new Float64Array(K * h * w), count = new Float64Array(h * w);
  for (const y0 of ha) for (const x0 of wa) {
    const crop = new Float32Array(3 * ws * ws);
    for (let c = 0; c < 3; c++) for (let y = 0; y < ws; y++) for (let x = 0; x < ws; x++) crop[(c * ws + y) * ws + x] = view.data[(c * h + y0 + y) * w + x0 + x]!;
    const l = (await p1.run({ dtype: 'float32', shape: [1, 3, ws, ws], data: crop })).logits.data as Float32Array;
    for (let k = 0; k < K; k++) for (let y = 0; y < ws; y++) for (let x = 0; x < ws; x++) canvas[(k * h + y0 + y) * w + x0 + x]! += l[(k * ws + y) * ws + x]!;
    for (let y = 0; y < ws; y++) for (let x = 0; x < ws; x++) count[(y0 + y) * w + x0 + x]! += 1;
  }
  for (let k = 0; k < K; k++) for (let p = 0; p < h * w; p++) canvas[k * h * w + p]! /= count[p]!;
  return { logits: denseResize({ channels: K, height: h, width: w, data: Float32Array.from(canvas) }, out[0], out[1]), windows: ha.length * wa.length };
}

test('an image equal to the window gives exactly the direct forward pass', async () => {
  const x = normalizeImage(randomImage(64, 64, 1), ckpt.normalization);
  const r = await slidingLogits(p3, x, { stride: 48 });
  const direct = await p1.run({ dtype: 'float32', shape: [1, 3, 64, 64], data: x.data });
  assert.equal(r.windows, 1);
  assert.deepEqual(r.logits.data, direct.logits.data);
});

for (const [name, h, w, stride, expectWindows] of [
  ['smaller than the window (both sides)', 40, 50, 64, 2], // upsampled to 64x80: anchors h {0}, w {0, 16}
  ['short side smaller, non-square', 30, 100, 32, 6], // 64x213: w {0, 32, 64, 96, 128, 149}
  ['larger than the window, non-square, overlapping', 100, 130, 48, 6], // h {0, 36}, w {0, 48, 66}
  ['larger, portrait, stride = window', 150, 70, 64, 6], // h {0, 64, 86}, w {0, 6}
] as const) {
  test(`sliding logits match the naive reference: ${name} (${h}x${w})`, async () => {
    const x = normalizeImage(randomImage(h, w, h + w), ckpt.normalization);
    const ref = await reference(x, 64, stride, [h, w]);
    const got = await slidingLogits(p3, x, { stride });
    // the merged canvas stays at the upsampled view size; the caller maps it back to the image
    assert.deepEqual([got.logits.channels, got.logits.height, got.logits.width], [4, ...upsampledSize(h, w, [64, 64])]);
    assert.equal(got.flip, false);
    assert.equal(got.windows, ref.windows);
    assert.equal(got.windows, expectWindows);
    assertClose(resizeBilinear(got.logits, h, w).data, Float32Array.from(ref.logits), 2e-4);
    // flip: a mirrored view with flip=true merges back to the unmirrored orientation
    const mirrored = { ...x, data: flipRows(x.data.slice(), 3, h, w) };
    const back = await slidingLogits(p3, mirrored, { stride, flip: true });
    assert.equal(back.flip, true);
    const refM = await reference(mirrored, 64, stride, [h, w]);
    assertClose(flipRows(resizeBilinear(back.logits, h, w).data, 4, h, w), flipRows(Float32Array.from(refM.logits), 4, h, w), 2e-4);
  });
}

test('a stride larger than the window is rejected (pixels would be left without a prediction)', async () => {
  const x = normalizeImage(randomImage(64, 80, 2), ckpt.normalization);
  await assert.rejects(slidingLogits(p1, x, { stride: 65 }), /stride 65 exceeds the 64x64 window/);
});

test('oracle policy: the uniform superpatch of the label is the one shared, and the shared map shows it', async () => {
  const oc = tinyCheckpoint('oracle', 1);
  const p = await Predictor.create(oc, { batch: 2 });
  const label = new Uint8Array(64 * 64);
  for (let i = 0; i < label.length; i++) label[i] = (i * 7 + (i >> 6)) % 3; // mixed everywhere ...
  for (let y = 32; y < 64; y++) for (let x = 32; x < 64; x++) label[y * 64 + x] = 2; // ... but the bottom-right superpatch
  const x = normalizeImage(randomImage(64, 64, 5), oc.normalization);
  const r = await slidingLogits(p, x, { stride: 64, scores: { kind: 'oracle', label }, sharedFraction: true });
  const f = r.sharedFraction!;
  assert.equal(f[40 * 64 + 40], 1);
  assert.equal(f[10 * 64 + 10], 0);
  assert.equal(f.reduce((a, b) => a + b, 0), 32 * 32);
  // the shared token changes the logits there relative to no sharing
  const plain = await slidingLogits(p1, x, { stride: 64 });
  assert.notDeepEqual(r.logits.data, plain.logits.data);
  await assert.rejects(slidingLogits(p, x, { stride: 64 }), /needs share scores/);
  await p.release();
});

test('random policy: per-window seeds make the result independent of the window batch', async () => {
  const rc = tinyCheckpoint('random', 2);
  const a = await Predictor.create(rc, { batch: 1 }), b = await Predictor.create(rc, { batch: 4 });
  const x = normalizeImage(randomImage(90, 120, 9), rc.normalization);
  const o = { stride: 32, scores: { kind: 'random' as const, seed: 11 }, sharedFraction: true };
  const ra = await slidingLogits(a, x, o), rb = await slidingLogits(b, x, o);
  assert.equal(ra.windows, 6);
  assertClose(ra.logits.data, rb.logits.data, 1e-5);
  assert.deepEqual(ra.sharedFraction, rb.sharedFraction);
  // overlapping windows disagree somewhere, so fractions strictly between 0 and 1 occur
  assert.ok(ra.sharedFraction!.some((v) => v > 0.01 && v < 0.99));
  const rc2 = await slidingLogits(b, x, { ...o, scores: { kind: 'random', seed: 12 } });
  assert.notDeepEqual(rc2.sharedFraction, rb.sharedFraction);
  await a.release();
  await b.release();
});

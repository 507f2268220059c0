// predictImage after the switch to banded merging: the same classes, probabilities and shared
// fractions as the unbanded computation (whole canvas resized to the image, flipped back, softmax
// averaged, argmax), done inline here from slidingLogits' view-resolution output; the 'single'
// window mode; and any WindowRunner in place of a Predictor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPredictor, evalViews, normalizeImage, predictImage } from '../../src/eval/evaluate.js';
import { addSoftmax, argmaxChannels, flipRows, resizeBilinear, slidingLogits } from '../../src/eval/sliding.js';
import { resizeBilinear as cv2Resize } from '../../src/data/resize.js';
import type { WindowRunner } from '../../src/cts/predictor.js';
import type { RGBImage } from '../../src/data/types.js';
import { randomImage, tinyCheckpoint } from './tiny-model.js';

const ckpt = tinyCheckpoint();
const pred = await createPredictor(ckpt, { windowBatch: 4 });
after(() => pred.release());

const PROTOCOL = { resizeShort: 96, maxLong: 200 };

/** The pre-banding predictImage, written out: per view resize, normalise, flip, slide, resize back whole, flip back, softmax. */
async function unbanded(runner: WindowRunner, img: RGBImage, multiscale: boolean, stride: number, seed?: number) {
  const H = img.height, W = img.width, K = runner.numClasses, n = H * W;
  const views = evalViews(H, W, PROTOCOL, multiscale);
  const acc = new Float32Array(K * n);
  let single: Float32Array | undefined, fraction: Float32Array | undefined, windows = 0;
  for (const [i, v] of views.entries()) {
    const x = normalizeImage(cv2Resize(img, v.width, v.height), ckpt.normalization);
    if (v.flip) flipRows(x.data, 3, v.height, v.width);
    const scores = seed === undefined ? {} : { scores: { kind: 'random' as const, seed: seed + i * 100_000 } };
    const r = await slidingLogits(runner, x, { stride, flip: v.flip, sharedFraction: true, ...scores });
    windows += r.windows;
    const full = resizeBilinear(r.logits, H, W).data;
    if (v.flip) flipRows(full, K, H, W);
    addSoftmax(full, K, n, acc);
    single = full;
    if (r.sharedFraction) {
      const s = resizeBilinear({ channels: 1, height: r.logits.height, width: r.logits.width, data: r.sharedFraction }, H, W).data;
      if (v.flip) flipRows(s, 1, H, W);
      fraction ??= new Float32Array(n);
      for (let p = 0; p < n; p++) fraction[p]! += s[p]! / views.length;
    }
  }
  const many = views.length > 1;
  return { classes: argmaxChannels(many ? acc : single!, K, n), probabilities: many ? acc.map((v) => v / views.length) : acc, fraction, windows };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

test('single scale over several windows: the classes and probabilities of the unbanded computation', async () => {
  const img = randomImage(150, 230, 7);
  // the view is 96x147 (keep-ratio to the protocol), slid with 2x3 windows, then resized to 150x230
  assert.deepEqual(evalViews(150, 230, PROTOCOL, false)[0], { ratio: 1, height: 96, width: 147, flip: false });
  const ref = await unbanded(pred, img, false, 48);
  const got = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL });
  assert.equal(got.windows, 6);
  assert.equal(ref.windows, 6);
  assert.deepEqual([got.height, got.width], [150, 230]);
  assert.deepEqual(got.classes, ref.classes);
  assert.ok(new Set(got.classes).size > 1, 'the prediction varies over the image');
  assert.equal(got.probabilities, undefined);
  const withProbs = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL, probabilities: true });
  assert.deepEqual(withProbs.classes, ref.classes);
  assert.ok(sameBits(withProbs.probabilities!, ref.probabilities), 'single-view probabilities are the softmax of the resized logits');
});

test('multi-scale + flip: classes and mean probabilities unchanged', async () => {
  const img = randomImage(90, 130, 8);
  const ref = await unbanded(pred, img, true, 48);
  const got = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL, multiscale: true, probabilities: true });
  assert.equal(got.windows, ref.windows);
  assert.deepEqual(got.classes, ref.classes);
  assert.ok(sameBits(got.probabilities!, ref.probabilities), 'mean of the views\' softmaxes');
  const plain = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL, multiscale: true });
  assert.deepEqual(plain.classes, ref.classes);
});

test('shared fraction of a sharing model: the mean over views of the resized, flipped-back fractions', async () => {
  const rc = tinyCheckpoint('random', 2);
  const p = await createPredictor(rc, { windowBatch: 3 });
  const img = randomImage(120, 100, 9);
  for (const multiscale of [false, true]) {
    const ref = await unbanded(p, img, multiscale, 32, 3);
    const got = await predictImage(p, img, { stride: 32, normalization: rc.normalization, protocol: PROTOCOL, multiscale, seed: 3, sharedFraction: true });
    assert.deepEqual(got.classes, ref.classes);
    assert.ok(sameBits(got.sharedFraction!, ref.fraction!), `shared fraction (multiscale ${multiscale})`);
    assert.ok(got.sharedFraction!.some((v) => v > 0) && got.sharedFraction!.every((v) => v >= 0 && v <= 1));
  }
  await p.release();
});

test("'single' mode: the whole image squeezed into one window, the result resized back", async () => {
  const img = randomImage(150, 230, 10);
  const x = normalizeImage(cv2Resize(img, 64, 64), ckpt.normalization);
  const direct = await pred.run({ dtype: 'float32', shape: [1, 3, 64, 64], data: x.data });
  const logits = resizeBilinear({ channels: 4, height: 64, width: 64, data: direct.logits.data as Float32Array }, 150, 230).data;
  // stride is irrelevant in this mode, even one the sliding window would reject
  const got = await predictImage(pred, img, { stride: 1000, normalization: ckpt.normalization, protocol: PROTOCOL, mode: 'single', probabilities: true });
  assert.equal(got.windows, 1);
  assert.deepEqual(got.classes, argmaxChannels(logits, 4, 150 * 230));
  const sm = new Float32Array(4 * 150 * 230);
  addSoftmax(logits, 4, 150 * 230, sm);
  assert.ok(sameBits(got.probabilities!, sm));
  await assert.rejects(predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, mode: 'single', multiscale: true }), /cannot be multi-scale/);
  await assert.rejects(predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, mode: 'tiled' as never }), /unknown prediction mode 'tiled'/);
});

test('any WindowRunner can stand in for a Predictor', async () => {
  let calls = 0;
  const runner: WindowRunner = {
    crop: pred.crop, batch: 2, numClasses: pred.numClasses, policy: pred.policy, budget: pred.budget, needsScores: false, provider: pred.provider,
    run: async (x) => {
      calls++;
      const b = x.shape[0]!, out = new Float32Array(b * 4 * 64 * 64);
      // the real model window by window: a runner with its own batching
      for (let i = 0; i < b; i++) {
        const one = (x.data as Float32Array).subarray(i * 3 * 64 * 64, (i + 1) * 3 * 64 * 64);
        const r = await pred.run({ dtype: 'float32', shape: [1, 3, 64, 64], data: one });
        out.set(r.logits.data as Float32Array, i * 4 * 64 * 64);
      }
      return { logits: { dtype: 'float32', shape: [b, 4, 64, 64], data: out } };
    },
    release: async () => undefined,
  };
  const img = randomImage(150, 230, 7);
  const got = await predictImage(runner, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL });
  assert.equal(calls, 3); // 6 windows, 2 per call
  assert.deepEqual(got.classes, (await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, protocol: PROTOCOL })).classes);
});

// Banded mapping of the views' merged logits back to the image (banded.ts) against the unbanded
// computation it replaces: every view resized whole to H x W (torch bilinear), flipped back, then
// argmax of the logits (one view) or of the summed softmaxes (several). Equality is bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resizeBilinearTorch, resizeBilinearTorchRows, torchSourceRows } from '../../src/data/resize.js';
import { BAND_BYTES, defaultBandRows, mergeViews, ViewMerger, type MergedView } from '../../src/eval/banded.js';
import { addSoftmax, argmaxChannels, flipRows, resizeBilinear, type FloatImage } from '../../src/eval/sliding.js';
import { rng } from '../helpers/gradcheck.js';

function randomMap(channels: number, height: number, width: number, seed: number, scale = 4): FloatImage {
  const r = rng(seed);
  return { channels, height, width, data: Float32Array.from({ length: channels * height * width }, () => (r() * 2 - 1) * scale) };
}

/** Bitwise equality of two float arrays (deepEqual would let -0 and 0, or NaN payloads, pass or fail by value). */
function assertBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

/** The pre-banding computation, verbatim: whole resize, flip, argmax / addSoftmax over views. */
function unbanded(views: MergedView[], H: number, W: number) {
  const K = views[0]!.logits.channels, n = H * W;
  const full = views.map((v) => {
    const r = resizeBilinear(v.logits, H, W); // a copy when the size is unchanged, as slidingLogits' was
    if (v.flip) flipRows(r.data, K, H, W);
    return r.data;
  });
  const acc = new Float32Array(K * n);
  for (const f of full) addSoftmax(f, K, n, acc);
  const classes = argmaxChannels(views.length > 1 ? acc : full[0]!, K, n);
  const probabilities = views.length > 1 ? acc.map((v) => v / views.length) : acc;
  let fraction: Float32Array | undefined;
  for (const v of views) {
    if (!v.sharedFraction) continue;
    const h = v.logits.height, w = v.logits.width;
    const s = h === H && w === W ? v.sharedFraction.slice() : resizeBilinear({ channels: 1, height: h, width: w, data: v.sharedFraction }, H, W).data;
    if (v.flip) flipRows(s, 1, H, W);
    fraction ??= new Float32Array(n);
    for (let p = 0; p < n; p++) fraction[p]! += s[p]! / views.length;
  }
  return { classes, probabilities, fraction };
}

function check(views: MergedView[], H: number, W: number, bandRows: number | undefined, what: string): void {
  const ref = unbanded(views, H, W);
  const o = bandRows === undefined ? {} : { bandRows };
  const plain = mergeViews(views, H, W, o);
  assert.deepEqual(plain.classes, ref.classes, `${what}: classes`);
  assert.equal(plain.probabilities, undefined);
  const full = mergeViews(views, H, W, { ...o, probabilities: true });
  assert.deepEqual(full.classes, ref.classes, `${what}: classes with probabilities`);
  assertBits(full.probabilities!, ref.probabilities, `${what}: probabilities`);
  if (ref.fraction) assertBits(plain.sharedFraction!, ref.fraction, `${what}: shared fraction`);
  else assert.equal(plain.sharedFraction, undefined);
}

test('rows of the torch resize equal the full resize and read only the source rows they name', () => {
  for (const [h, w, dh, dw, y0, y1] of [[13, 17, 40, 33, 0, 7], [13, 17, 40, 33, 35, 40], [50, 9, 11, 20, 3, 9], [6, 6, 6, 25, 2, 5], [30, 40, 1200, 1600, 1190, 1200]] as const) {
    const img = randomMap(2, h, w, h * w);
    const full = resizeBilinearTorch(img.data, 2, h, w, dh, dw);
    const rows = resizeBilinearTorchRows(img.data, 2, h, w, dh, dw, y0, y1);
    const want = new Float32Array(2 * (y1 - y0) * dw);
    for (let c = 0; c < 2; c++) want.set(full.subarray((c * dh + y0) * dw, (c * dh + y1) * dw), c * (y1 - y0) * dw);
    assertBits(rows, want, `${h}x${w} -> ${dh}x${dw} rows [${y0}, ${y1})`);
    // every source row outside the named range poisoned: the band is unchanged
    const [first, last] = torchSourceRows(h, dh, y0, y1);
    assert.ok(0 <= first && first <= last && last < h);
    const poisoned = img.data.slice();
    for (let c = 0; c < 2; c++) for (let y = 0; y < h; y++) if (y < first || y > last) poisoned.fill(NaN, (c * h + y) * w, (c * h + y + 1) * w);
    assertBits(resizeBilinearTorchRows(poisoned, 2, h, w, dh, dw, y0, y1), want, 'poisoned outside the source rows');
  }
  assert.throws(() => resizeBilinearTorchRows(new Float32Array(4), 1, 2, 2, 4, 4, 3, 5), /rows \[3, 5\) are outside/);
});

test('default band height keeps K x rows x W floats near 32 MB', () => {
  assert.equal(BAND_BYTES, 32 * 2 ** 20);
  assert.equal(defaultBandRows(150, 4000), 13); // a 12-megapixel photo with ADE20K's classes
  assert.ok(150 * 13 * 4000 * 4 <= BAND_BYTES && 150 * 14 * 4000 * 4 > BAND_BYTES);
  assert.equal(defaultBandRows(150, 1e6), 1); // never zero rows
  assert.equal(defaultBandRows(5, 1600), 1048);
});

test('one view: argmax of the resized logits and their softmax, bit for bit, banded or not', () => {
  const v = randomMap(5, 13, 17, 1);
  const f = Float32Array.from({ length: 13 * 17 }, (_, i) => (i % 7) / 6);
  for (const flip of [false, true]) {
    for (const bandRows of [undefined, 7, 1, 40, 1000]) check([{ logits: v, flip, sharedFraction: f }], 40, 33, bandRows, `flip ${flip}, bands of ${bandRows}`);
    // already at the output size (a view equal to the original image): copied, not resampled
    check([{ logits: v, flip }], 13, 17, 4, `same size, flip ${flip}`);
    // downscaled
    check([{ logits: v, flip }], 6, 9, 4, `smaller output, flip ${flip}`);
  }
});

test('three views of different sizes, one flipped: summed softmaxes, mean probabilities and shared fractions are unchanged', () => {
  const frac = (h: number, w: number, s: number) => Float32Array.from({ length: h * w }, (_, i) => ((i * s) % 11) / 10);
  const views: MergedView[] = [
    { logits: randomMap(6, 20, 30, 11), flip: false, sharedFraction: frac(20, 30, 3) },
    { logits: randomMap(6, 33, 41, 12), flip: true, sharedFraction: frac(33, 41, 5) },
    { logits: randomMap(6, 25, 40, 13), flip: false }, // equal to the first output size below
  ];
  // an output larger than the views (held until the end) and one smaller (softmaxes accumulated as views arrive)
  for (const [H, W] of [[50, 80], [25, 40], [9, 14]] as const) {
    for (const bandRows of [undefined, 7, 3, 1]) check(views, H, W, bandRows, `${H}x${W}, bands of ${bandRows}`);
  }
  // adding one at a time is the same as handing them all over
  const m = new ViewMerger(25, 40, { bandRows: 7, probabilities: true });
  for (const v of views) m.add(v);
  const one = m.finish(), all = mergeViews(views, 25, 40, { probabilities: true });
  assert.deepEqual(one.classes, all.classes);
  assertBits(one.probabilities!, all.probabilities!, 'incremental probabilities');
});

test('a 1600x1200 image from 400x300 logits: class map identical to the unbanded computation', () => {
  const H = 1200, W = 1600;
  const a: MergedView = { logits: randomMap(5, 300, 400, 21, 2) };
  const b: MergedView = { logits: randomMap(5, 450, 600, 22, 2), flip: true };
  const refOne = unbanded([a], H, W), refTwo = unbanded([a, b], H, W);
  for (const bandRows of [undefined, 7]) {
    assert.deepEqual(mergeViews([a], H, W, bandRows ? { bandRows } : {}).classes, refOne.classes, `one view, bands of ${bandRows}`);
    assert.deepEqual(mergeViews([a, b], H, W, bandRows ? { bandRows } : {}).classes, refTwo.classes, `two views, bands of ${bandRows}`);
  }
  const withProbs = mergeViews([a, b], H, W, { probabilities: true, bandRows: 7 });
  assertBits(withProbs.probabilities!, refTwo.probabilities, 'probabilities');
  // the classes really vary over the image, so the comparison says something
  assert.ok(new Set(refTwo.classes).size === 5);
});

test('bad input is rejected with a reason', () => {
  assert.throws(() => mergeViews([], 4, 4), /no view to merge/);
  assert.throws(() => new ViewMerger(4, 4, { bandRows: 0 }), /band height must be a positive integer/);
  assert.throws(() => new ViewMerger(0, 4), /cannot merge views into a 4x0 output/);
  assert.throws(() => mergeViews([{ logits: randomMap(3, 4, 4, 1) }, { logits: randomMap(4, 4, 4, 2) }], 8, 8), /disagree on the number of classes \(3 and 4\)/);
  assert.throws(() => mergeViews([{ logits: { channels: 3, height: 4, width: 4, data: new Float32Array(47) } }], 8, 8), /47 values for 3x4x4/);
  assert.throws(() => mergeViews([{ logits: randomMap(2, 4, 4, 1), sharedFraction: new Float32Array(15) }], 8, 8), /15 values for a 4x4 view/);
  assert.throws(() => mergeViews([{ logits: randomMap(256, 1, 1, 1) }], 2, 2), /256 classes do not fit/);
});

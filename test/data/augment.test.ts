// Training augmentation (spec §5.3), eval pre-processing (§6.1) and the policy-net pipeline (§2.3):
// geometry against hand-computed values, resizing and colour conversion against OpenCV's arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  augmentPolicy, augmentTrain, CAT_MAX_TRIES, flipHorizontal, normalizeToCHW, preprocessEval, randomCropBox, rescaleSize,
  sampleRatioScale, trainAugmentOptions, TRAIN_AUGMENT, type TrainAugmentOptions,
} from '../../src/data/augment.js';
import { adjustHue, adjustSaturation, convertU8, drawPhotometric, hsvToRgb, rgbToHsv } from '../../src/data/photometric.js';
import { resizeBilinear, resizeBilinearTorch, resizeNearest } from '../../src/data/resize.js';
import type { LabelMap, RGBImage } from '../../src/data/types.js';
import { createRng, type Rng } from '../../src/base/rng.js';
import { CtsError } from '../../src/base/errors.js';

/** An Rng that replays fixed uniforms and counts how many were drawn. */
function scripted(values: number[]): Rng & { used: () => number } {
  let i = 0;
  return {
    uniform: () => {
      if (i >= values.length) throw new Error(`scripted rng exhausted after ${i} draws`);
      return values[i++]!;
    },
    normal: () => 0,
    state: () => i,
    used: () => i,
  };
}

function randomRgb(w: number, h: number, seed: number): RGBImage {
  const r = createRng(seed);
  return { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r.uniform() * 256)) };
}

function labelFrom(w: number, h: number, f: (x: number, y: number) => number): LabelMap {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
  return { width: w, height: h, data };
}

test('ratio-range resize: target scale int(L r), int(S r); size int(side f + 0.5) with the long-side cap', () => {
  // r = 0.5 + 0.2 * 1.5 = 0.8 -> (int(2048 * 0.8), int(512 * 0.8))
  assert.deepEqual(sampleRatioScale([2048, 512], [0.5, 2.0], scripted([0.2])), [1638, 409]);
  assert.deepEqual(rescaleSize(683, 512, [2048, 512]), [683, 512]);
  assert.deepEqual(rescaleSize(683, 512, [1024, 256]), [342, 256]); // 683 * 0.5 = 341.5 -> 342
  assert.deepEqual(rescaleSize(2000, 300, [2048, 512]), [2048, 307]); // long side caps f at 1.024
  assert.deepEqual(rescaleSize(2048, 1024, [2457, 1228]), [2456, 1228]); // f = 1228/1024 < 2457/2048
  assert.deepEqual(rescaleSize(360, 480, [480, 360]), [360, 480]); // portrait: scale order does not matter
});

test('random crop offsets are uniform integers in [0, max(dim - crop, 0)], top first', () => {
  const label = labelFrom(100, 80, (x) => x % 3);
  // margin_h = 30, margin_w = 50: floor(0.5 * 31) = 15, floor(0.99 * 51) = 50
  assert.deepEqual(randomCropBox(label, 50, 50, 1, scripted([0.5, 0.99])), { x: 50, y: 15, width: 50, height: 50 });
  // a crop larger than the image: offset 0, box = the image
  assert.deepEqual(randomCropBox(label, 90, 120, 1, scripted([0.7, 0.7])), { x: 0, y: 0, width: 100, height: 80 });
});

test('cat_max_ratio: unbalanced crops are redrawn; after 10 failed checks the 11th draw is taken unchecked', () => {
  // Columns 0..79 are class 1 and 80..99 class 2; a 40x40 crop at x has x - 40 columns of class 2 when x > 40,
  // so class 1 covers < 75 % only for x > 50.
  const label = labelFrom(100, 40, (x) => (x < 80 ? 1 : 2));
  const rng = scripted([0, 0.1, 0, 0.5, 0, 0.9]); // x = 6 (one class), 30 (one class), floor(0.9 * 61) = 54
  assert.deepEqual(randomCropBox(label, 40, 40, 0.75, rng), { x: 54, y: 0, width: 40, height: 40 });
  assert.equal(rng.used(), 6);
  // x = 45: 35 of 40 columns are class 1 (87.5 %) -> redrawn
  const r2 = scripted([0, 45.5 / 61, 0, 0.95]);
  assert.equal(randomCropBox(label, 40, 40, 0.75, r2).x, Math.floor(0.95 * 61));
  // Ignore (255) does not count as a class: class 1 + ignore is one class.
  const withIgnore = labelFrom(100, 40, (x) => (x < 80 ? 1 : 255));
  // every crop fails; the 11th draw (left offset 0, where all others were 60) is the one used
  const uniform = Array.from({ length: 2 * (CAT_MAX_TRIES + 1) }, (_, i) => (i === 2 * CAT_MAX_TRIES + 1 ? 0 : 0.99));
  const r3 = scripted(uniform);
  assert.deepEqual(randomCropBox(withIgnore, 40, 40, 0.75, r3), { x: 0, y: 0, width: 40, height: 40 });
  assert.equal(r3.used(), 22, 'initial draw + 10 redraws, two uniforms each');
});

const plain = (over: Partial<TrainAugmentOptions>): TrainAugmentOptions =>
  trainAugmentOptions('ade20k', { ratioRange: [1, 1], catMaxRatio: 1, flipProb: 0, photometric: null, ...over });

test('an image smaller than the crop is padded: image 0 (after normalisation), label 255', () => {
  const img = randomRgb(20, 10, 1);
  const label = labelFrom(20, 10, (x, y) => (x + y) % 4);
  // img_scale (20, 10) at r = 1 keeps 20x10; crop 16x16: offset_h = 0, offset_w = floor(0.5 * 5) = 2
  const out = augmentTrain(img, label, plain({ imgScale: [20, 10], cropSize: [16, 16] }), scripted([0.3, 0.9, 0.5, 0.9]));
  assert.equal(out.height, 16);
  assert.equal(out.width, 16);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) {
      const inside = y < 10;
      assert.equal(out.label[y * 16 + x], inside ? (x + 2 + y) % 4 : 255);
      for (let c = 0; c < 3; c++) {
        const want = inside ? Math.fround((img.data[(y * 20 + x + 2) * 3 + c]! - 127.5) / 127.5) : 0;
        assert.equal(out.image[c * 256 + y * 16 + x], want);
      }
    }
  }
});

test('horizontal flip mirrors image and label together (the flip draw is taken either way)', () => {
  const img = randomRgb(12, 8, 2);
  const label = labelFrom(12, 8, (x, y) => x * 10 + y);
  const opts = plain({ imgScale: [12, 8], cropSize: [8, 12] });
  const a = augmentTrain(img, label, opts, scripted([0, 0, 0, 0.9]));
  const b = augmentTrain(img, label, { ...opts, flipProb: 0.5 }, scripted([0, 0, 0, 0.1]));
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 12; x++) {
      assert.equal(b.label[y * 12 + x], a.label[y * 12 + 11 - x]);
      for (let c = 0; c < 3; c++) assert.equal(b.image[c * 96 + y * 12 + x], a.image[c * 96 + y * 12 + 11 - x]);
    }
  }
  const d = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  flipHorizontal(d, 3, 1, 3);
  assert.deepEqual([...d], [7, 8, 9, 4, 5, 6, 1, 2, 3]);
});

test('bilinear resize: hand-computed row, an OpenCV 4.6 result, and within 1 of a float64 reference', () => {
  // 0..255 in 2 pixels to 4: weights (1536, 512) and (512, 1536) of 2048; the last column is the edge pixel.
  const row = resizeBilinear({ width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255]) }, 4, 1);
  assert.deepEqual([...row.data].filter((_, i) => i % 3 === 0), [0, 64, 191, 255]);
  // cv2.resize(img, (7, 3), interpolation=INTER_LINEAR) with img[y, x, c] = ((y*5 + x)*3 + c) * 37 % 256, opencv 4.6
  const img = { width: 5, height: 4, data: Uint8Array.from({ length: 60 }, (_, i) => (i * 37) % 256) };
  const cv2 = [7, 44, 81, 70, 107, 145, 137, 114, 151, 186, 10, 47, 113, 89, 126, 132, 150, 96, 195, 189, 13, 65, 102, 139, 128, 165, 129, 134, 171, 117, 31, 68, 105, 110, 147, 184, 134, 116, 153, 125, 34, 71, 122, 159, 196, 185, 100, 113, 191, 76, 83, 88, 125, 162, 167, 204, 89, 137, 173, 89, 54, 91, 128];
  assert.deepEqual([...resizeBilinear(img, 7, 3).data], cv2);
  // Float64 reference of the formula: half-pixel centres, clamped borders, no antialias.
  const ref = (im: RGBImage, dw: number, dh: number) => {
    const out: number[] = [];
    const tap = (d: number, n: number, dn: number) => {
      const f = Math.min(Math.max((d + 0.5) * (n / dn) - 0.5, 0), n - 1);
      const i = Math.min(Math.floor(f), n - 1);
      return [i, Math.min(i + 1, n - 1), f - i] as const;
    };
    for (let y = 0; y < dh; y++) {
      const [y0, y1, fy] = tap(y, im.height, dh);
      for (let x = 0; x < dw; x++) {
        const [x0, x1, fx] = tap(x, im.width, dw);
        for (let c = 0; c < 3; c++) {
          const p = (yy: number, xx: number) => im.data[(yy * im.width + xx) * 3 + c]!;
          out.push((1 - fy) * ((1 - fx) * p(y0, x0) + fx * p(y0, x1)) + fy * ((1 - fx) * p(y1, x0) + fx * p(y1, x1)));
        }
      }
    }
    return out;
  };
  for (const [w, h, dw, dh, seed] of [[9, 7, 13, 5, 1], [20, 30, 37, 11, 2], [16, 16, 8, 8, 3], [5, 3, 31, 17, 4], [1, 1, 3, 2, 5]] as const) {
    const im = randomRgb(w, h, seed);
    const got = resizeBilinear(im, dw, dh).data, want = ref(im, dw, dh);
    want.forEach((v, i) => assert.ok(Math.abs(got[i]! - v) <= 1, `${w}x${h} -> ${dw}x${dh} at ${i}: ${got[i]} vs ${v}`));
    // A window of the output equals the same part of the full output.
    const win = resizeBilinear(im, dw, dh, { x: 1, y: 1, width: dw - 1, height: dh - 1 });
    for (let y = 0; y < dh - 1; y++) assert.deepEqual([...win.data.subarray(y * (dw - 1) * 3, (y + 1) * (dw - 1) * 3)], [...got.subarray(((y + 1) * dw + 1) * 3, (y + 2) * dw * 3)]);
  }
});

test('nearest label resize uses floor(dst * src/dst) and never invents values', () => {
  const l = resizeNearest({ width: 3, height: 1, data: Uint8Array.from([0, 1, 2]) }, 7, 1);
  assert.deepEqual([...l.data], [0, 0, 0, 1, 1, 2, 2]); // cv2 INTER_NEAREST gives the same
  const src = labelFrom(37, 23, (x, y) => [3, 7, 255, 11][(x * 7 + y * 3) % 4]!);
  for (const [w, h] of [[80, 50], [19, 11], [37, 23], [5, 100]] as const) {
    const out = resizeNearest(src, w, h);
    assert.ok(out.data.every((v) => v === 3 || v === 7 || v === 11 || v === 255));
  }
});

test('RGB <-> HSV follows OpenCV 8-bit conventions: H in 0..179 with wrap, S and V 0..255', () => {
  const hsv = (r: number, g: number, b: number) => [...rgbToHsv(Uint8Array.from([r, g, b]))];
  assert.deepEqual(hsv(255, 0, 0), [0, 255, 255]);
  assert.deepEqual(hsv(0, 255, 0), [60, 255, 255]);
  assert.deepEqual(hsv(0, 0, 255), [120, 255, 255]);
  assert.deepEqual(hsv(255, 0, 10), [179, 255, 255]); // a hue just below red wraps to 179, not -1
  assert.deepEqual(hsv(200, 40, 40), [0, 204, 200]);
  // hue wrap at 180: H 170 + 16 -> 6; HSV (6, 255, 255) -> RGB (255, 51, 0) as cv2
  const px = Uint8Array.from([255, 0, 85]);
  adjustHue(px, 1, 16);
  assert.deepEqual([...px], [255, 51, 0]);
  // saturation: S 204 * 1.5 = 306 clips to 255 -> (200, 0, 0)
  const p2 = Uint8Array.from([200, 40, 40]);
  adjustSaturation(p2, 1, 1.5);
  assert.deepEqual([...p2], [200, 0, 0]);
  // cv2 truncates inside 32-pixel SIMD blocks and rounds in a row's tail: HSV (0, 195, 80) -> 18.8
  const row = hsvToRgb(new Uint8Array(33 * 3).map((_, i) => [0, 195, 80][i % 3]!), 33);
  assert.deepEqual([...row.subarray(0, 3)], [80, 18, 18]);
  assert.deepEqual([...row.subarray(96, 99)], [80, 19, 19]);
});

test('brightness/contrast: float32 x*alpha+beta, clipped to [0, 255], truncated', () => {
  const d = Uint8Array.from([250, 3, 100, 0]);
  convertU8(d, 1, 10.7);
  assert.deepEqual([...d], [255, 13, 110, 10]);
  const c = Uint8Array.from([100, 200, 101, 0]);
  convertU8(c, 1.5, 0);
  assert.deepEqual([...c], [150, 255, 151, 0]);
  const n = Uint8Array.from([5, 30]);
  convertU8(n, 1, -20);
  assert.deepEqual([...n], [0, 10]);
});

test('PhotoMetricDistortion draws in mmseg order: brightness, mode, contrast first (mode 1) or last (mode 0)', () => {
  const r1 = scripted([0.7, 0.25, 0.6, 0.9, 0.5, 0.1, 0.8, 0.99]);
  assert.deepEqual(drawPhotometric(r1), { brightness: -16, mode: 1, contrast: 1, hue: 17 });
  assert.equal(r1.used(), 8);
  // mode 0: saturation (0.75 -> 0.5 + 0.75) and hue coins come before the contrast coin; hue -18 + floor(0 * 36)
  const r2 = scripted([0.2, 0.3, 0.6, 0.75, 0.5, 0, 0.6, 0.25]);
  assert.deepEqual(drawPhotometric(r2), { mode: 0, saturation: 1.25, hue: -18, contrast: 0.75 });
  assert.equal(r2.used(), 8);
});

test('normalisation: (x - 127.5) / 127.5 in float32, CHW, zero padding', () => {
  const img = { width: 2, height: 1, data: Uint8Array.from([0, 127, 128, 255, 64, 191]) };
  const out = normalizeToCHW(img, undefined, 2, 3);
  assert.deepEqual([...out], [-1, 1, 0, 0, 0, 0, Math.fround(-0.5 / 127.5), Math.fround(-63.5 / 127.5), 0, 0, 0, 0, Math.fround(0.5 / 127.5), Math.fround(63.5 / 127.5), 0, 0, 0, 0]);
});

test('a seeded run is reproducible bit for bit, and seeds matter', () => {
  const img = randomRgb(120, 90, 7);
  const label = labelFrom(120, 90, (x, y) => ((x >> 4) + (y >> 4)) % 5);
  const opts = trainAugmentOptions('camvid', { imgScale: [160, 120], cropSize: [64, 64] });
  const a = augmentTrain(img, label, opts, createRng(42));
  const b = augmentTrain(img, label, opts, createRng(42));
  const c = augmentTrain(img, label, opts, createRng(43));
  assert.deepEqual(Buffer.from(a.image.buffer), Buffer.from(b.image.buffer));
  assert.deepEqual(a.label, b.label);
  assert.notDeepEqual(Buffer.from(a.image.buffer), Buffer.from(c.image.buffer));
  assert.ok(a.image.every((v) => v >= -1 && v <= 1));
});

test('recipes per dataset and input checks', () => {
  assert.deepEqual(TRAIN_AUGMENT.ade20k.imgScale, [2048, 512]);
  assert.deepEqual(TRAIN_AUGMENT.pcontext.cropSize, [480, 480]);
  assert.deepEqual(TRAIN_AUGMENT.cityscapes.imgScale, [2048, 1024]);
  assert.deepEqual(TRAIN_AUGMENT.camvid.cropSize, [352, 352]);
  assert.throws(() => trainAugmentOptions('folder'), CtsError);
  assert.deepEqual(trainAugmentOptions('folder', { imgScale: [64, 32], cropSize: [32, 32] }).cropSize, [32, 32]);
  assert.throws(() => augmentTrain(randomRgb(4, 4, 1), labelFrom(4, 5, () => 0), TRAIN_AUGMENT.ade20k, createRng(1)), /label is 4x5 but its image is 4x4/);
});

test('eval pre-processing: keep-ratio resize to the protocol, normalised, not padded', () => {
  const small = preprocessEval(randomRgb(300, 200, 3), { resizeShort: 512, maxLong: 2048, windowStride: 512 });
  assert.deepEqual([small.width, small.height, small.image.length], [768, 512, 3 * 768 * 512]);
  const img = randomRgb(48, 36, 4);
  const same = preprocessEval(img, { windowStride: 32 });
  assert.deepEqual([same.width, same.height], [48, 36]);
  assert.equal(same.image[36 * 48 + 5], Math.fround((img.data[5 * 3 + 1]! - 127.5) / 127.5)); // channel 1, pixel (5, 0)
});

test('policy-net pipeline: torch bilinear on the normalised image, crops int(u (dim - crop)), flip when u > 0.5', () => {
  const t = resizeBilinearTorch(Float32Array.from([-1, 1]), 1, 1, 2, 1, 4);
  assert.deepEqual([...t], [-1, -0.5, 0.5, 1]);
  // Pascal-Context: 500x375 -> short side 512: 682x512 (int(512 * 500 / 375)); crop 480 at top int(0.5 * 32) = 16,
  // left int(0.25 * 202) = 50; no flip (0.5 is not > 0.5).
  const img = randomRgb(500, 375, 9);
  const label = labelFrom(500, 375, (x, y) => (x * 3 + y) % 60);
  const pc = augmentPolicy(img, label, 'pcontext', scripted([0.5, 0.25, 0.5]));
  assert.deepEqual([pc.height, pc.width], [480, 480]);
  const big = resizeNearest(label, 682, 512, 'torch');
  for (const [x, y] of [[0, 0], [479, 0], [17, 301], [479, 479]] as const) assert.equal(pc.label[y * 480 + x], big.data[(y + 16) * 682 + x + 50]);
  // ADE20K: the whole image to 512x512, then flipped (0.75 > 0.5)
  const ade = augmentPolicy(img, label, 'ade20k', scripted([0.75]));
  const sq = resizeNearest(label, 512, 512, 'torch');
  assert.equal(ade.label[3 * 512 + 0], sq.data[3 * 512 + 511]);
  // Cityscapes: a random crop without resize, from the normalised pixels
  const cs = augmentPolicy(randomRgb(800, 780, 5), labelFrom(800, 780, () => 1), 'cityscapes', scripted([0.5, 0.5, 0]));
  assert.deepEqual([cs.height, cs.width], [768, 768]);
  const src = randomRgb(800, 780, 5); // same pixels again: top int(0.5 * 12) = 6, left int(0.5 * 32) = 16
  assert.equal(cs.image[768 * 768 + 10 * 768 + 20], Math.fround((src.data[((6 + 10) * 800 + 16 + 20) * 3 + 1]! - 127.5) / 127.5));
});

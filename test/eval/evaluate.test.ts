// Views of the validation protocol (spec §6.1, §6.3), whole-image prediction with softmax averaging
// over views, and dataset evaluation through a SegDataset.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPredictor, evalViews, evaluateDataset, runnerPredictor, keepRatioSize, MULTISCALE_RATIOS, normalizeImage, predictImage } from '../../src/eval/evaluate.js';
import { addSoftmax, argmaxChannels, flipRows, resizeBilinear, slidingLogits } from '../../src/eval/sliding.js';
import { resizeBilinear as cv2Resize } from '../../src/data/resize.js';
import { ConfusionMatrix } from '../../src/eval/metrics.js';
import type { DatasetInfo, LabelMap, RGBImage, SegDataset } from '../../src/data/types.js';
import { randomImage, tinyCheckpoint } from './tiny-model.js';

const ADE = { resizeShort: 512, maxLong: 2048 };

test('keep-ratio resize follows mmcv (short side to the scale unless the long side hits its cap)', () => {
  assert.deepEqual(keepRatioSize(512, 683, [2048, 512]), [512, 683]);
  assert.deepEqual(keepRatioSize(375, 500, [2048, 512]), [512, 683]); // 500 * 512/375 = 682.67 -> 683
  assert.deepEqual(keepRatioSize(512, 4000, [2048, 512]), [262, 2048]); // long side capped: f = 0.512
  assert.deepEqual(keepRatioSize(1024, 2048, [2048, 1024]), [1024, 2048]);
});

test('single scale is one unflipped view at img_scale; multi-scale is 6 ratios x {unflipped, flipped}', () => {
  assert.deepEqual(evalViews(375, 500, ADE, false), [{ ratio: 1, height: 512, width: 683, flip: false }]);
  const ms = evalViews(512, 683, ADE, true);
  assert.equal(ms.length, 12);
  assert.deepEqual(MULTISCALE_RATIOS, [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]);
  // img_scale (2048, 512) x r = (int(2048 r), int(512 r)); sizes int(x * f + 0.5)
  assert.deepEqual(ms.filter((v) => !v.flip).map((v) => [v.height, v.width]), [[256, 342], [384, 512], [512, 683], [640, 854], [768, 1025], [896, 1195]]);
  assert.deepEqual(ms.map((v) => v.flip), Array.from({ length: 12 }, (_, i) => i % 2 === 1));
  // Cityscapes stays at 1024x2048 at ratio 1; without a dataset resize the image itself is scaled
  assert.deepEqual(evalViews(1024, 2048, { resizeShort: 1024, maxLong: 2048 }, false)[0], { ratio: 1, height: 1024, width: 2048, flip: false });
  assert.deepEqual(evalViews(360, 480, {}, true).filter((v) => !v.flip).map((v) => [v.height, v.width]), [[180, 240], [270, 360], [360, 480], [450, 600], [540, 720], [630, 840]]);
});

const ckpt = tinyCheckpoint();
const pred = await createPredictor(ckpt, { windowBatch: 4 });
after(() => pred.release());

test('multi-scale + flip prediction averages the softmax of every view (the < 1 ratios upsampled to the window)', async () => {
  const img = randomImage(50, 70, 4);
  const got = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization, multiscale: true });
  // by hand: every view resized (cv2 on uint8, as mmcv), normalised, flipped, slid, softmaxed, averaged
  const acc = new Float32Array(4 * 50 * 70);
  let windows = 0;
  for (const v of evalViews(50, 70, {}, true)) {
    const x = normalizeImage(cv2Resize(img, v.width, v.height), ckpt.normalization);
    if (v.flip) flipRows(x.data, 3, v.height, v.width);
    const r = await slidingLogits(pred, x, { stride: 48, flip: v.flip });
    windows += r.windows;
    // the unbanded mapping back: the whole canvas resized to the image, then flipped back
    const full = resizeBilinear(r.logits, 50, 70).data;
    if (v.flip) flipRows(full, 4, 50, 70);
    addSoftmax(full, 4, 50 * 70, acc);
  }
  // 0.5 (25x35), 0.75 (38x53), 1.0 (50x70) and 1.25 (63x88) are all upsampled to 64x89: 1x2 windows each;
  // 1.5 (75x105): 2x2; 1.75 (88x123): 2x3; every view twice (flip)
  assert.equal(got.windows, windows);
  assert.equal(windows, 2 * (2 + 2 + 2 + 2 + 4 + 6));
  assert.deepEqual(got.classes, argmaxChannels(acc, 4, 50 * 70));
  const single = await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization });
  assert.equal(single.windows, 2);
  assert.notDeepEqual(single.classes, got.classes);
});

/** A SegDataset held in memory, as any implementation of the interface would present it. */
function memoryDataset(items: { img: RGBImage; label: LabelMap }[], info: Partial<DatasetInfo> = {}): SegDataset {
  return {
    info: { name: 'mem', classes: ['a', 'b', 'c', 'd'], palette: [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]], cropSize: 64, eval: { windowStride: 48 }, ...info },
    split: 'val', root: '(memory)',
    samples: items.map((_, i) => ({ id: `im${i}`, imagePath: `im${i}.png`, labelPath: `im${i}_label.png` })),
    readImage: async (i) => items[i]!.img,
    readLabel: async (i) => items[i]!.label,
  };
}

function labelFor(img: RGBImage, seed: number): LabelMap {
  const data = new Uint8Array(img.width * img.height);
  for (let p = 0; p < data.length; p++) data[p] = (p * 31 + seed) % 11 === 0 ? 255 : (img.data[p * 3]! + seed) % 4;
  return { width: img.width, height: img.height, data };
}

test('dataset evaluation accumulates one confusion matrix over the images at original size', async () => {
  const items = [[64, 64], [40, 90], [100, 75]].map(([h, w], i) => {
    const img = randomImage(h!, w!, 20 + i);
    return { img, label: labelFor(img, i) };
  });
  const ds = memoryDataset(items);
  const seen: string[] = [];
  const res = await evaluateDataset(runnerPredictor(pred, ckpt.normalization), ds, { stride: 48, onImage: (d, t, id) => seen.push(`${d}/${t}:${id}`) });
  assert.deepEqual(seen, ['1/3:im0', '2/3:im1', '3/3:im2']);
  const ref = new ConfusionMatrix(4);
  for (const { img, label } of items) ref.update((await predictImage(pred, img, { stride: 48, normalization: ckpt.normalization })).classes, label.data);
  assert.deepEqual(res.confusion.counts, ref.counts);
  assert.equal(res.images, 3);
  const valid = items.reduce((a, it) => a + it.label.data.filter((v) => v !== 255).length, 0);
  assert.equal(res.confusion.counts.reduce((a, b) => a + b, 0), valid);
  const limited = await evaluateDataset(runnerPredictor(pred, ckpt.normalization), ds, { stride: 48, limit: 1 });
  assert.equal(limited.images, 1);
});

test('oracle and random policies run through the dataset loop; bad data is named', async () => {
  const items = [randomImage(64, 96, 3)].map((img) => ({ img, label: labelFor(img, 1) }));
  for (const [policy, S] of [['oracle', 2], ['random', 3]] as const) {
    const p = await createPredictor(tinyCheckpoint(policy, S), { windowBatch: 2 });
    assert.equal(p.budget.numTokens, 16 - 3 * S);
    const res = await evaluateDataset(runnerPredictor(p, ckpt.normalization), memoryDataset(items), { stride: 32, seed: 5 });
    assert.equal(res.windows, 2);
    await p.release();
  }
  await assert.rejects(createPredictor(tinyCheckpoint(), { policy: 'oracle' }), /oracle policy needs a budget: num_shared S > 0/);
  const off = await createPredictor(tinyCheckpoint('random', 2), { numShared: 0 });
  assert.deepEqual([off.policy, off.budget.numTokens], ['no_sharing', 16]);
  await off.release();
  await assert.rejects(createPredictor(tinyCheckpoint(), { policy: 'no_sharing', numShared: 2 }), /num_shared 2 conflicts with the no_sharing policy/);
  await assert.rejects(createPredictor(tinyCheckpoint(), { policy: 'oracle', numShared: 5 }), /num_shared 5 is impossible/);
  const bad = memoryDataset([{ img: items[0]!.img, label: { width: 96, height: 64, data: new Uint8Array(64 * 96).fill(7) } }]);
  await assert.rejects(evaluateDataset(runnerPredictor(pred, ckpt.normalization), bad, { stride: 48 }), /im0_label\.png: label value 7 at pixel 0/);
  const mismatch = memoryDataset([{ img: items[0]!.img, label: { width: 64, height: 64, data: new Uint8Array(64 * 64) } }]);
  await assert.rejects(evaluateDataset(runnerPredictor(pred, ckpt.normalization), mismatch, { stride: 48 }), /label is 64x64, image 96x64/);
  await assert.rejects(evaluateDataset(runnerPredictor(pred, ckpt.normalization), memoryDataset([]), { stride: 48 }), /has no samples/);
});

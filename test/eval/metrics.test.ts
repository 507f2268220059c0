// mIoU / mAcc / aAcc over a dataset-accumulated confusion matrix (spec §6.4): checked against a
// straightforward per-class float64 count on random data, and against hand-computed cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfusionMatrix, metricsFromConfusion, nanmean } from '../../src/eval/metrics.js';
import { rng } from '../helpers/gradcheck.js';

/** Reference: mmseg's histogram form, one image at a time, sums over the dataset, then ratios. */
function reference(images: { pred: Uint8Array; gt: Uint8Array }[], K: number) {
  const I = new Array<number>(K).fill(0), P = new Array<number>(K).fill(0), G = new Array<number>(K).fill(0);
  for (const { pred, gt } of images) {
    for (let i = 0; i < gt.length; i++) {
      if (gt[i] === 255) continue;
      G[gt[i]!]++;
      P[pred[i]!]++;
      if (pred[i] === gt[i]) I[gt[i]!]++;
    }
  }
  const iou = I.map((x, k) => (P[k]! + G[k]! - x > 0 ? x / (P[k]! + G[k]! - x) : NaN));
  const acc = I.map((x, k) => (G[k]! > 0 ? x / G[k]! : NaN));
  const mean = (v: number[]) => {
    const f = v.filter((x) => !Number.isNaN(x));
    return f.reduce((a, b) => a + b, 0) / f.length;
  };
  return { iou, acc, mIoU: mean(iou), mAcc: mean(acc), aAcc: I.reduce((a, b) => a + b, 0) / G.reduce((a, b) => a + b, 0) };
}

test('random predictions: confusion-matrix metrics equal a direct float64 count to 1e-9', () => {
  const K = 9, r = rng(7);
  // classes 7 and 8 never occur in GT or prediction (NaN IoU and acc); class 6 only in predictions (IoU 0, acc NaN)
  const images = Array.from({ length: 5 }, (_, n) => {
    const len = 200 + 37 * n;
    const gt = Uint8Array.from({ length: len }, () => (r() < 0.15 ? 255 : Math.floor(r() * 6)));
    const pred = Uint8Array.from(gt, (g) => (r() < 0.6 && g !== 255 ? g : Math.floor(r() * 7)));
    return { pred, gt };
  });
  const cm = new ConfusionMatrix(K);
  for (const im of images) cm.update(im.pred, im.gt);
  const m = cm.metrics(), ref = reference(images, K);
  for (let k = 0; k < K; k++) {
    if (Number.isNaN(ref.iou[k]!)) assert.ok(Number.isNaN(m.iou[k]!), `iou[${k}]`);
    else assert.ok(Math.abs(m.iou[k]! - ref.iou[k]!) < 1e-9, `iou[${k}] ${m.iou[k]} vs ${ref.iou[k]}`);
    if (Number.isNaN(ref.acc[k]!)) assert.ok(Number.isNaN(m.acc[k]!), `acc[${k}]`);
    else assert.ok(Math.abs(m.acc[k]! - ref.acc[k]!) < 1e-9, `acc[${k}]`);
  }
  assert.ok(Number.isNaN(m.iou[7]!) && Number.isNaN(m.iou[8]!));
  assert.equal(m.iou[6], 0);
  assert.ok(Number.isNaN(m.acc[6]!));
  assert.ok(Math.abs(m.mIoU - ref.mIoU) < 1e-9);
  assert.ok(Math.abs(m.mAcc - ref.mAcc) < 1e-9);
  assert.ok(Math.abs(m.aAcc - ref.aAcc) < 1e-9);
  const valid = images.reduce((a, im) => a + im.gt.filter((g) => g !== 255).length, 0);
  assert.equal(cm.counts.reduce((a, b) => a + b, 0), valid);
});

test('hand-computed case: 3 classes, ignore pixels skipped, dataset-level (not per-image) averaging', () => {
  const cm = new ConfusionMatrix(3);
  // image 1: gt 0 0 1 1 255, pred 0 1 1 1 2 -> the ignored pixel's prediction (2) is not counted
  cm.update([0, 1, 1, 1, 2], [0, 0, 1, 1, 255]);
  // image 2: gt 2 2 0, pred 2 0 0
  cm.update([2, 0, 0], [2, 2, 0]);
  // class 0: I=2 (one per image), gt=3, pred=3 -> U=4, IoU 0.5, acc 2/3
  // class 1: I=2, gt=2, pred=3 -> U=3, IoU 2/3, acc 1
  // class 2: I=1, gt=2, pred=1 -> U=2, IoU 0.5, acc 0.5
  const m = cm.metrics();
  assert.deepEqual([...m.intersection], [2, 2, 1]);
  assert.deepEqual([...m.union], [4, 3, 2]);
  assert.ok(Math.abs(m.iou[0]! - 0.5) < 1e-15 && Math.abs(m.iou[1]! - 2 / 3) < 1e-15 && Math.abs(m.iou[2]! - 0.5) < 1e-15);
  assert.ok(Math.abs(m.mIoU - (0.5 + 2 / 3 + 0.5) / 3) < 1e-15);
  assert.ok(Math.abs(m.mAcc - (2 / 3 + 1 + 0.5) / 3) < 1e-15);
  assert.ok(Math.abs(m.aAcc - 5 / 7) < 1e-15);
  // the mean of per-image mIoUs would be ((0.5 + 2/3) / 2 + (0.5 + 0.5) / 2) / 2 = 0.5417, not 0.5556
  assert.ok(Math.abs(m.mIoU - ((0.5 + 2 / 3) / 2 + 0.5) / 2) > 0.01);
});

test('a class absent from GT but predicted gets IoU 0 and is counted; absent from both is NaN and skipped', () => {
  const m = metricsFromConfusion([4, 1, 0, 0, 0, 0, 0, 0, 0], 3); // gt all class 0; one pixel predicted 1
  assert.equal(m.iou[0], 0.8);
  assert.equal(m.iou[1], 0);
  assert.ok(Number.isNaN(m.iou[2]!));
  assert.equal(m.mIoU, 0.4);
  assert.equal(m.mAcc, 0.8);
  assert.ok(Number.isNaN(nanmean([NaN, NaN])));
  assert.ok(Number.isNaN(new ConfusionMatrix(2).metrics().aAcc));
});

test('bad inputs are rejected with the offending value named', () => {
  const cm = new ConfusionMatrix(3);
  assert.throws(() => cm.update([0, 1], [0, 3], 'a.png'), /a\.png: label value 3 at pixel 1 is not a class id 0\.\.2/);
  assert.throws(() => cm.update([0, 5], [0, 1]), /predicted class 5/);
  assert.throws(() => cm.update([0], [0, 1]), /prediction has 1 pixels, label 2/);
  assert.throws(() => new ConfusionMatrix(256), /1\.\.255/);
  const other = new ConfusionMatrix(3);
  other.update([1], [1]);
  cm.update([2], [2]);
  cm.merge(other);
  assert.equal(cm.counts[4], 1);
  assert.equal(cm.counts[8], 1);
  assert.throws(() => cm.merge(new ConfusionMatrix(2)), /cannot merge/);
});

// The whole-window shortcut of predictImage (WindowRunner.runPixels): an image of exactly the
// window's size through an export that takes uint8 pixels gets the model's own class map, with
// the same classes and shared fraction as the sliding path (which fetches the logits and takes the
// argmax on the host), and it is taken only where it is exact: not for resized or flipped views,
// probabilities, float-input exports or several views.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { predictImage, type PredictOptions } from '../../src/eval/evaluate.js';
import { ExportRunner } from '../../src/export/runner.js';
import { exportModel } from '../../src/export/export.js';
import type { HostTensor } from '../../src/base/tensor.js';
import type { Prediction, WindowRunner } from '../../src/cts/predictor.js';
import type { ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { smallCheckpoint } from '../export/helpers.js';
import { randomImage } from './tiny-model.js';

/** The runner with its run() and runPixels() calls counted, or with runPixels removed. */
function counted(r: WindowRunner, withPixels = true): { runner: WindowRunner; calls: { run: number; pixels: number } } {
  const calls = { run: 0, pixels: 0 };
  const run = (x: HostTensor, s?: HostTensor): Promise<Prediction> => (calls.run++, r.run(x, s));
  const pixels = r.runPixels;
  const runPixels = withPixels && pixels ? (rgb: Uint8Array) => (calls.pixels++, pixels(rgb)) : undefined;
  return { runner: Object.assign(Object.create(r) as WindowRunner, { run, runPixels }), calls };
}

async function open(ckpt: ModelCheckpoint, withPreprocessing: boolean, policy?: 'no_sharing'): Promise<ExportRunner> {
  return ExportRunner.open(exportModel(ckpt, { withPreprocessing, ...(policy ? { policy } : {}) }).bytes, 'test export');
}

for (const numShared of [4, 0]) {
  test(`a window-sized image through a uint8 export (S=${numShared}): the model's class map, equal to the sliding path`, async () => {
    const ckpt = smallCheckpoint('mask_transformer', numShared, 3);
    const runner = await open(ckpt, true);
    try {
      assert.equal(typeof runner.runPixels, 'function');
      const o: PredictOptions = { stride: 64, normalization: ckpt.normalization, sharedFraction: true };
      for (const seed of [1, 2, 3]) {
        const img = randomImage(64, 64, seed);
        const fast = counted(runner), slow = counted(runner, false);
        const a = await predictImage(fast.runner, img, o), b = await predictImage(slow.runner, img, o);
        assert.deepEqual(fast.calls, { run: 0, pixels: 1 }, 'the shortcut ran, the logits path did not');
        assert.deepEqual(slow.calls, { run: 1, pixels: 0 });
        assert.deepEqual([...a.classes], [...b.classes], `classes, image ${seed}`);
        assert.equal(a.windows, 1);
        if (numShared) {
          assert.deepEqual([...a.sharedFraction!], [...b.sharedFraction!], `shared fraction, image ${seed}`);
          assert.equal(a.sharedFraction!.reduce((s, v) => s + v, 0), numShared * 32 * 32, 'S superpatches of 32x32 pixels');
        } else assert.equal(a.sharedFraction, undefined);
        assert.ok(new Set(a.classes).size >= 2, 'not a degenerate class map');
      }
    } finally {
      await runner.release();
    }
  });
}

test('the shortcut is not taken where it would differ: probabilities, resized or flipped views, float-input exports', async () => {
  const ckpt = smallCheckpoint('linear', 4, 5);
  const runner = await open(ckpt, true);
  const floatRunner = await open(ckpt, false);
  try {
    assert.equal(floatRunner.runPixels, undefined, 'a float-input export has no pixel path');
    const base: PredictOptions = { stride: 64, normalization: ckpt.normalization };
    const cases: [string, number, number, Partial<PredictOptions>][] = [
      ['probabilities', 64, 64, { probabilities: true }],
      ['flip', 64, 64, { flip: true }],
      ['larger image (sliding windows)', 64, 96, {}],
      ['smaller image (upsampled view)', 48, 48, {}],
      ['multi-scale', 64, 64, { multiscale: true, protocol: { resizeShort: 64 } }],
    ];
    for (const [what, h, w, extra] of cases) {
      const img = randomImage(h, w, 9);
      const c = counted(runner);
      const got = await predictImage(c.runner, img, { ...base, ...extra });
      assert.equal(c.calls.pixels, 0, `${what}: no shortcut`);
      assert.ok(c.calls.run >= 1, `${what}: the logits path ran`);
      assert.equal(got.classes.length, h * w);
    }
  } finally {
    await runner.release();
    await floatRunner.release();
  }
});

// Training configuration: presets < file < flags, zod validation with unknown keys rejected, and the
// run length (epochs or iterations) replaced as a whole by a higher layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRAIN_PRESETS, resolveTrainConfig } from '../../src/train/config.js';
import { CtsError } from '../../src/base/errors.js';

/** The keys every run needs besides a recipe. */
const where = { data_root: 'data', out_dir: 'runs/x' };

test('every preset resolves to a valid config', () => {
  for (const name of Object.keys(TRAIN_PRESETS)) {
    const c = resolveTrainConfig(name, where);
    assert.ok((c.epochs ?? 0) > 0 || (c.iterations ?? 0) > 0, `${name} has a run length`);
  }
  const c = resolveTrainConfig('camvid-vit-ti-cts', where);
  assert.equal(c.num_tokens_shared, 48);
  assert.equal(c.iterations, 2000);
});

test('a layer giving iterations or epochs replaces the run length below it', () => {
  const a = resolveTrainConfig('ade20k-vit-s-cts', where, { iterations: 100 });
  assert.equal(a.iterations, 100);
  assert.equal(a.epochs, undefined);
  const b = resolveTrainConfig('camvid-vit-ti-baseline', { ...where, epochs: 3 });
  assert.equal(b.epochs, 3);
  assert.equal(b.iterations, undefined);
  const c = resolveTrainConfig('camvid-vit-ti-baseline', { ...where, epochs: 3 }, { learning_rate: 1e-3 });
  assert.equal(c.epochs, 3);
  assert.equal(c.learning_rate, 1e-3);
  assert.throws(() => resolveTrainConfig(undefined, { ...where, dataset: 'camvid', backbone: 'vit-ti', crop_size: 352, epochs: 1, iterations: 2 }), /give epochs or iterations, not both/);
});

test('unknown keys, unknown presets and bad values are errors that name them', () => {
  assert.throws(() => resolveTrainConfig('camvid-vit-ti-cts', { ...where, learning_rat: 1 }), (e: unknown) => e instanceof CtsError && /learning_rat/.test(e.message));
  assert.throws(() => resolveTrainConfig('nope'), /unknown preset 'nope': expected one of .*camvid-vit-ti-cts/);
  assert.throws(() => resolveTrainConfig('camvid-vit-ti-cts', where, { batch_size: 0 }), /batch_size/);
});

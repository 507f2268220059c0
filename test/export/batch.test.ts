// A symbolic batch: one exported file runs batches of 1, 2 and 3 images, each image's logits equal to
// the library's batch-1 result, in onnxruntime-node and onnxruntime-web, also with packed weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { Predictor } from '../../src/cts/predictor.js';
import { CtsError } from '../../src/base/errors.js';
import { exportModel } from '../../src/export/export.js';
import { normalizeRgb } from '../../src/export/preprocess.js';
import { packWeights } from '../../src/export/weights.node.js';
import { assertClose } from '../helpers/gradcheck.js';
import { describeOnnx, rgbBatch, runFresh, smallCheckpoint } from './helpers.js';

test('a dynamic-batch export runs any batch size and equals the per-image Predictor', async () => {
  const ckpt = smallCheckpoint('linear', 4, 21);
  const m = exportModel(ckpt, { withPreprocessing: true, dynamicBatch: true });
  assert.deepEqual(m.inputs, [{ name: 'input', shape: ['batch', 64, 64, 3], dtype: 'uint8' }]);
  assert.equal(m.metadata.batch, 'batch');
  assert.deepEqual(describeOnnx(m.bytes).outputs, ['logits', 'class_map', 'mask_shared']);
  const pred = await Predictor.create(ckpt);
  const per = 64 * 64 * 3, plane = 5 * 64 * 64;
  const dir = await mkdtemp(join(tmpdir(), 'cts-dyn-'));
  const packed = packWeights([m.bytes], 'w.bin');
  await writeFile(join(dir, 'm.onnx'), packed.models[0]!);
  await writeFile(join(dir, 'w.bin'), packed.data);
  ortWeb.env.wasm.numThreads = 1;
  const web = await ortWeb.InferenceSession.create(m.bytes, { executionProviders: ['wasm'] });
  for (const b of [1, 3, 2]) {
    const rgb = rgbBatch(b, 64, 64, 100 + b);
    const out = await runFresh(m.bytes, { input: rgb });
    assert.deepEqual(out.logits!.shape, [b, 5, 64, 64]);
    assert.deepEqual(out.mask_shared!.shape, [b, 2, 2]);
    for (let i = 0; i < b; i++) {
      const img = (rgb.data as Uint8Array).subarray(i * per, (i + 1) * per);
      const lib = await pred.run({ dtype: 'float32', shape: [1, 3, 64, 64], data: normalizeRgb(img, 1, 64, 64, ckpt.normalization) });
      assertClose((out.logits!.data as Float32Array).subarray(i * plane, (i + 1) * plane), lib.logits.data as Float32Array, 1e-5, 0, `batch ${b} image ${i}`);
      assert.deepEqual([...(out.mask_shared!.data as Uint8Array).subarray(i * 4, i * 4 + 4)], [...(lib.maskShared!.data as Uint8Array)]);
    }
    const fromFile = await runFresh(join(dir, 'm.onnx'), { input: rgb });
    assert.deepEqual(fromFile.logits!.data, out.logits!.data, 'packed weights in the Loop body load from the external file');
    const w = await web.run({ input: new ortWeb.Tensor('uint8', rgb.data as Uint8Array, [b, 64, 64, 3]) });
    assertClose(w.logits!.data as Float32Array, out.logits!.data as Float32Array, 1e-4, 0, `onnxruntime-web batch ${b}`);
  }
  await web.release();
  await pred.release();
  assert.throws(() => exportModel(ckpt, { dynamicBatch: true, batch: 2 }), CtsError);
});

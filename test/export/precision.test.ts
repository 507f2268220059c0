// int8 precision from the checkpoint to the exported file: the export records its precision, uses the
// com.microsoft quantized product, is much smaller and runs in a fresh session close to float32; the
// Predictor and the Segmenter API report and honour the precision; float32 stays the default. The same
// int8 file runs in onnxruntime-web's wasm build (here in Node), whose binary has the contrib op too.
import { test } from 'node:test';
import * as ortWeb from 'onnxruntime-web';
import assert from 'node:assert/strict';
import { readNpy } from '../../src/io/npy.js';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import { Predictor } from '../../src/cts/predictor.js';
import { Segmenter } from '../../src/api/segmenter.js';
import { exportModel } from '../../src/export/export.js';
import { readExportInfo } from '../../src/export/runner.js';
import { LogitStats } from '../../src/eval/compare.js';
import { fixture } from '../helpers/fixtures.js';
import { describeOnnx, runFresh, smallCheckpoint } from './helpers.js';
import { randomImage } from '../eval/tiny-model.js';

const tiny = (f: string) => fixture(`tiny96/${f}`);

test('int8 export of tiny96: precision in the metadata, quantized products, under half the float32 file, close logits', async () => {
  const ckpt = await loadCheckpoint(tiny('weights.safetensors'));
  const input = await readNpy(tiny('input.npy'));
  const fp = exportModel(ckpt, { batch: 2 }), i8 = exportModel(ckpt, { batch: 2, precision: 'int8' });
  assert.equal(describeOnnx(fp.bytes).metadata.precision, 'fp32');
  const d = describeOnnx(i8.bytes);
  assert.equal(d.metadata.precision, 'int8');
  assert.ok(d.domains.includes('com.microsoft'), `domains ${d.domains.join(', ')}`);
  assert.ok(!describeOnnx(fp.bytes).domains.includes('com.microsoft'), 'a float32 export stays standard ONNX');
  // tiny96 (d=64) has relatively large non-Linear parameters (patch embedding, positions); ViT-S is ~0.27
  assert.ok(i8.bytes.length < 0.5 * fp.bytes.length, `int8 ${i8.bytes.length} B vs fp32 ${fp.bytes.length} B`);
  assert.equal(readExportInfo(i8.bytes, 'i8.onnx').precision, 'int8');
  assert.equal(readExportInfo(fp.bytes, 'fp.onnx').precision, 'fp32');
  const [a, b] = [await runFresh(fp.bytes, { input }), await runFresh(i8.bytes, { input })];
  const st = new LogitStats();
  st.add(a.logits!, b.logits!);
  const r = st.result();
  assert.ok(r.maxAbsError > 0 && r.maxAbsError < 0.1, `max logit error ${r.maxAbsError}`);
  assert.ok(r.argmaxAgreement > 0.99, `argmax agreement ${r.argmaxAgreement}`);
});

test('int8 Predictor with the in-graph policy network: the same shared superpatches as float32, close logits', async () => {
  const ckpt = smallCheckpoint('mask_transformer', 2);
  const make = (precision?: 'int8') => Predictor.create(ckpt, { batch: 2, ...(precision ? { precision } : {}) });
  const [fp, i8] = [await make(), await make('int8')];
  try {
    const x = { dtype: 'float32' as const, shape: [2, 3, 64, 64], data: Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => Math.sin(i * 0.37)) };
    const [a, b] = [await fp.run(x), await i8.run(x)];
    assert.deepEqual(b.maskShared!.data, a.maskShared!.data, 'the policy network stays float32');
    const st = new LogitStats();
    st.add(a.logits, b.logits);
    assert.ok(st.result().maxAbsError < 0.2 * st.result().referenceRms, JSON.stringify(st.result()));
  } finally {
    await fp.release();
    await i8.release();
  }
});

test('Segmenter.load: precision int8 for checkpoints, an export keeps its own and refuses another', async () => {
  const ckpt = smallCheckpoint('linear', 0);
  const img = randomImage(64, 64, 3);
  const raw = { data: img.data, width: 64, height: 64, channels: 3 as const };
  const fp = await Segmenter.load(ckpt), i8 = await Segmenter.load(ckpt, { precision: 'int8' });
  assert.equal(fp.info.precision, 'fp32');
  assert.equal(i8.info.precision, 'int8');
  const [ma, mb] = [(await fp.segment(raw)).classMap, (await i8.segment(raw)).classMap];
  const same = ma.reduce((n, v, i) => n + (v === mb[i] ? 1 : 0), 0);
  assert.ok(same / ma.length > 0.95, `class maps agree on ${same} of ${ma.length} pixels`);
  await fp.dispose();
  await i8.dispose();
  const bytes = exportModel(ckpt, { precision: 'int8', withPreprocessing: true }).bytes;
  const ex = await Segmenter.load(bytes);
  assert.deepEqual([ex.info.format, ex.info.precision], ['onnx', 'int8']);
  await ex.dispose();
  await assert.rejects(Segmenter.load(bytes, { precision: 'fp32' }), /was exported at int8 precision; precision 'fp32' applies to checkpoints/);
});

test('the int8 export runs in onnxruntime-web (wasm) with the class map of onnxruntime-node', async () => {
  const ckpt = await loadCheckpoint(tiny('weights.safetensors'));
  const input = await readNpy(tiny('input.npy'));
  const bytes = exportModel(ckpt, { batch: 2, precision: 'int8' }).bytes;
  const node = await runFresh(bytes, { input });
  ortWeb.env.wasm.numThreads = 1;
  const web = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  try {
    const w = await web.run({ input: new ortWeb.Tensor('float32', input.data as Float32Array, input.shape) });
    assert.deepEqual([...(w.class_map!.data as Uint8Array)], [...(node.class_map!.data as Uint8Array)]);
    // wasm's int8 kernels are not MLAS's x86 ones: the sums agree, the float rounding around them not bit for bit
    const a = w.logits!.data as Float32Array, b = node.logits!.data as Float32Array;
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
    assert.ok(d < 0.02, `max |wasm - node| = ${d}`);
  } finally {
    await web.release();
  }
});

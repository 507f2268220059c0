// The exported ONNX file against the library's own inference: the tiny96 reference weights (with and
// without sharing, the policy given as logits and as an in-graph policy network) and small random
// models with both decoders, float and uint8 inputs. Every export runs in a fresh onnxruntime-node
// InferenceSession, so nothing of cts-seg is needed to use the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import { type ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { segmenterForward } from '../../src/cts/forward.js';
import { Predictor } from '../../src/cts/predictor.js';
import { CtsError } from '../../src/base/errors.js';
import { exportModel, EXPORT_FORMAT } from '../../src/export/export.js';
import { normalizeRgb } from '../../src/export/preprocess.js';
import { assertClose } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/fixtures.js';
import onnxProto from 'onnx-proto';
import { argmaxClasses, describeOnnx, rgbBatch, runFresh, smallCheckpoint } from './helpers.js';

const TOL = 1e-5;
const tiny = (f: string) => fixture(`tiny96/${f}`);

function checkClassMap(out: Record<string, HostTensor>, what: string): void {
  const [b, , h, w] = out.logits!.shape as [number, number, number, number];
  assert.deepEqual(out.class_map!.shape, [b, h, w], `${what}: class_map shape`);
  assert.equal(out.class_map!.dtype, 'uint8');
  assert.deepEqual([...(out.class_map!.data as Uint8Array)], argmaxClasses(out.logits!), `${what}: class_map is the argmax of logits`);
}

test('tiny96 without sharing: exported logits equal segmenterForward and the reference', async () => {
  const ckpt = await loadCheckpoint(tiny('weights.safetensors'));
  const input = await readNpy(tiny('input.npy'));
  const m = exportModel(ckpt, { batch: 2 });
  assert.equal(m.policy, 'no_sharing');
  const out = await runFresh(m.bytes, { input });
  const { tensors, metadata } = await readSafetensors(tiny('weights.safetensors'));
  const lib = await segmenterForward(tensors, input, { metadata });
  assert.deepEqual(out.logits!.shape, [2, 11, 96, 96]);
  assertClose(out.logits!.data as Float32Array, lib.logits.data as Float32Array, TOL, 0, 'logits vs segmenterForward');
  assertClose(out.logits!.data as Float32Array, (await readNpy(tiny('no_sharing/logits.npy'))).data as Float32Array, 1e-4, 0, 'logits vs reference');
  assert.equal(out.mask_shared, undefined, 'no mask_shared without sharing');
  checkClassMap(out, 'tiny96');
});

test('tiny96 with sharing, policy logits as a second input: equal to segmenterForward and the reference', async () => {
  const ckpt = await loadCheckpoint(tiny('weights.safetensors'));
  const input = await readNpy(tiny('input.npy'));
  const policyLogits = await readNpy(tiny('cts/policy_logits.npy'));
  const m = exportModel(ckpt, { batch: 2, policy: 'policy_logits', numShared: 3 });
  assert.deepEqual(m.inputs.map((i) => i.name), ['input', 'policy_logits']);
  assert.equal(m.budget.numTokens, 36 - 3 * 3);
  const out = await runFresh(m.bytes, { input, policy_logits: policyLogits });
  const { tensors, metadata } = await readSafetensors(tiny('weights.safetensors'));
  const lib = await segmenterForward(tensors, input, { metadata, numShared: 3, policyLogits });
  assertClose(out.logits!.data as Float32Array, lib.logits.data as Float32Array, TOL, 0, 'logits vs segmenterForward');
  assertClose(out.logits!.data as Float32Array, (await readNpy(tiny('cts/logits.npy'))).data as Float32Array, 1e-4, 0, 'logits vs reference');
  assert.deepEqual([...(out.mask_shared!.data as Uint8Array)], [...((await readNpy(tiny('cts/mask_scale2.npy'))).data as Uint8Array)], 'mask_shared = reference mask_scale2');
  checkClassMap(out, 'tiny96 cts');
});

/** tiny96 with random policy-network weights, as a policy_net checkpoint with S = 3. */
async function tinyWithPolicy(): Promise<ModelCheckpoint> {
  const ckpt = await loadCheckpoint(tiny('weights.safetensors'));
  for (const [k, v] of initPolicyNet(5, { width: 0.25 })) ckpt.weights.set(`policy_net.${k}`, v);
  return { ...ckpt, cts: { policy: 'policy_net', numShared: 3, policyWidth: 0.25 } };
}

test('tiny96 with the policy network inside the graph, uint8 input: equal to the Predictor, with and without sharing', async () => {
  const ckpt = await tinyWithPolicy();
  const rgb = await readNpy(tiny('images_u8.npy'));
  const x = { dtype: 'float32' as const, shape: [2, 3, 96, 96], data: normalizeRgb(rgb.data as Uint8Array, 2, 96, 96, ckpt.normalization) };
  // the host normalisation is the reference one (ViT: (x - 127.5) / 127.5)
  assertClose(x.data, (await readNpy(tiny('input.npy'))).data as Float32Array, 1e-7, 0, 'normalizeRgb vs reference input');
  for (const policy of ['policy_net', 'no_sharing'] as const) {
    const m = exportModel(ckpt, { batch: 2, withPreprocessing: true, policy });
    assert.deepEqual(m.inputs, [{ name: 'input', shape: [2, 96, 96, 3], dtype: 'uint8' }]);
    const out = await runFresh(m.bytes, { input: rgb });
    const pred = await Predictor.create(ckpt, { batch: 2, policy });
    const lib = await pred.run(x);
    await pred.release();
    assertClose(out.logits!.data as Float32Array, lib.logits.data as Float32Array, TOL, 0, `${policy}: logits vs Predictor`);
    if (policy === 'policy_net') {
      assert.deepEqual(out.mask_shared!.shape, [2, 3, 3]);
      assert.deepEqual([...(out.mask_shared!.data as Uint8Array)], [...(lib.maskShared!.data as Uint8Array)], 'mask_shared vs Predictor');
      const perImage = [0, 1].map((i) => [...(out.mask_shared!.data as Uint8Array).subarray(i * 9, i * 9 + 9)].reduce((a, b) => a + b, 0));
      assert.deepEqual(perImage, [3, 3], 'exactly S superpatches shared per image');
    } else assert.equal(out.mask_shared, undefined);
    checkClassMap(out, policy);
  }
});

for (const decoder of ['linear', 'mask_transformer'] as const) {
  test(`small ${decoder} model with a policy network: export equals the Predictor (float and uint8 input, with and without sharing)`, async () => {
    const ckpt = smallCheckpoint(decoder, 4);
    const rgb = rgbBatch(1, 64, 64, 7);
    const x = { dtype: 'float32' as const, shape: [1, 3, 64, 64], data: normalizeRgb(rgb.data as Uint8Array, 1, 64, 64, ckpt.normalization) };
    for (const numShared of [4, 0]) {
      const pred = await Predictor.create(ckpt, { numShared });
      const lib = await pred.run(x);
      await pred.release();
      for (const withPreprocessing of [false, true]) {
        const m = exportModel(ckpt, { numShared, withPreprocessing });
        assert.equal(m.policy, numShared ? 'policy_net' : 'no_sharing');
        const out = await runFresh(m.bytes, { input: withPreprocessing ? rgb : x });
        const what = `${decoder} S=${numShared} ${withPreprocessing ? 'uint8' : 'float'}`;
        assertClose(out.logits!.data as Float32Array, lib.logits.data as Float32Array, TOL, 0, `${what}: logits`);
        if (numShared) assert.deepEqual([...(out.mask_shared!.data as Uint8Array)], [...(lib.maskShared!.data as Uint8Array)], `${what}: mask_shared`);
        checkClassMap(out, what);
      }
    }
  });
}

test('metadata describes the model; only standard ONNX and com.microsoft ops are used', () => {
  const ckpt = smallCheckpoint('mask_transformer', 4);
  const m = exportModel(ckpt, { withPreprocessing: true, classMapType: 'int64' });
  const d = describeOnnx(m.bytes);
  assert.deepEqual(d.inputs, ['input']);
  assert.deepEqual(d.outputs, ['logits', 'class_map', 'mask_shared']);
  assert.ok(d.domains.every((x) => x === 'ai.onnx' || x === 'com.microsoft'), `domains ${d.domains}`);
  const md = d.metadata;
  assert.equal(md.format, EXPORT_FORMAT);
  assert.deepEqual(JSON.parse(md.classes!), ckpt.classes);
  assert.deepEqual(JSON.parse(md.palette!), ckpt.palette);
  assert.deepEqual(JSON.parse(md.normalization!), ckpt.normalization);
  assert.deepEqual(JSON.parse(md.crop_size!), [64, 64]);
  assert.equal(md.policy, 'policy_net');
  assert.equal(md.num_shared, '4');
  assert.equal(md.num_tokens, String(16 - 3 * 4));
  assert.equal(md.input_format, 'uint8_rgb_nhwc');
  assert.equal(JSON.parse(md.outputs!).find((o: { name: string }) => o.name === 'class_map').dtype, 'int64');
  assert.equal(md.target, 'cpu');
});

test('an export for the wasm build: recorded in the metadata, no LayerNormalization kernel, the same outputs', async () => {
  const ckpt = smallCheckpoint('mask_transformer', 4, 2);
  const cpu = exportModel(ckpt, { withPreprocessing: true }), wasm = exportModel(ckpt, { withPreprocessing: true, target: 'wasm' });
  assert.equal(describeOnnx(wasm.bytes).metadata.target, 'wasm');
  const ops = (b: Uint8Array) => (onnxProto.onnx.ModelProto.decode(b).graph!.node ?? []).map((n) => n.opType);
  assert.ok(ops(cpu.bytes).includes('LayerNormalization'));
  assert.ok(!ops(wasm.bytes).includes('LayerNormalization'));
  const rgb = rgbBatch(1, 64, 64, 11);
  const [a, b] = [await runFresh(cpu.bytes, { input: rgb }), await runFresh(wasm.bytes, { input: rgb })];
  assertClose(b.logits!.data as Float32Array, a.logits!.data as Float32Array, TOL, 0, 'logits');
  assert.deepEqual([...(b.mask_shared!.data as Uint8Array)], [...(a.mask_shared!.data as Uint8Array)], 'shared superpatches');
  assert.throws(() => exportModel(ckpt, { target: 'gpu' as 'cpu' }), (e: unknown) => e instanceof CtsError && /unknown export target 'gpu': expected cpu or wasm/.test(e.message));
});

test('impossible exports are refused with a clear error', async () => {
  const plain = await loadCheckpoint(tiny('weights.safetensors'));
  assert.throws(() => exportModel(plain, { policy: 'policy_net', numShared: 3 }), (e: unknown) => e instanceof CtsError && /policy-network weights/.test(e.message));
  assert.throws(() => exportModel(plain, { policy: 'no_sharing', numShared: 3 }), (e: unknown) => e instanceof CtsError && /conflicts/.test(e.message));
  assert.throws(() => exportModel(plain, { policy: 'policy_logits', numShared: 10 }), CtsError);
  assert.throws(() => exportModel(plain, { policy: 'policy_logits' }), (e: unknown) => e instanceof CtsError && /needs a budget/.test(e.message));
  assert.throws(() => exportModel(plain, { batch: 0 }), CtsError);
});

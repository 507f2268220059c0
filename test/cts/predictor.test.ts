import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Predictor } from '../../src/cts/predictor.js';
import { defaultMicroBatch } from '../../src/cts/segmenter.js';
import { createSegmenterConfig } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { defaultPalette, VIT_NORMALIZATION, type ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { writeSafetensors } from '../../src/io/safetensors.node.js';
import { createRng } from '../../src/base/rng.js';
import { assertClose } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/fixtures.js';

function makeCkpt(policy: 'policy_net' | 'no_sharing', numShared: number): ModelCheckpoint {
  const config = createSegmenterConfig('custom', { d_model: 32, n_layers: 1, n_heads: 2, n_cls: 3, decoder_n_layers: 1, image_size: 64 });
  const weights = initSegmenterWeights(segmenterSpec(config), 1);
  if (policy === 'policy_net') for (const [k, v] of initPolicyNet(2, { width: 0.25 })) weights.set(`policy_net.${k}`, v);
  return {
    config, weights, classes: ['sky', 'road', 'car'], palette: defaultPalette(3), normalization: VIT_NORMALIZATION,
    cropSize: [64, 64], cts: { policy, numShared, ...(policy === 'policy_net' ? { policyWidth: 0.25 } : {}) }, dataset: 'synthetic',
  };
}

const windows = (b: number, seed: number) => {
  const r = createRng(seed);
  return { dtype: 'float32' as const, shape: [b, 3, 64, 64], data: Float32Array.from({ length: b * 3 * 64 * 64 }, () => r.uniform() * 2 - 1) };
};

test('checkpoints round-trip with their metadata, and the policy net picks S superpatches in-graph', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-ckpt-'));
  const ckpt = makeCkpt('policy_net', 2);
  await saveCheckpoint(join(dir, 'm.safetensors'), ckpt);
  const back = await loadCheckpoint(join(dir, 'm.safetensors'));
  assert.deepEqual(back.classes, ckpt.classes);
  assert.deepEqual(back.cts, ckpt.cts);
  assert.deepEqual(back.config, ckpt.config);
  assert.deepEqual(back.weights.get('policy_net.head.bias')!.data, ckpt.weights.get('policy_net.head.bias')!.data);
  const pred = await Predictor.create(back, { batch: 2 });
  assert.equal(pred.budget.numTokens, 16 - 8 + 2);
  const out = await pred.run(windows(2, 3));
  assert.deepEqual(out.logits.shape, [2, 3, 64, 64]);
  const m = out.maskShared!.data as Uint8Array;
  assert.equal(m.slice(0, 4).reduce((a, b) => a + b, 0), 2);
  assert.equal(m.slice(4, 8).reduce((a, b) => a + b, 0), 2);
  // a partial batch is padded and gives the same result as a full one
  const one = await pred.run({ ...windows(2, 3), shape: [1, 3, 64, 64], data: (windows(2, 3).data as Float32Array).subarray(0, 3 * 64 * 64) });
  assertClose(one.logits.data as Float32Array, (out.logits.data as Float32Array).subarray(0, 3 * 64 * 64), 1e-5);
  await pred.release();
  const base = await Predictor.create(back, { policy: 'no_sharing' });
  assert.equal(base.budget.numTokens, 16);
  assert.equal((await base.run(windows(1, 4))).maskShared, undefined);
  await base.release();
});

test('default micro-batch: 2 where one image\'s attention maps are large (ViT-S 512, 768; ViT-B), else the whole batch', () => {
  const cfg = (name: string) => createSegmenterConfig(name, { n_cls: 150 });
  assert.equal(defaultMicroBatch(cfg('vit-s'), 512, 512, 8), 2);
  assert.equal(defaultMicroBatch(cfg('vit-s'), 768, 768, 8), 2);
  assert.equal(defaultMicroBatch(cfg('vit-b'), 512, 512, 8), 2);
  assert.equal(defaultMicroBatch(cfg('vit-s'), 512, 512, 1), 1);
  assert.equal(defaultMicroBatch(cfg('vit-ti'), 512, 512, 8), 8, 'ViT-Ti: 13 MB of maps per image');
  assert.equal(defaultMicroBatch(cfg('vit-s'), 256, 256, 8), 8, 'the demo\'s size');
});

test('micro-batches inside the graph give the same logits and shared masks as one piece (policy net and oracle scores)', async () => {
  const ckpt = makeCkpt('policy_net', 2);
  const x = windows(5, 7);
  const results = [];
  for (const microBatch of [5, 2]) {
    const pred = await Predictor.create(ckpt, { batch: 5, microBatch });
    results.push(await pred.run(x));
    await pred.release();
  }
  assertClose(results[1]!.logits.data as Float32Array, results[0]!.logits.data as Float32Array, 1e-5);
  assert.deepEqual(results[1]!.maskShared!.data, results[0]!.maskShared!.data);
  // oracle scores are sliced per micro-batch with their images
  const scores = { dtype: 'float32' as const, shape: [5, 4], data: Float32Array.from({ length: 20 }, (_, i) => (i * 7) % 5) };
  const masks: Uint8Array[] = [];
  for (const microBatch of [5, 2]) {
    const pred = await Predictor.create(ckpt, { batch: 5, microBatch, policy: 'oracle' });
    masks.push((await pred.run(x, scores)).maskShared!.data as Uint8Array);
    await pred.release();
  }
  assert.deepEqual(masks[1], masks[0]);
  assert.ok(masks[0]!.some((v, i) => v !== masks[0]![i % 4]), 'images get different masks');
});

test('a plain official state dict loads as a checkpoint; bad checkpoints are rejected', async () => {
  const c = await loadCheckpoint(fixture('tiny96/weights.safetensors'));
  assert.deepEqual(c.cropSize, [96, 96]);
  assert.equal(c.config.n_heads, 2);
  assert.equal(c.classes[10], 'class_10');
  assert.equal(c.cts.policy, 'no_sharing');
  const dir = await mkdtemp(join(tmpdir(), 'cts-ckpt-'));
  const bad = makeCkpt('no_sharing', 0);
  await writeSafetensors(join(dir, 'bad.safetensors'), bad.weights, { format: 'cts-seg/1', config: JSON.stringify(bad.config), classes: '["a"]' });
  await assert.rejects(loadCheckpoint(join(dir, 'bad.safetensors')), /1 class names for a 3-class model/);
  await writeSafetensors(join(dir, 'bad2.safetensors'), bad.weights, { config: '{not json' });
  await assert.rejects(loadCheckpoint(join(dir, 'bad2.safetensors')), /__metadata__\.config is not valid JSON/);
  const noPolicy = makeCkpt('no_sharing', 0);
  await saveCheckpoint(join(dir, 'np.safetensors'), { ...noPolicy, cts: { policy: 'no_sharing', numShared: 0 } });
  const np = await loadCheckpoint(join(dir, 'np.safetensors'));
  await assert.rejects(Predictor.create(np, { policy: 'policy_net', numShared: 2 }), /needs policy-network weights/);
});

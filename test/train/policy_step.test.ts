// The policy network learns its targets: on a fixed batch where uniform superpatches are flat
// colour and mixed ones are noisy, the loss falls and cell accuracy rises; BN buffers update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyStep, policyAccuracyGraph } from '../../src/train/policy_step.js';
import { ADAMW_DEFAULTS, initState } from '../../src/train/optim.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { createRng } from '../../src/base/rng.js';
import type { HostTensor } from '../../src/base/tensor.js';

test('policy-net step: loss falls, accuracy rises, running stats and num_batches_tracked update', async () => {
  const b = 4, h = 64, w = 64;
  const r = createRng(1);
  const images = new Float32Array(b * 3 * h * w), targets = new Uint8Array(b * 4);
  for (let i = 0; i < b; i++) {
    for (let cell = 0; cell < 4; cell++) {
      const uniform = (i + cell) % 2 === 0;
      targets[i * 4 + cell] = uniform ? 1 : 0;
      const cy = Math.floor(cell / 2) * 32, cx = (cell % 2) * 32, base = r.uniform() * 2 - 1;
      for (let c = 0; c < 3; c++) for (let y = cy; y < cy + 32; y++) for (let x = cx; x < cx + 32; x++) {
        images[((i * 3 + c) * h + y) * w + x] = uniform ? base : Math.sign(r.uniform() - 0.5);
      }
    }
  }
  const opt = { ...ADAMW_DEFAULTS, weightDecay: 1e-3 };
  const step = await PolicyStep.create({ batch: b, crop: [h, w], optimizer: opt, width: 0.25 });
  let weights: Map<string, HostTensor> = initPolicyNet(3, { width: 0.25 });
  let state: Map<string, HostTensor> = initState(opt, step.spec);
  const first = weights.get('backbone.bn1.running_mean')!.data.slice();
  const losses: number[] = [];
  for (let t = 1; t <= 30; t++) {
    const out = await step.run(weights, state, images, targets, 2e-3, t);
    losses.push(out.loss);
    weights = out.weights;
    state = out.state;
  }
  assert.ok(losses[29]! < 0.5 * losses[0]!, `loss ${losses[0]} -> ${losses[29]}`);
  assert.notDeepEqual(weights.get('backbone.bn1.running_mean')!.data, first);
  assert.equal((weights.get('backbone.bn1.num_batches_tracked')!.data as BigInt64Array)[0], 30n);
  const acc = await policyAccuracyGraph(weights, b, [h, w], 0.25);
  const res = await acc.run({ images: { dtype: 'float32', shape: [b, 3, h, w], data: images }, targets: { dtype: 'uint8', shape: [b, 2, 2], data: targets } });
  const correct = (res.correct!.data as Float32Array)[0]!, total = (res.total!.data as Float32Array)[0]!;
  assert.equal(total, 16);
  assert.ok(correct >= 14, `eval-mode accuracy ${correct}/${total}`);
  await acc.release();
  await step.release();
});

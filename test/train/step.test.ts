// The training step learns: on a fixed synthetic batch the loss falls, and every trainable
// parameter receives a non-zero gradient, for CTS (policy net in-graph) and no sharing, with the
// mask-transformer and the linear decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrainStep } from '../../src/train/step.js';
import { initState, SGD_DEFAULTS } from '../../src/train/optim.js';
import { createSegmenterConfig } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { dropPathFactors } from '../../src/nn/dropout.js';
import { createRng } from '../../src/base/rng.js';
import type { HostTensor } from '../../src/base/tensor.js';

/** Images of vertical colour bands whose class is the band's colour; some pixels ignored. */
function syntheticBatch(b: number, h: number, w: number, k: number, seed: number) {
  const r = createRng(seed);
  const images = new Float32Array(b * 3 * h * w), labels = new Uint8Array(b * h * w);
  const colours = Array.from({ length: k }, (_, c) => [Math.cos(c * 2.1), Math.sin(c * 1.3), (c / k) * 2 - 1]);
  for (let i = 0; i < b; i++) {
    const cuts = [0, Math.floor(w * (0.2 + 0.3 * r.uniform())), Math.floor(w * (0.6 + 0.3 * r.uniform())), w];
    const cls = [0, 1, 2].map(() => Math.floor(r.uniform() * k));
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const band = x < cuts[1]! ? 0 : x < cuts[2]! ? 1 : 2;
        const c = cls[band]!;
        labels[(i * h + y) * w + x] = r.uniform() < 0.02 ? 255 : c;
        for (let ch = 0; ch < 3; ch++) images[((i * 3 + ch) * h + y) * w + x] = colours[c]![ch]! * 0.8 + (r.uniform() - 0.5) * 0.2;
      }
    }
  }
  return { images, labels };
}

for (const decoder of ['mask_transformer', 'linear'] as const) {
  for (const policy of ['no_sharing', 'policy_net'] as const) {
    test(`training step: loss falls and every parameter gets a gradient (${decoder}, ${policy})`, async () => {
      const config = createSegmenterConfig('custom', { d_model: 32, n_layers: 2, n_heads: 2, n_cls: 4, decoder, decoder_n_layers: 1, image_size: 64 });
      const b = 2, crop: [number, number] = [64, 64];
      const optimizer = { ...SGD_DEFAULTS, momentum: 0.9 };
      const cts = policy === 'policy_net' ? { policy, numShared: 1, policyWidth: 0.25 } : { policy, numShared: 0 };
      const step = await TrainStep.create({ config, batch: b, crop, optimizer, cts, dropPath: 0.1, decoderDropout: 0.1 });
      let params: Map<string, HostTensor> = initSegmenterWeights(segmenterSpec(config), 3);
      let state: Map<string, HostTensor> = initState(optimizer, step.spec);
      const pol = policy === 'policy_net' ? new Map([...initPolicyNet(4, { width: 0.25 })].map(([k, v]) => [`policy_net.${k}`, v])) : undefined;
      const data = syntheticBatch(b, 64, 64, 4, 5);
      const rng = createRng(9);
      const losses: number[] = [];
      for (let t = 1; t <= 25; t++) {
        const dp = new Float32Array(2 * config.n_layers * b);
        for (let i = 0; i < config.n_layers; i++) {
          const rate = (0.1 * i) / (config.n_layers - 1);
          for (const which of [0, 1]) dp.set(dropPathFactors(rate, b, rng.uniform), (2 * i + which) * b);
        }
        const before = params;
        const out = await step.run({ params, state, ...(pol ? { policy: pol } : {}), ...data, lr: 0.02, t, seed: t, dropPath: dp });
        if (t === 1) {
          for (const [k, v] of out.params) {
            const old = before.get(k)!.data as Float32Array, now = v.data as Float32Array;
            assert.ok(now.some((x, j) => x !== old[j]), `${k} received no gradient`);
          }
        }
        assert.ok(Number.isFinite(out.loss));
        losses.push(out.loss);
        params = out.params;
        state = out.state;
      }
      const first = (losses[0]! + losses[1]!) / 2, last = (losses[23]! + losses[24]!) / 2;
      assert.ok(last < 0.7 * first, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
      await step.release();
    });
  }
}

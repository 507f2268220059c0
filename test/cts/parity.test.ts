// Parity with the official PyTorch implementation (../shared/reference, README there): every
// intermediate of a no-sharing and a CTS forward pass within 1e-4, masks and token codes exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { segmenterForward } from '../../src/cts/forward.js';
import { assertClose } from '../helpers/gradcheck.js';
import { referenceCase } from '../helpers/fixtures.js';

const FLOATS = ['tokens_embedded', 'encoder_out', 'decoder_masks_tokens', 'decoder_masks_grid'];

for (const name of ['tiny96', 'camvid352']) {
  for (const run of ['no_sharing', 'cts']) {
    const dir = referenceCase(name);
    test(`parity with the official code: ${name} ${run}`, { skip: dir ? false : `reference case ${name} not found (../shared/reference absent)` }, async () => {
      const { tensors: weights, metadata } = await readSafetensors(`${dir}weights.safetensors`);
      const input = await readNpy(`${dir}input.npy`);
      const ref = async (f: string) => readNpy(`${dir}${run}/${f}.npy`);
      const mask2 = await ref('mask_scale2');
      const numShared = run === 'cts' ? Number((mask2.data as Uint8Array).reduce((a, b) => a + b, 0)) / mask2.shape[0]! : 0;
      const res = await segmenterForward(weights, input, {
        metadata,
        numShared,
        ...(run === 'cts' ? { policyLogits: await ref('policy_logits') } : {}),
        intermediates: true,
      });
      const logitsRef = await ref('logits');
      assert.deepEqual(res.logits.shape, logitsRef.shape);
      const worst = assertClose(res.logits.data as Float32Array, logitsRef.data as Float32Array, 1e-4, 0, 'logits');
      for (const k of FLOATS) {
        const r = await ref(k);
        const ours = res.intermediates![k]!;
        assert.deepEqual(ours.shape, r.shape, `${k} shape`);
        assertClose(ours.data as Float32Array, r.data as Float32Array, 1e-4, 0, k);
      }
      if (run === 'cts') {
        assert.deepEqual([...(res.maskShared!.data as Uint8Array)], [...(mask2.data as Uint8Array)], 'mask_scale2');
        const m1 = await ref('mask_scale1');
        assert.deepEqual([...(res.intermediates!.mask_scale1!.data as Uint8Array)], [...(m1.data as Uint8Array)], 'mask_scale1');
        const code = await ref('policy_code');
        assert.deepEqual([...(res.intermediates!.policy_code!.data as Float32Array)], [...(code.data as Float32Array)], 'policy_code');
      }
      // argmax agrees except at near-ties (none occur in these cases)
      const arg = (await ref('argmax')).data as Uint8Array;
      const [b, k, h, w] = res.logits.shape as [number, number, number, number];
      const l = res.logits.data as Float32Array;
      let agree = 0;
      for (let i = 0; i < b; i++) {
        for (let px = 0; px < h * w; px++) {
          let best = 0;
          for (let c = 1; c < k; c++) if (l[(i * k + c) * h * w + px]! > l[(i * k + best) * h * w + px]!) best = c;
          if (best === arg[i * h * w + px]) agree++;
        }
      }
      assert.ok(agree / (b * h * w) >= 0.9999, `argmax agreement ${agree / (b * h * w)}`);
      assert.ok(worst < 1e-4);
    });
  }
}

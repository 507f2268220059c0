// Token sharing behaviour beyond the reference cases: budgets, tie-breaking, non-square inputs,
// unsharing, and the oracle / random policies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenBudget, sharedForReduction } from '../../src/cts/budget.js';
import { oracleScores, policyTargets, randomScores } from '../../src/cts/policies.js';
import { segmenterForward } from '../../src/cts/forward.js';
import { createSegmenterConfig } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { CtsError } from '../../src/base/errors.js';
import { createRng } from '../../src/base/rng.js';

const small = (decoder: 'mask_transformer' | 'linear') =>
  createSegmenterConfig('custom', { d_model: 32, n_layers: 1, n_heads: 2, n_cls: 5, decoder, decoder_n_layers: 1, image_size: 64 });

function randomInput(b: number, h: number, w: number, seed: number) {
  const r = createRng(seed);
  return { dtype: 'float32' as const, shape: [b, 3, h, w], data: Float32Array.from({ length: b * 3 * h * w }, () => r.uniform() * 2 - 1) };
}

test('token budget: the paper settings pass, the TRAINING.md typo is rejected with the rule', () => {
  const b = tokenBudget(512, 512, 16, 103, 612);
  assert.equal(b.numTokens, 715);
  assert.ok(Math.abs(b.reduction - 0.3017578125) < 1e-12);
  assert.equal(tokenBudget(768, 768, 16, 336).numNotShared, 960);
  assert.throws(() => tokenBudget(512, 512, 16, 336, 612), (e: Error) => e instanceof CtsError && /612 not shared \+ 4 x 336 shared covers 1956 patches, not 1024/.test(e.message) && /\(1024 - 4S, S\) for S = 0\.\.256/.test(e.message));
  assert.throws(() => tokenBudget(512, 512, 16, 257), /num_shared 257 is impossible/);
  assert.throws(() => tokenBudget(500, 512, 16, 10), /multiple of 32/);
  assert.equal(tokenBudget(512, 512, 16, undefined, 612).numShared, 103);
  assert.equal(sharedForReduction(512, 512, 16, 0.3), 102);
  assert.equal(sharedForReduction(352, 352, 16, 0.3), 48);
});

test('policy targets follow spec 2.2: uniform, ignore counts as a value, ADE border rule', () => {
  const h = 64, w = 96; // 2x3 blocks
  const lab = new Uint8Array(h * w).fill(3);
  const set = (y: number, x: number, v: number) => (lab[y * w + x] = v);
  set(5, 40, 7); // block (0,1): two classes -> 0
  for (let y = 32; y < 64; y++) for (let x = 64; x < 96; x++) lab[y * w + x] = 255; // block (1,2) all ignore -> 1
  set(40, 10, 255); // block (1,0): one class + ignore, on the border -> 0, or 255 with the ADE rule
  assert.deepEqual([...policyTargets(lab, h, w)], [1, 0, 1, 0, 1, 1]);
  assert.deepEqual([...policyTargets(lab, h, w, { borderRule: true })], [1, 0, 1, 255, 1, 1]);
  set(0, 0, 0); // with zeroIsIgnore block (0,0) becomes one class + ignore
  assert.deepEqual([...policyTargets(lab, h, w, { zeroIsIgnore: true })], [0, 0, 1, 0, 1, 1]);
});

test('equal scores share the lowest superpatch indices; masks and codes are consistent (non-square input)', async () => {
  const cfg = small('linear');
  const weights = initSegmenterWeights(segmenterSpec(cfg), 1);
  const b = 2, h = 64, w = 128; // 4x8 patches, 2x4 superpatches
  const scores = { dtype: 'float32' as const, shape: [b, 8], data: new Float32Array(b * 8).fill(0.5) };
  const res = await segmenterForward(weights, randomInput(b, h, w, 2), { config: cfg, numShared: 3, policyScores: scores, intermediates: true });
  assert.deepEqual(res.logits.shape, [b, 5, h, w]);
  assert.equal(res.numTokens, 32 - 12 + 3);
  assert.deepEqual([...(res.maskShared!.data as Uint8Array)].slice(0, 8), [1, 1, 1, 0, 0, 0, 0, 0]);
  const m1 = res.intermediates!.mask_scale1!.data as Uint8Array;
  for (let r = 0; r < 4; r++) for (let c = 0; c < 8; c++) assert.equal(m1[r * 8 + c], r < 2 && c < 6 ? 0 : 1, `mask_scale1 at ${r},${c}`);
  const code = res.intermediates!.policy_code!.data as Float32Array;
  const n = res.numTokens;
  assert.deepEqual([...code.slice(0, 3)], [1, 0, 6]); // first kept patch: row 0, col 6
  assert.deepEqual([...code.slice((n - 3) * 3, n * 3)], [2, 0, 0, 2, 0, 2, 2, 0, 4]);
  // unsharing copies each shared token's scores to its 4 cells; kept cells get their own token
  const grid = res.intermediates!.decoder_masks_grid!, tok = res.intermediates!.decoder_masks_tokens!;
  const K = 5, gd = grid.data as Float32Array, td = tok.data as Float32Array;
  for (let k = 0; k < K; k++) {
    const at = (r: number, c: number) => gd[(k * 4 + r) * 8 + c]!;
    for (const s of [0, 1, 2]) {
      const v = td[(n - 3 + s) * K + k]!;
      for (const [dr, dc] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) assert.equal(at(dr, 2 * s + dc), v);
    }
    assert.equal(at(0, 6), td[0 * K + k]);
  }
});

test('oracle and random policies: oracle shares uniform superpatches first; random is seeded', async () => {
  const labels = { dtype: 'uint8' as const, shape: [1, 64, 64], data: new Uint8Array(64 * 64).fill(2) };
  (labels.data as Uint8Array)[0] = 1; // superpatch 0 mixed, 1..3 uniform
  assert.deepEqual([...(oracleScores(labels).data as Float32Array)], [0, 1, 1, 1]);
  const cfg = small('mask_transformer');
  const weights = initSegmenterWeights(segmenterSpec(cfg), 3);
  const res = await segmenterForward(weights, randomInput(1, 64, 64, 4), { config: cfg, numShared: 2, policyScores: oracleScores(labels) });
  assert.deepEqual([...(res.maskShared!.data as Uint8Array)], [0, 1, 1, 0]);
  assert.deepEqual(randomScores(2, 5, 9).data, randomScores(2, 5, 9).data);
  assert.notDeepEqual(randomScores(2, 5, 9).data, randomScores(2, 5, 10).data);
});

test('a model runs at sizes other than its pos_embed grid (in-graph resize) and pads to the patch size', async () => {
  const cfg = small('mask_transformer');
  const weights = initSegmenterWeights(segmenterSpec(cfg), 5);
  const res = await segmenterForward(weights, randomInput(1, 50, 70, 6), { config: cfg });
  assert.deepEqual(res.logits.shape, [1, 5, 50, 70]);
  assert.equal(res.numTokens, 4 * 5);
  assert.ok([...(res.logits.data as Float32Array)].every(Number.isFinite));
});

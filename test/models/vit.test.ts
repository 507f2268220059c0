import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resizePosEmbed } from '../../src/models/vit.js';
import { createSegmenterConfig, parseSegmenterConfig, VIT_PRESETS } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { inferSegmenterConfig } from '../../src/models/weights.js';
import { segmenterForward } from '../../src/cts/forward.js';
import { CtsError } from '../../src/base/errors.js';
import { createRng } from '../../src/base/rng.js';
import { assertClose } from '../helpers/gradcheck.js';

test('presets have the paper widths and the official parameter counts', () => {
  assert.deepEqual(VIT_PRESETS.vit_small_patch16_384, { d_model: 384, n_layers: 12, n_heads: 6 });
  const cfg = createSegmenterConfig('vit-ti', { n_cls: 150, image_size: 512 });
  assert.equal(cfg.decoder_n_heads, 3);
  assert.deepEqual(cfg.pos_grid, [32, 32]);
  const spec = segmenterSpec(cfg);
  const count = (pred: (k: string) => boolean) => [...spec].filter(([k]) => pred(k)).reduce((a, [, v]) => a + v.shape.reduce((p, q) => p * q, 1), 0);
  // timm's ViT-Ti/16 has 5,717,416 parameters at 224 (197 positions, 1000-class head); ours: no head, 1025 positions
  assert.equal(count((k) => k.startsWith('encoder.')), 5_717_416 - 193_000 - 197 * 192 + 1025 * 192);
  assert.throws(() => createSegmenterConfig('vit_huge'), (e: Error) => e instanceof CtsError && /unknown backbone 'vit_huge'/.test(e.message));
  assert.throws(() => createSegmenterConfig('vit-s', { n_cls: 10, dropout_rate: 0.1 }), /dropout_rate/);
  assert.throws(() => parseSegmenterConfig({ ...cfg, n_heads: 5 }), /divisible by n_heads/);
});

test('host pos-embed resize keeps CLS, is the identity on the same grid, and equals the in-graph resize', async () => {
  const cfg = createSegmenterConfig('custom', { d_model: 32, n_layers: 1, n_heads: 2, n_cls: 4, decoder_n_layers: 1, image_size: 64 });
  const w = initSegmenterWeights(segmenterSpec(cfg), 11);
  const pos = w.get('encoder.pos_embed')!;
  assert.deepEqual(resizePosEmbed(pos, [4, 4], [4, 4]).data, pos.data);
  const big = resizePosEmbed(pos, [4, 4], [6, 8]);
  assert.deepEqual(big.shape, [1, 49, 32]);
  assert.deepEqual([...(big.data as Float32Array).slice(0, 32)], [...(pos.data as Float32Array).slice(0, 32)]);
  // a model converted to the 6x8 grid gives the same logits as in-graph resizing of the 4x4 one
  const r = createRng(3);
  const x = { dtype: 'float32' as const, shape: [1, 3, 96, 128], data: Float32Array.from({ length: 3 * 96 * 128 }, () => r.uniform() * 2 - 1) };
  const a = await segmenterForward(w, x, { config: cfg });
  const w2 = new Map(w);
  w2.set('encoder.pos_embed', big);
  const b = await segmenterForward(w2, x, { config: inferSegmenterConfig(w2, { encoderHeads: 2, decoderHeads: 1, metadata: { pos_grid: '[6, 8]' } }) });
  assertClose(a.logits.data as Float32Array, b.logits.data as Float32Array, 1e-5);
  assert.throws(() => resizePosEmbed(pos, [5, 5], [6, 6]), /does not hold a 5x5 grid/);
});

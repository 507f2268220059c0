// A tiny random Segmenter (d_model 32, 1 layer, crop 64, 4 classes) for the evaluation tests, and a
// seeded random image. Compiles in well under a second.
import { createSegmenterConfig } from '../../src/models/config.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import { defaultPalette, VIT_NORMALIZATION, type ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { type PolicyMethod } from '../../src/cts/spec.js';
import type { RGBImage } from '../../src/data/types.js';
import { rng } from '../helpers/gradcheck.js';

/** Checkpoint of the tiny model with the given policy and budget. */
export function tinyCheckpoint(policy: PolicyMethod = 'no_sharing', numShared = 0, seed = 1): ModelCheckpoint {
  const config = createSegmenterConfig('custom', { d_model: 32, n_layers: 1, n_heads: 2, n_cls: 4, decoder_n_layers: 1, image_size: 64 });
  return {
    config, weights: initSegmenterWeights(segmenterSpec(config), seed), classes: ['a', 'b', 'c', 'd'], palette: defaultPalette(4),
    normalization: VIT_NORMALIZATION, cropSize: [64, 64], cts: { policy, numShared },
  };
}

/** A smooth-ish random RGB image (blocks of colour plus noise), so predictions vary over the image. */
export function randomImage(height: number, width: number, seed: number): RGBImage {
  const r = rng(seed);
  const cols = Array.from({ length: 16 }, () => [r() * 255, r() * 255, r() * 255]);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = cols[(Math.floor(y / 13) * 5 + Math.floor(x / 17)) % 16]!;
      for (let k = 0; k < 3; k++) data[(y * width + x) * 3 + k] = Math.max(0, Math.min(255, Math.round(c[k]! + (r() - 0.5) * 40)));
    }
  }
  return { width, height, data };
}

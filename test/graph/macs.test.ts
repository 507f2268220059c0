// GMACs counted on the graph against spec §9.3's analytic table (which reproduces fvcore's numbers
// of the paper's lab), and the per-node counting rules on small graphs with known answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, conv2d, gemm, matmul, resizeBilinear } from '../../src/graph/index.js';
import { countMacs } from '../../src/graph/macs.js';
import { segmenterMacs } from '../../src/cts/macs.js';
import { createSegmenterConfig } from '../../src/models/config.js';
import { policyNetMacs } from '../../src/models/policynet.js';

/** spec §9.3: model, crop, classes, S of the CTS row, total GMAC baseline / CTS, tokens CTS. */
const TABLE: [string, number, number, number, number, number, number][] = [
  ['vit-ti', 512, 150, 103, 12.8, 9.9, 715],
  ['vit-s', 512, 150, 103, 38.6, 26.8, 715],
  ['vit-b', 512, 150, 103, 129.5, 88.4, 715],
  ['vit-l', 640, 150, 160, 671.3, 445.8, 1120],
  ['vit-s', 480, 60, 90, 32.0, 22.5, 630],
  ['vit-s', 768, 19, 336, 115.8, 55.7, 1296],
];

const rel = (a: number, b: number) => Math.abs(a - b) / b;

for (const [bb, size, k, S, base, cts, tokens] of TABLE) {
  test(`${bb} ${size}x${size}, ${k} classes: baseline GMACs within 1% of spec §9.3 (${base}), CTS S=${S} roughly (${cts})`, () => {
    const cfg = createSegmenterConfig(bb, { n_cls: k, image_size: size });
    const b = segmenterMacs(cfg);
    assert.ok(rel(b.total / 1e9, base) < 0.01, `baseline ${b.total / 1e9} GMAC vs ${base}`);
    assert.equal(b.policy, 0);
    assert.equal(b.tokens, (size / 16) ** 2);
    assert.equal(b.total, b.encoder + b.decoder + b.upsample);
    // the final upsample: fvcore's 4 ops per output element
    assert.equal(b.upsample, 4 * k * size * size);
    const c = segmenterMacs(cfg, { numShared: S });
    assert.equal(c.tokens, tokens);
    // the spec approximates the policy net as 0.385 GMAC at 224^2 scaled by pixels; the graph gives the exact count
    assert.equal(c.policy, policyNetMacs(size, size));
    assert.ok(rel(c.total / 1e9, cts) < 0.015, `CTS ${c.total / 1e9} GMAC vs ${cts}`);
    assert.equal(c.total, c.policy + c.encoder + c.decoder + c.upsample);
  });
}

test('encoder MACs follow 12*N*D^2 + 2*N^2*D per layer (N with CLS) plus the patch embedding', () => {
  const cfg = createSegmenterConfig('vit-s', { n_cls: 150, image_size: 512 });
  const m = segmenterMacs(cfg);
  const N = 1025, D = 384;
  assert.equal(m.encoder, 12 * (12 * N * D * D + 2 * N * N * D) + 1024 * D * 3 * 16 * 16);
});

test('the policy width multiplier shrinks only the policy part', () => {
  const cfg = createSegmenterConfig('vit-s', { n_cls: 150, image_size: 512 });
  const full = segmenterMacs(cfg, { numShared: 103 });
  const half = segmenterMacs(cfg, { numShared: 103, policyWidth: 0.5 });
  assert.equal(half.policy, policyNetMacs(512, 512, { width: 0.5 }));
  assert.ok(half.policy < 0.6 * full.policy);
  assert.equal(half.encoder, full.encoder);
});

test('per-node rules: MatMul, Gemm (transposes), grouped Conv and bilinear resize', () => {
  const g = new Graph();
  const a = g.input('a', [2, 3, 4, 5]);
  const b = g.input('b', [5, 6]);
  const mm = matmul(a, b); // 2*3*4*6 outputs x 5
  const x = g.input('x', [7, 3]);
  const w = g.input('w', [4, 7]);
  const gm = gemm(x, w, undefined, { transA: true, transB: true }); // [3,4] x k=7
  const img = g.input('img', [1, 8, 10, 10]);
  const wt = g.input('wt', [16, 2, 3, 3]);
  const cv = conv2d(img, wt, undefined, { strides: [2, 2], pads: [1, 1], group: 4 }); // [1,16,5,5] x 2*3*3
  const up = resizeBilinear(cv, 20, 20); // 16*400 outputs x 4
  assert.equal(countMacs(g, [mm]).total, 144 * 5);
  assert.equal(countMacs(g, [gm]).total, 12 * 7);
  assert.equal(countMacs(g, [cv]).total, 400 * 18);
  const all = countMacs(g, [mm, gm, up]);
  assert.deepEqual(all.byOp, { MatMul: 720, Gemm: 84, Conv: 7200, ResizeBilinear: 4 * 16 * 400 });
  assert.equal(all.total, 720 + 84 + 7200 + 25600);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, constant, grad, reduceSum } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { dropout, dropPathFactors } from '../../src/nn/dropout.js';
import { createRng } from '../../src/base/rng.js';

async function masks(seed: number, site: number, n = 100_000, rate = 0.1): Promise<Float32Array> {
  const g = new Graph();
  const s = g.input('seed', [], 'int64');
  const x = constant(g, 'float32', [n], new Array(n).fill(1));
  g.output('y', dropout(x, rate, s, site));
  const r = await runOnce(g, { seed: { dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(seed)) } });
  return r.y!.data as Float32Array;
}

test('in-graph dropout: keep rate, inverted scaling, reproducible per (seed, site), independent across seeds and sites', async () => {
  const a = await masks(42, 0), b = await masks(42, 0), c = await masks(43, 0), d = await masks(42, 1);
  assert.deepEqual(a, b);
  const kept = a.filter((v) => v !== 0).length / a.length;
  assert.ok(Math.abs(kept - 0.9) < 0.005, `keep fraction ${kept}`);
  assert.ok(a.every((v) => v === 0 || Math.abs(v - 1 / 0.9) < 1e-6));
  const agree = (p: Float32Array, q: Float32Array) => p.filter((v, i) => (v === 0) === (q[i] === 0)).length / p.length;
  // independent masks agree on ~0.9^2 + 0.1^2 = 0.82 of positions
  assert.ok(Math.abs(agree(a, c) - 0.82) < 0.01, `seed agreement ${agree(a, c)}`);
  assert.ok(Math.abs(agree(a, d) - 0.82) < 0.01, `site agreement ${agree(a, d)}`);
  // no obvious structure: kept fraction is uniform over the first and second half
  const half = a.length / 2;
  assert.ok(Math.abs(a.subarray(0, half).filter((v) => v !== 0).length / half - 0.9) < 0.01);
});

test('dropout is differentiable w.r.t. its input (the mask is a constant)', async () => {
  const g = new Graph();
  const s = g.input('seed', [], 'int64');
  const x = g.input('x', [1000]);
  const y = reduceSum(dropout(x, 0.5, s, 3));
  g.output('y', y);
  g.output('gx', grad(y, [x])[0]!);
  g.output('mask', dropout(constant(g, 'float32', [1000], new Array(1000).fill(1)), 0.5, s, 3));
  const r = await runOnce(g, { seed: { dtype: 'int64', shape: [], data: BigInt64Array.of(7n) }, x: { dtype: 'float32', shape: [1000], data: new Float32Array(1000).fill(3) } });
  assert.deepEqual(r.gx!.data, r.mask!.data);
});

test('drop-path factors: 0 or 1/(1-rate) per sample, identity at rate 0', () => {
  const f = dropPathFactors(0.25, 1000, createRng(1).uniform);
  assert.ok(f.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
  assert.ok(Math.abs(f.filter((v) => v === 0).length / 1000 - 0.25) < 0.05);
  assert.deepEqual([...dropPathFactors(0, 3, createRng(1).uniform)], [1, 1, 1]);
});

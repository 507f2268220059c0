// Policy network (EfficientNet-Lite0 features + 1x1 head): state-dict layout and parameter count
// against timm's numbers, output shapes, the train-mode gradient against finite differences
// (float64, through the float64 Conv lowering), and a 224x224 float32 forward on ORT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, grad, mul, reduceSum, type Value } from '../../src/graph/index.js';
import { CompiledGraph, runOnce } from '../../src/runtime/session.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { constantParams } from '../../src/nn/params.js';
import { buildPolicyNet, initPolicyNet, policyNetMacs, policyNetParamCount, policyNetSpec } from '../../src/models/policynet.js';
import { randTensor, rng } from '../helpers/gradcheck.js';

const weights = initPolicyNet(0);

test('policy net: state-dict keys, shapes and parameter count match timm efficientnet_lite0 features + head', () => {
  const spec = policyNetSpec();
  // timm efficientnet_lite0: 4,652,008 in total, minus conv_head 320->1280, bn2 and the 1000-way
  // classifier, plus the 320->2 head with bias
  assert.equal(policyNetParamCount(), 4_652_008 - 409_600 - 2_560 - 1_281_000 + 642);
  assert.deepEqual(spec.get('backbone.conv_stem.weight'), { shape: [32, 3, 3, 3], dtype: 'float32' });
  assert.deepEqual(spec.get('backbone.bn1.num_batches_tracked'), { shape: [], dtype: 'int64' });
  assert.deepEqual(spec.get('backbone.blocks.0.0.conv_dw.weight')?.shape, [32, 1, 3, 3]);
  assert.deepEqual(spec.get('backbone.blocks.0.0.conv_pw.weight')?.shape, [16, 32, 1, 1]);
  assert.deepEqual(spec.get('backbone.blocks.0.0.bn2.running_var')?.shape, [16]);
  assert.deepEqual(spec.get('backbone.blocks.2.0.conv_dw.weight')?.shape, [144, 1, 5, 5]);
  assert.deepEqual(spec.get('backbone.blocks.5.3.conv_pwl.weight')?.shape, [192, 1152, 1, 1]);
  assert.deepEqual(spec.get('backbone.blocks.6.0.bn3.weight')?.shape, [320]);
  assert.deepEqual(spec.get('head.weight')?.shape, [2, 320, 1, 1]);
  assert.deepEqual(spec.get('head.bias')?.shape, [2]);
  assert.equal([...spec.keys()].filter((k) => k.includes('conv_head') || k.endsWith('.bias') && k.includes('conv')).length, 0);
  assert.equal([...spec.keys()].filter((k) => k.endsWith('num_batches_tracked')).length, 48);
  // every spec entry is initialised with its shape, and the init is deterministic
  for (const [k, info] of spec) assert.deepEqual(weights.get(k)?.shape, info.shape, k);
  assert.deepEqual(initPolicyNet(0).get('head.weight')!.data, weights.get('head.weight')!.data);
  const stem = weights.get('backbone.conv_stem.weight')!.data as Float32Array;
  const std = Math.sqrt(stem.reduce((s, v) => s + v * v, 0) / stem.length);
  assert.ok(Math.abs(std - Math.sqrt(2 / (9 * 32))) < 0.02, `stem init std ${std}`);
});

test('policy net: analytic MAC count', () => {
  // independent count from the block table (stem, 16 blocks, head), batch 1
  assert.equal(policyNetMacs(224, 224), 363_868_512);
  assert.equal(policyNetMacs(512, 512), 1_901_027_328);
  assert.equal(policyNetMacs(64, 128), 59_407_104);
  assert.throws(() => policyNetMacs(100, 96), /multiple of 32/);
});

/** Float32 forward with the init weights baked in; returns logits. */
async function forward(b: number, h: number, w: number, bnMode: 'eval' | 'train', seed = 1): Promise<HostTensor> {
  const g = new Graph();
  const x = g.input('x', [b, 3, h, w]);
  const out = buildPolicyNet(x, constantParams(g, weights), { bnMode });
  assert.equal(out.runningStats.size, bnMode === 'train' ? 96 : 0);
  g.output('logits', out.logits);
  return (await runOnce(g, { x: randTensor([b, 3, h, w], seed, -1, 1, 'float32') })).logits!;
}

test('policy net: output shapes (square and non-square), eval and train BN differ', async () => {
  const e = await forward(2, 96, 96, 'eval');
  assert.deepEqual(e.shape, [2, 2, 3, 3]);
  const t = await forward(2, 96, 96, 'train');
  assert.deepEqual(t.shape, [2, 2, 3, 3]);
  assert.ok((e.data as Float32Array).every((v) => Number.isFinite(v)));
  let diff = 0;
  for (let i = 0; i < e.data.length; i++) diff = Math.max(diff, Math.abs((e.data as Float32Array)[i]! - (t.data as Float32Array)[i]!));
  assert.ok(diff > 1e-3, `eval and train logits should differ (max diff ${diff})`);
  assert.deepEqual((await forward(1, 64, 128, 'eval')).shape, [1, 2, 2, 4]);
  const g = new Graph();
  assert.throws(() => buildPolicyNet(g.input('x', [1, 3, 96, 80]), constantParams(g, weights), { bnMode: 'eval' }), /multiple of 32.*96x80/);
});

test('policy net: train-mode gradient w.r.t. input, stem, depthwise convs and head matches finite differences (float64)', async () => {
  // 64x64 rather than 32x32: at batch 2 the stride-32 map would be 1x1, and train-mode BN over two
  // values outputs +-1 whatever the input, which leaves only an ill-conditioned eps-driven gradient.
  const diffNames = [
    'x',
    'backbone.conv_stem.weight',
    'backbone.blocks.1.0.conv_dw.weight', // 3x3 stride 2
    'backbone.blocks.2.1.conv_dw.weight', // 5x5 stride 1, residual block
    'head.weight',
  ];
  const f64 = (t: HostTensor): HostTensor => ({ dtype: 'float64', shape: t.shape, data: Float64Array.from(t.data as Float32Array) });
  const values = new Map(diffNames.map((n) => [n, n === 'x' ? randTensor([2, 3, 64, 64], 5) : f64(weights.get(n)!)]));
  const r = randTensor([2, 2, 2, 2], 6, 0.5, 1.5);
  // Two sessions, since ORT runs the whole graph whatever the fetches: finite differences use a
  // forward-only one, the analytic gradient comes from the one with the backward pass.
  const build = (withGrad: boolean) => {
    const g = new Graph();
    const ins = new Map(diffNames.map((n) => [n, g.input(n, values.get(n)!.shape, 'float64')]));
    const p = (name: string): Value => ins.get(name) ?? g.constant(f64(weights.get(name)!));
    const logits = buildPolicyNet(ins.get('x')!, p, { bnMode: 'train' }).logits;
    const loss = reduceSum(mul(logits, g.constant(r)));
    g.output('loss', loss);
    if (withGrad) grad(loss, [...ins.values()]).forEach((v, i) => g.output(`g${i}`, v!));
    return CompiledGraph.compile(g);
  };
  const [fwd, bwd] = await Promise.all([build(false), build(true)]);
  const feeds = Object.fromEntries(values);
  const grads = await bwd.run(feeds);
  // ReLU6 kinks: a step of 1e-6 along a random direction moves ~10^5 activations and crosses some
  // kinks (FD then drifts by 1-25% while the analytic value is stable); at 1e-8 FD converges.
  const eps = 1e-8;
  const rnd = rng(17);
  let worst = 0;
  for (const [i, name] of diffNames.entries()) {
    const v = values.get(name)!.data as Float64Array, an = grads[`g${i}`]!.data as Float64Array;
    for (let k = 0; k < 3; k++) {
      const d = Float64Array.from(v, () => rnd() * 2 - 1);
      const at = async (s: number) => {
        const moved = { ...values.get(name)!, data: Float64Array.from(v, (e, j) => e + s * d[j]!) };
        return ((await fwd.run({ ...feeds, [name]: moved })).loss!.data as Float64Array)[0]!;
      };
      const num = ((await at(eps)) - (await at(-eps))) / (2 * eps);
      const ana = an.reduce((acc, e, j) => acc + e * d[j]!, 0);
      const err = Math.abs(ana - num) / Math.max(1, Math.abs(num));
      worst = Math.max(worst, err);
      assert.ok(err < 1e-5, `${name}: analytic ${ana} vs numeric ${num}`);
    }
  }
  await Promise.all([fwd.release(), bwd.release()]);
  console.log(`# policy net directional gradient check: worst relative error ${worst.toExponential(2)}`);
});

test('policy net: width multiplier rounds channels like timm round_channels', async () => {
  const spec = policyNetSpec({ width: 0.5 });
  assert.deepEqual(spec.get('backbone.conv_stem.weight')?.shape, [32, 3, 3, 3]); // stem fixed
  assert.deepEqual(spec.get('backbone.blocks.0.0.conv_pw.weight')?.shape, [8, 32, 1, 1]);
  assert.deepEqual(spec.get('backbone.blocks.1.0.conv_pw.weight')?.shape, [48, 8, 1, 1]);
  assert.deepEqual(spec.get('head.weight')?.shape, [2, 160, 1, 1]);
  assert.ok(policyNetMacs(224, 224, { width: 0.5 }) < policyNetMacs(224, 224) / 2);
  const w = initPolicyNet(1, { width: 0.5 });
  const g = new Graph();
  const out = buildPolicyNet(g.input('x', [1, 3, 64, 64]), constantParams(g, w), { bnMode: 'eval', width: 0.5 });
  assert.deepEqual(out.logits.shape, [1, 2, 2, 2]);
});

test('policy net: 224x224 float32 forward runs on ORT', async () => {
  const g = new Graph();
  const x = g.input('x', [1, 3, 224, 224]);
  g.output('logits', buildPolicyNet(x, constantParams(g, weights), { bnMode: 'eval' }).logits);
  const s = await CompiledGraph.compile(g);
  const feed = { x: randTensor([1, 3, 224, 224], 9, -1, 1, 'float32') };
  let out = await s.run(feed);
  let ms = Infinity;
  // best of a few runs: the first pays for arena growth, and the test machine is shared
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    out = await s.run(feed);
    ms = Math.min(ms, performance.now() - t0);
  }
  await s.release();
  assert.deepEqual(out.logits!.shape, [1, 2, 7, 7]);
  assert.ok((out.logits!.data as Float32Array).every((v) => Number.isFinite(v)));
  console.log(`# policy net 224x224 batch 1 float32 forward (eval, weights as constants), best of 5: ${ms.toFixed(1)} ms`);
});

// One SGD-Nesterov step and one AdamW step (two, so momentum and bias correction matter) from the
// tiny96 reference weights with the reference gradients, against PyTorch's update formulas in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src/graph/index.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { applyUpdate, decays, initState, stateSlots, updateFeeds, updateInputs, type OptimizerOptions } from '../../src/train/optim.js';
import { polySchedule } from '../../src/train/schedule.js';
import { fixture } from '../helpers/fixtures.js';

async function stepTwice(o: OptimizerOptions, lr: number) {
  const { tensors: w } = await readSafetensors(fixture('tiny96/weights.safetensors'));
  const { tensors: grads } = await readSafetensors(fixture('tiny96/no_sharing/grads.safetensors'));
  const spec = new Map([...grads].map(([k, t]) => [k, { shape: t.shape, dtype: t.dtype }]));
  const g = new Graph();
  const u = updateInputs(g, o);
  for (const [name, info] of spec) {
    const p = g.input(name, info.shape), gr = g.input(`grad:${name}`, info.shape);
    const state = Object.fromEntries(stateSlots(o).map((s) => [s, g.input(`${s}:${name}`, info.shape)]));
    const r = applyUpdate(o, name, p, gr, state, u);
    g.output(`new:${name}`, r.p);
    for (const [s, v] of Object.entries(r.state)) g.output(`new:${s}:${name}`, v);
  }
  const sess = await CompiledGraph.compile(g);
  let params = new Map<string, HostTensor>([...spec.keys()].map((k) => [k, w.get(k)!]));
  let state = new Map<string, HostTensor>(initState(o, spec));
  for (let t = 1; t <= 2; t++) {
    const feeds: Record<string, HostTensor> = { ...updateFeeds(o, lr, t) };
    for (const [k, v] of params) feeds[k] = v;
    for (const [k, v] of grads) feeds[`grad:${k}`] = v;
    for (const [k, v] of state) feeds[k] = v;
    const res = await sess.run(feeds);
    params = new Map([...params.keys()].map((k) => [k, res[`new:${k}`]!]));
    state = new Map([...state.keys()].map((k) => [k, res[`new:${k}`]!]));
  }
  await sess.release();
  return { w, grads, params };
}

/** Max abs diff / max abs value of a tensor against a float64 expectation. */
function relErr(ours: HostTensor, want: Float64Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs((ours.data[i] as number) - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return d / m;
}

test('SGD with Nesterov momentum and weight decay matches torch.optim.SGD over two steps', async () => {
  const o: OptimizerOptions = { kind: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 1e-2 };
  const lr = 0.05;
  const { w, grads, params } = await stepTwice(o, lr);
  for (const [name, gt] of grads) {
    const p = Float64Array.from(w.get(name)!.data as Float32Array), gr = gt.data as Float32Array;
    const buf = new Float64Array(p.length);
    const wd = decays(name, gt.shape) ? o.weightDecay : 0;
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < p.length; i++) {
        const d = gr[i]! + wd * p[i]!;
        buf[i] = t === 0 ? d : 0.9 * buf[i]! + d;
        p[i]! -= lr * (d + 0.9 * buf[i]!);
      }
    }
    assert.ok(relErr(params.get(name)!, p) <= 1e-6, `${name}: ${relErr(params.get(name)!, p)}`);
  }
  assert.equal(decays('encoder.pos_embed', [1, 37, 64]), false);
  assert.equal(decays('decoder.cls_emb', [1, 11, 64]), false);
  assert.equal(decays('encoder.blocks.0.norm1.weight', [64]), false);
  assert.equal(decays('encoder.blocks.0.attn.qkv.weight', [192, 64]), true);
});

test('AdamW matches torch.optim.AdamW over two steps', async () => {
  const o: OptimizerOptions = { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2 };
  const lr = 1e-3;
  const { w, grads, params } = await stepTwice(o, lr);
  for (const [name, gt] of grads) {
    const p = Float64Array.from(w.get(name)!.data as Float32Array), gr = gt.data as Float32Array;
    const m = new Float64Array(p.length), v = new Float64Array(p.length);
    const wd = decays(name, gt.shape) ? o.weightDecay : 0;
    for (let t = 1; t <= 2; t++) {
      for (let i = 0; i < p.length; i++) {
        p[i]! *= 1 - lr * wd;
        m[i] = 0.9 * m[i]! + 0.1 * gr[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * gr[i]! * gr[i]!;
        const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8;
        p[i]! -= (lr / (1 - 0.9 ** t)) * (m[i]! / denom);
      }
    }
    assert.ok(relErr(params.get(name)!, p) <= 1e-6, `${name}: ${relErr(params.get(name)!, p)}`);
  }
});

test('polynomial LR follows the official PolynomialLR, warm-up quirk included', () => {
  const s = polySchedule({ lr: 1e-3, total: 100, minLr: 1e-5 });
  assert.equal(s(0), 1e-3);
  assert.ok(Math.abs(s(50) - ((1e-3 - 1e-5) * 0.5 ** 0.9 + 1e-5)) < 1e-15);
  assert.ok(Math.abs(s(100) - 1e-5) < 1e-15);
  assert.equal(s(150), s(100));
  const w = polySchedule({ lr: 1e-2, total: 100, minLr: 0, warmup: 10 });
  assert.equal(w(0), 1e-2); // the original returns the base LR before its first step
  assert.ok(Math.abs(w(5) - 1e-2 * 0.5 * 0.9 ** 0.9) < 1e-15);
  assert.ok(Math.abs(w(10) - 1e-2 * 0.9 ** 0.9) < 1e-15);
});

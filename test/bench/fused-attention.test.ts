// The speed path of inference graphs: attention with baked-in weights runs as ORT's fused
// com.microsoft Attention kernel. It must give the decomposition's outputs and gradients, and
// graphs with parameter inputs (training) must keep the decomposition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import onnxProto from 'onnx-proto';
import { Graph, emitOnnx, grad, mul, reduceSum } from '../../src/graph/index.js';
import { runOnce } from '../../src/runtime/session.js';
import { constantParams, inputParams, type ParamSpec } from '../../src/nn/params.js';
import { block, blockSpec } from '../../src/nn/layers.js';
import { initSegmenterWeights } from '../../src/models/init.js';
import type { HostTensor } from '../../src/io/tensor.js';
import { createRng } from '../../src/util/rng.js';
import { assertClose } from '../helpers/gradcheck.js';

const [B, N, D, H] = [2, 7, 24, 3];
const spec: ParamSpec = new Map();
blockSpec(spec, 'b', D, 4 * D);
// non-trivial biases and norms so that every input of the fused op matters
const weights = initSegmenterWeights(spec, 3);
const r = createRng(5);
for (const [k, t] of weights) if (/bias|norm/.test(k)) weights.set(k, { ...t, data: Float32Array.from(t.data as Float32Array, () => r.normal() * 0.3) });
const x: HostTensor = { dtype: 'float32', shape: [B, N, D], data: Float32Array.from({ length: B * N * D }, () => r.normal()) };
const seedT: HostTensor = { dtype: 'float32', shape: [B, N, D], data: Float32Array.from({ length: B * N * D }, () => r.normal()) };

/** A block on input x, weights either baked in (fused path) or fed as inputs (decomposition). */
function build(baked: boolean) {
  const g = new Graph();
  const xv = g.input('x', [B, N, D]);
  const p = baked ? constantParams(g, weights) : inputParams(g, spec).p;
  const y = block(xv, p, 'b', H);
  const s = g.input('seed', [B, N, D]);
  const [dx] = grad(reduceSum(mul(y, s)), [xv]);
  g.output('y', y);
  g.output('dx', dx!);
  return g;
}

const opTypes = (g: Graph) => onnxProto.onnx.ModelProto.decode(emitOnnx(g)).graph!.node!.map((n) => `${n.domain ? `${n.domain}:` : ''}${n.opType}`);

test('baked-in weights use the fused Attention kernel, parameter inputs the decomposition', () => {
  const fused = build(true), plain = build(false);
  assert.ok(opTypes(fused).includes('com.microsoft:Attention'));
  assert.ok(!opTypes(plain).includes('com.microsoft:Attention'));
  assert.ok(opTypes(plain).includes('Softmax'));
});

test('fused attention matches the decomposition in value and in gradient', async () => {
  const feeds: Record<string, HostTensor> = { x, seed: seedT };
  for (const [k, t] of weights) feeds[k] = t;
  const a = await runOnce(build(true), feeds);
  const b = await runOnce(build(false), feeds);
  assertClose(a.y!.data as Float32Array, b.y!.data as Float32Array, 1e-5, 1e-5, 'y');
  assertClose(a.dx!.data as Float32Array, b.dx!.data as Float32Array, 1e-4, 1e-4, 'dx');
});

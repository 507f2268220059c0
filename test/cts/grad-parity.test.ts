// Gradient parity with the official code (tiny96 reference): d(mean CE, ignore 255)/d(param) for
// every parameter, no sharing and CTS, within 1e-3 relative (max abs diff / max abs value per tensor).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, cast, grad, softmaxCrossEntropy } from '../../src/graph/index.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { inputParams } from '../../src/nn/params.js';
import { inferSegmenterConfig } from '../../src/models/weights.js';
import { segmenterSpec } from '../../src/models/segmenter.js';
import { buildCtsSegmenter } from '../../src/cts/segmenter.js';
import { fixture } from '../helpers/fixtures.js';

for (const run of ['no_sharing', 'cts'] as const) {
  test(`gradient parity with the official code: tiny96 ${run}`, async () => {
    const dir = fixture('tiny96/');
    const { tensors: weights, metadata } = await readSafetensors(`${dir}weights.safetensors`);
    const { tensors: refGrads, metadata: gm } = await readSafetensors(`${dir}${run}/grads.safetensors`);
    const input = await readNpy(`${dir}input.npy`);
    const labels = await readNpy(`${dir}labels.npy`);
    const cfg = inferSegmenterConfig(weights, { metadata });
    const spec = segmenterSpec(cfg);
    const g = new Graph();
    const { p, inputs } = inputParams(g, spec);
    const x = g.input('input', input.shape);
    const y = g.input('labels', labels.shape, 'uint8');
    const policy = run === 'cts' ? (await readNpy(`${dir}cts/policy_logits.npy`)) : undefined;
    const pl = policy ? g.input('policy_logits', policy.shape) : undefined;
    const out = buildCtsSegmenter(x, p, cfg, pl ? { numShared: 3, policy: { kind: 'logits', logits: pl } } : {});
    const loss = softmaxCrossEntropy(out.logits, cast(y, 'int64'), 255);
    g.output('loss', loss);
    const names = [...spec.keys()];
    grad(loss, names.map((n) => inputs.get(n)!)).forEach((gv, i) => {
      assert.ok(gv, `no gradient for ${names[i]}`);
      g.output(`grad:${names[i]}`, gv!);
    });
    const sess = await CompiledGraph.compile(g);
    const feeds = Object.fromEntries([...spec.keys()].map((n) => [n, weights.get(n)!]));
    const res = await sess.run({ ...feeds, input, labels, ...(policy ? { policy_logits: policy } : {}) });
    await sess.release();
    const refLoss = Number(JSON.parse(gm.loss ?? 'NaN'));
    assert.ok(Math.abs((res.loss!.data as Float32Array)[0]! - refLoss) < 1e-5, `loss ${(res.loss!.data as Float32Array)[0]} vs ${refLoss}`);
    assert.equal(refGrads.size, names.length, 'reference has a gradient for every model parameter');
    for (const [name, r] of refGrads) {
      const ours = res[`grad:${name}`];
      assert.ok(ours, `no gradient computed for ${name}`);
      assert.deepEqual(ours.shape, r.shape, name);
      let maxAbs = 0, maxDiff = 0;
      for (let i = 0; i < r.data.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(r.data[i] as number));
        maxDiff = Math.max(maxDiff, Math.abs((r.data[i] as number) - (ours.data[i] as number)));
      }
      assert.ok(maxDiff <= 1e-3 * maxAbs, `${name}: max diff ${maxDiff.toExponential(2)} vs max abs ${maxAbs.toExponential(2)}`);
    }
  });
}

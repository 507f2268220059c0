// CompiledGraph.run(feeds, outputs, into): outputs written into caller buffers (how `bench
// --fetch-logits` avoids a fresh 1.26 GB allocation per iteration) equal the plain run's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, mul, reduceSum, resizeBilinear } from '../../src/graph/index.js';
import { CompiledGraph } from '../../src/runtime/session.js';

test('preallocated outputs are filled in place and match a plain run', async () => {
  const g = new Graph();
  const x = g.input('x', [2, 3, 4, 4]);
  const up = resizeBilinear(mul(x, 2), 8, 8);
  g.output('up', up);
  g.output('sum', reduceSum(up, [1, 2, 3]));
  const s = await CompiledGraph.compile(g);
  try {
    const feeds = { x: { dtype: 'float32' as const, shape: [2, 3, 4, 4], data: Float32Array.from({ length: 96 }, (_, i) => Math.sin(i)) } };
    const plain = await s.run(feeds);
    const buf = new Float32Array(2 * 3 * 8 * 8).fill(Number.NaN);
    const into = { up: { dtype: 'float32' as const, shape: [2, 3, 8, 8], data: buf } };
    const res = await s.run(feeds, undefined, into);
    assert.deepEqual([...buf], [...(plain.up!.data as Float32Array)]);
    assert.deepEqual([...(res.up!.data as Float32Array)], [...buf]);
    assert.deepEqual([...(res.sum!.data as Float32Array)], [...(plain.sum!.data as Float32Array)]);
  } finally {
    await s.release();
  }
});

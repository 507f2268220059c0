import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, mul, add } from '../../src/graph/index.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { CtsError } from '../../src/base/errors.js';

function tiny() {
  const g = new Graph();
  const x = g.input('x', [2, 3]);
  const unused = g.input('unused', [1]);
  void unused;
  g.output('y', add(mul(x, 2), 1));
  return g;
}

test('a compiled graph runs many times and checks its feeds', async () => {
  const s = await CompiledGraph.compile(tiny());
  assert.equal(s.provider, 'cpu');
  assert.deepEqual(s.inputNames, ['x'], 'inputs no output needs are dropped');
  for (let i = 0; i < 3; i++) {
    const r = await s.run({ x: { dtype: 'float32', shape: [2, 3], data: Float32Array.from([0, 1, 2, 3, 4, i]) } });
    assert.deepEqual([...(r.y!.data as Float32Array)], [1, 3, 5, 7, 9, 2 * i + 1]);
  }
  await assert.rejects(s.run({}), (e: Error) => e instanceof CtsError && /missing graph input 'x'/.test(e.message));
  await assert.rejects(s.run({ x: { dtype: 'float32', shape: [3, 2], data: new Float32Array(6) } }), /input 'x' is float32\[3,2\], the graph expects float32\[2,3\]/);
  await assert.rejects(s.run({ x: { dtype: 'float64', shape: [2, 3], data: new Float64Array(6) } }), /float64\[2,3\], the graph expects float32\[2,3\]/);
  await s.release();
});

test('WebGPU is selectable and falls back to CPU with one clear message when it cannot start', async () => {
  const messages: string[] = [];
  const s = await CompiledGraph.compile(tiny(), { provider: 'webgpu', onFallback: (m) => messages.push(m) });
  if (s.provider === 'webgpu') {
    // a machine with a WebGPU adapter: nothing to fall back from
    assert.equal(messages.length, 0);
  } else {
    assert.equal(s.provider, 'cpu');
    assert.equal(messages.length, 1);
    assert.match(messages[0]!, /^webgpu: .*running on the cpu provider instead$/);
    assert.ok(!messages[0]!.includes('\n'));
  }
  const r = await s.run({ x: { dtype: 'float32', shape: [2, 3], data: new Float32Array(6) } });
  assert.deepEqual([...(r.y!.data as Float32Array)], [1, 1, 1, 1, 1, 1]);
  await s.release();
});

// Weight packing for the web: float16 rounding (nearest, ties to even, overflow and underflow), and
// shared external data that onnxruntime-node (from the file path) and onnxruntime-web (given the
// bytes) both load, float32 bit-exact and float16 close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { readNpy } from '../../src/io/npy.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import { exportModel } from '../../src/export/export.js';
import { packWeights } from '../../src/export/weights.node.js';
import { fromFloat16Bits, toFloat16Bits } from '../../src/base/float16.js';
import { assertClose } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/fixtures.js';
import { createRng } from '../../src/base/rng.js';
import { runFresh } from './helpers.js';

test('float16 rounding: nearest, ties to even, overflow to infinity, gradual underflow', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [0, 0], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -24, 0x0001], [2 ** -25, 0], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -10, 0x3c01], [0.1, 0x2e66],
  ];
  for (const [x, bits] of cases) assert.equal(toFloat16Bits(x), bits, `${x} -> 0x${toFloat16Bits(x).toString(16)}, want 0x${bits.toString(16)}`);
  assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN))));
  // every float32 lands on a nearest float16 (checked against both neighbours)
  const r = createRng(3);
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround((r.uniform() * 2 - 1) * 2 ** Math.floor(r.uniform() * 40 - 26));
    const h = toFloat16Bits(x), v = fromFloat16Bits(h);
    for (const n of [h - 1, h + 1]) {
      if ((n & 0x7fff) >= 0x7c00 || (n & 0x7fff) === 0x7fff || n < 0 || ((n ^ h) & 0x8000)) continue;
      assert.ok(Math.abs(x - v) <= Math.abs(x - fromFloat16Bits(n)), `${x}: 0x${h.toString(16)} (${v}) is not nearest`);
    }
  }
});

test('two graphs share one external weights file that onnxruntime-node and onnxruntime-web load', async () => {
  const ckpt = await loadCheckpoint(fixture('tiny96/weights.safetensors'));
  const input = await readNpy(fixture('tiny96/input.npy'));
  const policyLogits = await readNpy(fixture('tiny96/cts/policy_logits.npy'));
  const cts = exportModel(ckpt, { batch: 2, policy: 'policy_logits', numShared: 3 });
  const base = exportModel(ckpt, { batch: 2 });
  const feeds: Record<string, HostTensor>[] = [{ input, policy_logits: policyLogits }, { input }];
  const ref = [await runFresh(cts.bytes, feeds[0]!), await runFresh(base.bytes, feeds[1]!)];
  const dir = await mkdtemp(join(tmpdir(), 'cts-pack-'));
  ortWeb.env.wasm.numThreads = 1;
  for (const float16 of [false, true]) {
    const p = packWeights([cts.bytes, base.bytes], 'weights.bin', { float16 });
    const weightBytes = [...ckpt.weights.values()].reduce((a, t) => a + t.data.byteLength, 0);
    // the weights are stored once for both graphs (float16: at half size)
    assert.ok(p.data.length < (float16 ? 0.55 : 1.05) * weightBytes, `${p.data.length} bytes of external data for ${weightBytes} bytes of weights`);
    assert.ok(p.unsharedBytes > 1.9 * p.data.length);
    assert.ok(p.models.every((m) => m.length < 100_000), 'the graphs no longer hold the weights');
    const sub = join(dir, float16 ? 'f16' : 'f32');
    await mkdir(sub);
    await writeFile(join(sub, 'weights.bin'), p.data);
    for (const [i, name] of ['cts', 'base'].entries()) {
      await writeFile(join(sub, `${name}.onnx`), p.models[i]!);
      const node = await runFresh(join(sub, `${name}.onnx`), feeds[i]!);
      const want = ref[i]!.logits!.data as Float32Array;
      if (float16) assertClose(node.logits!.data as Float32Array, want, 5e-2, 0, `${name} float16 logits`);
      else assert.deepEqual(node.logits!.data, want, `${name}: float32 packing is bit-exact`);
      const s = await ortWeb.InferenceSession.create(p.models[i]!, { executionProviders: ['wasm'], externalData: [{ path: 'weights.bin', data: p.data }] });
      const webFeeds = Object.fromEntries(Object.entries(feeds[i]!).map(([k, t]) => [k, new ortWeb.Tensor('float32', t.data as Float32Array, [...t.shape])]));
      const web = await s.run(webFeeds);
      await s.release();
      assertClose(web.logits!.data as Float32Array, node.logits!.data as Float32Array, 1e-4, 0, `${name}: onnxruntime-web vs node`);
    }
  }
});

test('packWeights refuses a location that is not a plain file name', () => {
  assert.throws(() => packWeights([], '../w.bin'), /plain file name/);
});

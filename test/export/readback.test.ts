// readOnnxWeights: an export's weights come back under their state-dict names, bit-exact from a
// float32 export (inline, in a dynamic-batch Loop body, or in external data), as the float16-rounded
// values through packWeights' float16 storage; int8 exports give back only their float weights;
// bytes that are not a cts-seg export, or missing and short external data, are one CtsError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import onnxProto from 'onnx-proto';
import { CtsError } from '../../src/base/errors.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { Graph, emitOnnx } from '../../src/graph/index.js';
import { exportModel } from '../../src/export/export.js';
import { readOnnxWeights } from '../../src/export/readback.js';
import { packWeights } from '../../src/export/weights.node.js';
import { fromFloat16Bits, toFloat16Bits } from '../../src/base/float16.js';
import { smallCheckpoint } from './helpers.js';

const ckpt = smallCheckpoint('mask_transformer', 4, 5);
/** The checkpoint's float weights (the int64 BatchNorm counters are no inference weights). */
const floats = new Map([...ckpt.weights].filter(([, t]) => t.dtype === 'float32'));
const segmenterOnly = (k: string) => !k.startsWith('policy_net.');

const sameBits = (a: HostTensor, b: HostTensor, what: string): void => {
  assert.equal(a.dtype, 'float32', what);
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  assert.deepEqual(new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length), new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length), `${what}: bits`);
};
const f16 = (t: HostTensor): HostTensor => ({ dtype: 'float32', shape: t.shape, data: Float32Array.from(t.data as Float32Array, (x) => fromFloat16Bits(toFloat16Bits(x))) });
const isCtsError = (re: RegExp) => (e: unknown) => e instanceof CtsError && re.test(e.message);

test('a float32 export gives back every float weight of the checkpoint, bit-exact, and re-exports to the same bytes', () => {
  const m = exportModel(ckpt, { withPreprocessing: true });
  const w = readOnnxWeights(m.bytes);
  assert.deepEqual([...w.keys()].sort(), [...floats.keys()].sort());
  for (const [k, t] of w) sameBits(t, floats.get(k)!, k);
  // the read-back weights are a complete checkpoint: the same export, byte for byte
  assert.deepEqual(exportModel({ ...ckpt, weights: w }, { withPreprocessing: true }).bytes, m.bytes);
  // the plain Segmenter holds no policy network; a dynamic batch keeps the weights in the Loop body
  const base = readOnnxWeights(exportModel(ckpt, { policy: 'no_sharing', dynamicBatch: true }).bytes);
  assert.deepEqual([...base.keys()].sort(), [...floats.keys()].filter(segmenterOnly).sort());
  for (const [k, t] of base) sameBits(t, floats.get(k)!, k);
});

test('through packWeights: external float32 bit-exact, float16 storage as the float16-rounded weights', () => {
  const cts = exportModel(ckpt, { withPreprocessing: true }), base = exportModel(ckpt, { policy: 'no_sharing' });
  for (const float16 of [false, true]) {
    const p = packWeights([cts.bytes, base.bytes], 'weights.bin', { float16 });
    const names = onnxProto.onnx.ModelProto.decode(p.models[0]!).graph!.initializer!.map((t) => t.name!);
    assert.equal(names.some((n) => n.endsWith('__f16')), float16, 'float16 storage renames the large weights');
    for (const [i, want] of [[...floats.keys()], [...floats.keys()].filter(segmenterOnly)].entries()) {
      const w = readOnnxWeights(p.models[i]!, p.data);
      assert.deepEqual([...w.keys()].sort(), want.sort());
      let rounded = 0;
      for (const [k, t] of w) {
        const src = floats.get(k)!;
        // packWeights leaves initializers under 1024 elements inline and float32
        const stored = float16 && src.data.length >= 1024 ? f16(src) : src;
        if (stored !== src) rounded++;
        sameBits(t, stored, `${float16 ? 'float16' : 'float32'} ${k}`);
      }
      assert.ok(float16 ? rounded >= 10 : rounded === 0, `${rounded} weights stored as float16`);
    }
  }
});

test('an int8 export gives back only its float weights: no quantized forms, no graph constants', () => {
  const w = readOnnxWeights(exportModel(ckpt, { precision: 'int8' }).bytes);
  assert.ok(w.size > 20, `${w.size} weights`);
  for (const [k, t] of w) {
    assert.ok(floats.has(k), `${k} is a state-dict name`);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.shape, floats.get(k)!.shape, k);
  }
  assert.ok(!w.has('encoder.blocks.0.attn.qkv.weight'), 'Linear weights are int8');
  sameBits(w.get('encoder.blocks.0.attn.qkv.bias')!, floats.get('encoder.blocks.0.attn.qkv.bias')!, 'a bias stays float32');
  sameBits(w.get('encoder.norm.weight')!, floats.get('encoder.norm.weight')!, 'a norm stays float32');
});

test('bytes that are not a cts-seg export, and missing or short external data, are CtsErrors', () => {
  assert.throws(() => readOnnxWeights(new TextEncoder().encode('not an onnx model at all')), isCtsError(/not a (readable ONNX model|cts-seg export)/));
  const g = new Graph();
  g.output('y', g.constant({ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }, 'w'));
  assert.throws(() => readOnnxWeights(emitOnnx(g)), isCtsError(/not a cts-seg export \(metadata format 'missing'/));
  const p = packWeights([exportModel(ckpt).bytes], 'weights.bin');
  assert.throws(() => readOnnxWeights(p.models[0]!), isCtsError(/external-data file 'weights\.bin': pass that file's bytes/));
  assert.throws(() => readOnnxWeights(p.models[0]!, p.data.subarray(0, p.data.length - 1)), isCtsError(/external-data file 'weights\.bin', which has \d+ bytes/));
  // an offset past the end
  const m = onnxProto.onnx.ModelProto.decode(p.models[0]!);
  const ext = m.graph!.initializer!.find((t) => t.externalData?.length)!;
  ext.externalData = ext.externalData!.map((e) => (e.key === 'offset' ? { key: 'offset', value: String(p.data.length) } : e));
  assert.throws(() => readOnnxWeights(onnxProto.onnx.ModelProto.encode(m).finish(), p.data), isCtsError(/wrong or truncated file/));
});

// Silent garbage (issue 16, class 4): NaN/Inf weights and an unusable normalisation are refused when
// a checkpoint is loaded, naming the weight, unless the check is turned off (--no-check-weights).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { parseCheckpoint, serializeCheckpoint, type ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { writePng } from '../../src/data/image.js';
import { randomImage, tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli } from '../helpers/cli.js';
import { assertOneLineError } from '../helpers/hostile.js';
import { tempDir } from '../data/synth.js';

const tmp = tempDir('cts-ckcheck-');
after(() => tmp.cleanup());

/** The tiny checkpoint with one element of its first float weight set to `v`. */
function poisoned(v: number): { ckpt: ModelCheckpoint; key: string } {
  const ckpt = tinyCheckpoint();
  const [key, t] = [...ckpt.weights].find(([, t]) => t.dtype === 'float32' && t.data.length > 3)!;
  const data = Float32Array.from(t.data as Float32Array);
  data[3] = v;
  ckpt.weights.set(key, { ...t, data });
  return { ckpt, key };
}

for (const v of [NaN, Infinity, -Infinity]) {
  test(`a ${v} weight is refused naming it, and loads with checkWeights: false`, () => {
    const { ckpt, key } = poisoned(v);
    const bytes = serializeCheckpoint(ckpt);
    assert.throws(() => parseCheckpoint(bytes, 'p.safetensors'), (e) => e instanceof CtsError && e.message.includes(`weight '${key}' holds ${v} at element 3`) && e.message.includes('--no-check-weights'));
    assert.equal(Object.is(parseCheckpoint(bytes, "p", { checkWeights: false }).weights.get(key)!.data[3], v), true);
  });
}

test('a zero, negative or non-finite std, or a malformed normalisation, is refused', () => {
  for (const std of [[127.5, 0, 127.5], [-1, 1, 1], [1, NaN, 1]]) {
    const ckpt = { ...tinyCheckpoint(), normalization: { mean: [127.5, 127.5, 127.5], std } as ModelCheckpoint['normalization'] };
    // NaN does not survive JSON (it becomes null): refused either way
    assert.throws(() => parseCheckpoint(serializeCheckpoint(ckpt), 'n.safetensors'), /n\.safetensors: normalization must be .* std > 0/);
  }
  const ckpt = { ...tinyCheckpoint(), normalization: { mean: [1, 2], std: [1, 1, 1] } as unknown as ModelCheckpoint['normalization'] };
  assert.throws(() => parseCheckpoint(serializeCheckpoint(ckpt), 'n'), /normalization must be/);
});

test('infer refuses a NaN checkpoint in one line; --no-check-weights runs it', async () => {
  const path = join(tmp.dir, 'nan.safetensors'), image = join(tmp.dir, 'a.png');
  await saveCheckpoint(path, poisoned(NaN).ckpt);
  await writePng(image, 64, 64, 3, randomImage(64, 64, 1).data);
  assertOneLineError(await runCli(['infer', '--checkpoint', path, image, '--out', join(tmp.dir, 'o1')]), /holds NaN/);
  assertOneLineError(await runCli(['export', '--checkpoint', path, '--out', join(tmp.dir, 'm.onnx')]), /holds NaN/);
  const r = await runCli(['infer', '--checkpoint', path, image, '--out', join(tmp.dir, 'o2'), '--no-check-weights']);
  assert.equal(r.code, 0, r.stderr);
});

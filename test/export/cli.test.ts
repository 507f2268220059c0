// `cts-seg export` end to end: the written file loads from its path in a fresh onnxruntime-node
// session and equals the library; bad options exit 1 with one line; Python onnxruntime runs the same
// file where it is installed (Debian bookworm does not package it, so the test skips there).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy } from '../../src/io/npy.js';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { Predictor } from '../../src/cts/predictor.js';
import { normalizeRgb } from '../../src/export/preprocess.js';
import { assertClose } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/fixtures.js';
import { describeOnnx, rgbBatch, runFresh, smallCheckpoint } from './helpers.js';
import { runCli as run } from '../helpers/cli.js';


let dir = '', ckptPath = '';
const ckpt = smallCheckpoint('mask_transformer', 4, 11);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cts-export-'));
  ckptPath = join(dir, 'small.safetensors');
  await saveCheckpoint(ckptPath, ckpt);
});

test('cts-seg export writes one self-contained file that equals the Predictor', async () => {
  const out = join(dir, 'sub', 'model.onnx');
  const r = await run(['export', '--checkpoint', ckptPath, '--out', out, '--with-preprocessing', '--batch', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /policy policy_net, 4 tokens per image \(4 shared superpatches, 16 without sharing\)/);
  assert.match(r.stdout, /input uint8\[2,64,64,3\]/);
  const rgb = rgbBatch(2, 64, 64, 3);
  const res = await runFresh(out, { input: rgb });
  const pred = await Predictor.create(ckpt, { batch: 2 });
  const lib = await pred.run({ dtype: 'float32', shape: [2, 3, 64, 64], data: normalizeRgb(rgb.data as Uint8Array, 2, 64, 64, ckpt.normalization) });
  await pred.release();
  assertClose(res.logits!.data as Float32Array, lib.logits.data as Float32Array, 1e-5, 0, 'logits');
  const md = describeOnnx(new Uint8Array(await readFile(out))).metadata;
  assert.equal(md.batch, '2');
  assert.deepEqual(JSON.parse(md.classes!), ckpt.classes);
});

test('cts-seg export: bad options and impossible budgets exit 1 with one line', async () => {
  const cases: [string[], RegExp][] = [
    [['--policy', 'oracle'], /unknown policy 'oracle': expected policy_net, no_sharing, policy_logits/],
    [['--num-shared', '17'], /num_shared|shared/],
    [['--class-map-type', 'float'], /--class-map-type must be uint8 or int64/],
    [['--dynamic-batch', '--batch', '2'], /exclude each other/],
    [['--size', '50x64'], /multiple of 32/],
    [['--target', 'gpu'], /unknown --target 'gpu': expected cpu or wasm/],
  ];
  for (const [args, re] of cases) {
    const r = await run(['export', '--checkpoint', ckptPath, '--out', join(dir, 'bad.onnx'), ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(join(dir, 'bad.onnx')), 'nothing written');
  }
  const missing = await run(['export', '--checkpoint', join(dir, 'nope.safetensors'), '--out', join(dir, 'bad.onnx')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.safetensors/);
});

const python = (() => {
  try {
    execFileSync('python3', ['-c', 'import onnxruntime, numpy'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'Python onnxruntime is not installed (Debian bookworm has no python3-onnxruntime package)';
  }
})();

test('the exported file runs unchanged in Python onnxruntime', { skip: python ?? false }, async () => {
  const out = join(dir, 'tiny96.onnx');
  const r = await run(['export', '--checkpoint', fixture('tiny96/weights.safetensors'), '--out', out, '--batch', '2']);
  assert.equal(r.code, 0, r.stderr);
  const script = [
    'import sys, numpy as np, onnxruntime as ort',
    's = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])',
    'y = s.run(["logits"], {"input": np.load(sys.argv[2])})[0]',
    'np.save(sys.argv[3], y)',
  ].join('\n');
  execFileSync('python3', ['-c', script, out, fixture('tiny96/input.npy'), join(dir, 'py_logits.npy')]);
  const py = await readNpy(join(dir, 'py_logits.npy'));
  const node = await runFresh(out, { input: await readNpy(fixture('tiny96/input.npy')) });
  assertClose(py.data as Float32Array, node.logits!.data as Float32Array, 1e-5, 0, 'Python vs Node logits');
});

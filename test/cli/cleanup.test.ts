// Failed commands remove the folders they created (issue 16, class 4), and `init` and `train` agree
// on a crop that is not a patch multiple: without sharing both accept 100 px, with sharing both refuse.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { Segmenter } from '../../src/index.js';
import { randomImage, tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli } from '../helpers/cli.js';
import { assertOneLineError } from '../helpers/hostile.js';
import { tempDir } from '../data/synth.js';

const tmp = tempDir('cts-cleanup-');
after(() => tmp.cleanup());

const TINY_INIT = ['init', '--backbone', 'custom', '--d-model', '32', '--depth', '1', '--classes', '3'];

test('export and init remove the folders they created when the write fails', async () => {
  const ckpt = join(tmp.dir, 'tiny.safetensors');
  await saveCheckpoint(ckpt, tinyCheckpoint());
  // a name ending in '/' is created as a folder's parent, then the file cannot be renamed onto it
  for (const [args, made] of [
    [['export', '--checkpoint', ckpt, '--out', join(tmp.dir, 'e1/e2/model.onnx/')], 'e1'],
    [[...TINY_INIT, '--out', join(tmp.dir, 'i1/i2/x.safetensors/')], 'i1'],
  ] as const) {
    assertOneLineError(await runCli([...args]), /cannot write/);
    assert.ok(!existsSync(join(tmp.dir, made)), `${made} was left behind`);
  }
});

test('prepare removes the dataset folder it created when nothing was downloaded', async () => {
  const dir = join(tmp.dir, 'p1', 'datasets');
  const r = await runCli(['prepare', 'ade20k', dir, '--url-base', 'http://127.0.0.1:9', '--retries', '1']);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.ok(!existsSync(join(tmp.dir, 'p1')), 'p1 was left behind');
});

test('prepare keeps the partial downloads of a folder it created', async () => {
  const dir = join(tmp.dir, 'p2');
  await mkdir(join(dir, 'ade20k', 'downloads'), { recursive: true });
  await writeFile(join(dir, 'ade20k', 'downloads', 'ADEChallengeData2016.zip.part'), 'partial');
  const r = await runCli(['prepare', 'ade20k', dir, '--url-base', 'http://127.0.0.1:9', '--retries', '1']);
  assert.equal(r.code, 1);
  assert.deepEqual(readdirSync(join(dir, 'ade20k', 'downloads')).filter((f) => f.endsWith('.part')), ['ADEChallengeData2016.zip.part']);
});

test('init and train agree: a 100 px crop without sharing is accepted by both, with sharing refused by both', async () => {
  const out = join(tmp.dir, 'c100.safetensors');
  const r = await runCli([...TINY_INIT, '--crop-size', '100', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const seg = await Segmenter.load(out);
  assert.deepEqual(seg.info.window, [100, 100]);
  const res = await seg.segment({ ...randomImage(100, 120, 2), channels: 3 });
  assert.equal(res.classMap.length, 100 * 120);
  await seg.dispose();
  const base = { dataset: 'folder', data_root: 'x', backbone: 'vit_tiny_patch16_384', crop_size: 100, out_dir: 'runs/x', iterations: 1 };
  assert.equal(resolveTrainConfig(undefined, { ...base, policy_method: 'no_sharing' }).crop_size, 100);
  assertOneLineError(await runCli([...TINY_INIT, '--crop-size', '100', '--num-shared', '2', '--out', join(tmp.dir, 'c100s.safetensors')]), /multiple of 32/);
  assert.throws(() => resolveTrainConfig(undefined, { ...base, policy_method: 'policy_net', num_tokens_shared: 2 }), /multiple of 32/);
});

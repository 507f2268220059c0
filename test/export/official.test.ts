// Official run directories (../shared/reference/official-run, README there): the run segm/train.py
// wrote imports with its configuration, bit-exact weights and forward parity; export -> import is
// bit-exact, also for a CTS checkpoint; bad variant.yml files fail with one line naming file and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { readNpy } from '../../src/io/npy.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { parseVariant } from '../../src/io/variant.js';
import { segmenterForward } from '../../src/cts/forward.js';
import { Predictor } from '../../src/cts/predictor.js';
import type { ModelCheckpoint } from '../../src/cts/checkpoint.js';
import { initPolicyNet } from '../../src/models/policynet.js';
import { officialStateDict } from '../../src/export/official.js';
import { exportOfficialRun, importOfficialRun } from '../../src/export/official.node.js';
import { runCli } from '../helpers/cli.js';
import { assertClose } from '../helpers/gradcheck.js';
import { sharedDir } from '../helpers/fixtures.js';

const shared = sharedDir();
const RUN = shared ? join(shared, 'reference/official-run/segmenter-tiny') : '';
const skip = RUN && existsSync(join(RUN, 'checkpoint.pth')) ? false : 'reference/official-run not found (../shared absent)';
const CKPT = join(RUN, 'checkpoint.pth');
const EXPECTED = join(RUN, 'expected');

const bytes = (t: HostTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function assertSameWeights(a: Map<string, HostTensor>, b: Map<string, HostTensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: key sets`);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    assert.equal(u.dtype, t.dtype, `${what}: ${k} dtype`);
    assert.deepEqual(u.shape, t.shape, `${what}: ${k} shape`);
    assert.ok(bytes(t).equals(bytes(u)), `${what}: ${k} differs`);
  }
}

/** A copy of the run with its own variant.yml text (undefined: no variant.yml). */
async function runWithVariant(text: string | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cts-official-'));
  await copyFile(CKPT, join(dir, 'checkpoint.pth'));
  if (text !== undefined) await writeFile(join(dir, 'variant.yml'), text);
  return join(dir, 'checkpoint.pth');
}

test('the official run imports with the configuration of its variant.yml', { skip }, async () => {
  const notes: string[] = [];
  const ck = await importOfficialRun(CKPT, { onNote: (m) => notes.push(m) });
  const c = ck.config;
  assert.deepEqual(
    [c.backbone, c.d_model, c.n_heads, c.n_layers, c.d_ff, c.patch_size, c.n_cls, c.decoder, c.decoder_n_layers, c.decoder_n_heads, c.decoder_d_ff],
    ['vit_tiny_patch16_384', 64, 2, 2, 256, 16, 11, 'mask_transformer', 2, 1, 256],
  );
  assert.deepEqual(c.pos_grid, [6, 6]);
  assert.deepEqual(ck.cropSize, [96, 96]);
  assert.deepEqual(ck.cts, { policy: 'no_sharing', numShared: 0 });
  assert.deepEqual(ck.window, { size: 96, stride: 64 });
  assert.equal(ck.dataset, 'camvid');
  assert.equal(ck.classes[0], 'Sky');
  assert.deepEqual(ck.normalization.mean, [127.5, 127.5, 127.5]);
  assert.deepEqual(notes, []);
  // bit-exact against checkpoint['model'] as the official code saved it (the unused ImageNet head is not kept)
  const { tensors: expected } = await readSafetensors(join(EXPECTED, 'state_dict.safetensors'));
  assert.equal(expected.size, 65);
  assertSameWeights(ck.weights, new Map([...expected].filter(([k]) => !k.startsWith('encoder.head.'))), 'import');
});

test('forward parity: the imported run reproduces model.forward(crop_input)', { skip }, async () => {
  const ck = await importOfficialRun(CKPT);
  const input = await readNpy(join(EXPECTED, 'crop_input.npy'));
  const ref = await readNpy(join(EXPECTED, 'forward_logits.npy'));
  const res = await segmenterForward(ck.weights, input, { config: ck.config });
  assert.deepEqual(res.logits.shape, ref.shape);
  assertClose(res.logits.data as Float32Array, ref.data as Float32Array, 1e-4, 0, 'forward_logits');
  const p = await Predictor.create(ck);
  try {
    const out = await p.run(input);
    assertClose(out.logits.data as Float32Array, ref.data as Float32Array, 1e-4, 0, 'Predictor logits');
  } finally {
    await p.release();
  }
});

test('export -> import of the run is bit-exact; state dict in the official order; variant.yml values kept', { skip }, async () => {
  const ck = await importOfficialRun(CKPT);
  const dir = join(await mkdtemp(join(tmpdir(), 'cts-official-')), 'run');
  const r = await exportOfficialRun(ck, dir);
  assert.deepEqual((await readdir(dir)).sort(), ['checkpoint.pth', 'variant.yml']);
  const back = await importOfficialRun(r.checkpoint);
  assertSameWeights(ck.weights, back.weights, 'round trip');
  for (const k of ['config', 'cts', 'cropSize', 'window', 'dataset', 'classes', 'palette', 'normalization'] as const) assert.deepEqual(back[k], ck[k], k);
  const { tensors: expected } = await readSafetensors(join(EXPECTED, 'state_dict.safetensors'));
  const sd = officialStateDict(ck);
  assert.deepEqual([...sd.keys()], [...expected.keys()], 'official state-dict order');
  assert.ok((sd.get('encoder.head.weight')!.data as Float32Array).every((x) => x === 0));
  // every value of the original variant.yml reads back equal (tuples as arrays)
  const orig = parseVariant(await readFile(join(RUN, 'variant.yml'), 'utf8'), 'orig');
  const ours = await readFile(r.variant, 'utf8');
  assert.deepEqual(parseVariant(ours, 'ours'), orig);
  assert.match(ours, /image_size: !!python\/tuple\n {2}- 96\n {2}- 96\n/);
  assert.match(ours, /min_lr: 1\.0e-05\n/);
});

test('a CTS checkpoint exports as a cts-segmenter run (policy_net.* inside, policy_schedule (N1, S)) and imports back', { skip }, async () => {
  const base = await importOfficialRun(CKPT);
  const policy = initPolicyNet(3);
  const ck: ModelCheckpoint = {
    ...base,
    weights: new Map([...base.weights, ...[...policy].map(([k, v]) => [`policy_net.${k}`, v] as const)]),
    cts: { policy: 'policy_net', numShared: 2 },
  };
  const dir = join(await mkdtemp(join(tmpdir(), 'cts-official-')), 'cts-run');
  const r = await exportOfficialRun(ck, dir);
  const v = parseVariant(await readFile(r.variant, 'utf8'), r.variant);
  const net = v.net_kwargs as Record<string, unknown>;
  assert.equal(net.policy_method, 'policy_net');
  assert.deepEqual(net.policy_schedule, [36 - 8, 2]);
  assert.equal(typeof net.policynet_ckpt, 'string');
  assert.match(await readFile(r.variant, 'utf8'), /policy_schedule: !!python\/tuple\n {2}- 28\n {2}- 2\n/);
  const back = await importOfficialRun(r.checkpoint);
  assert.deepEqual(back.cts, { policy: 'policy_net', numShared: 2 });
  assertSameWeights(ck.weights, back.weights, 'CTS round trip');
  assert.ok([...back.weights.keys()].some((k) => k.endsWith('num_batches_tracked') && back.weights.get(k)!.dtype === 'int64'));
});

test('without variant.yml the bare state dict imports, and a note says what was inferred', { skip }, async () => {
  const notes: string[] = [];
  const ck = await importOfficialRun(await runWithVariant(undefined), { onNote: (m) => notes.push(m) });
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /no variant\.yml .*inferred from the tensor shapes/);
  assert.equal(ck.config.n_heads, 1); // d_model/64: a state dict does not store the head count
  assert.deepEqual(ck.classes[0], 'class_0');
});

const VARIANT = shared && existsSync(join(RUN, 'variant.yml')) ? await readFile(join(RUN, 'variant.yml'), 'utf8') : '';
const BAD: [string, string, RegExp][] = [
  ['an unknown python tag', VARIANT.replace('backbone: vit_tiny_patch16_384', 'backbone: !!python/object/apply:os.system [ls]'), /net_kwargs\.backbone has the tag !!python\/object\/apply:os\.system/],
  ['a python/name tag', `${VARIANT}x: !!python/name:os.system ''\n`, /\bx has the tag !!python\/name:os\.system/],
  ['missing net_kwargs', VARIANT.replace('net_kwargs:', 'other_kwargs:'), /net_kwargs must be a mapping/],
  ['a tuple of the wrong length', VARIANT.replace('  - 96\n  - 96\n', '  - 96\n  - 96\n  - 96\n'), /net_kwargs\.image_size must be a tuple of 2 integers/],
  ['a missing decoder layer count', VARIANT.replace('    n_layers: 2\n    name: mask', '    name: mask'), /net_kwargs\.decoder\.n_layers must be an integer/],
  ['an inconsistent policy_schedule', VARIANT.replace('  patch_size: 16\n', '  patch_size: 16\n  policy_method: policy_net\n  policy_schedule: !!python/tuple\n  - 20\n  - 2\n'), /policy_schedule \(20, 2\) does not add up/],
];
for (const [what, text, re] of BAD) {
  test(`a variant.yml with ${what} is one CtsError naming the file and key`, { skip }, async () => {
    const pth = await runWithVariant(text);
    await assert.rejects(importOfficialRun(pth), (e: unknown) => {
      assert.ok(e instanceof CtsError, String(e));
      assert.ok(e.message.includes(join(pth, '..', 'variant.yml')), e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  });
}

test('export refuses a model the official factory cannot build, before writing anything', { skip }, async () => {
  const ck = await importOfficialRun(CKPT);
  const dir = join(await mkdtemp(join(tmpdir(), 'cts-official-')), 'run');
  await assert.rejects(exportOfficialRun({ ...ck, config: { ...ck.config, d_ff: 128 } }, dir), /cannot build this model: encoder MLP 128/);
  assert.equal(existsSync(dir), false);
  const norm = { mean: [1, 2, 3] as [number, number, number], std: [1, 1, 1] as [number, number, number] };
  await assert.rejects(exportOfficialRun({ ...ck, normalization: norm }, dir), /neither vit nor deit/);
  assert.equal(existsSync(dir), false);
});

test('CLI: import-weights of a run directory, export-weights both formats, bad input is one line', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-official-cli-'));
  const model = join(dir, 'model.safetensors');
  let r = await runCli(['import-weights', CKPT, '--out', model]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /official run .* 11 classes \(camvid\), crop 96x96/);
  r = await runCli(['export-weights', '--checkpoint', model, '--format', 'official', '--out', join(dir, 'run')]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readdir(join(dir, 'run'))).sort(), ['checkpoint.pth', 'variant.yml']);
  r = await runCli(['export-weights', '--checkpoint', model, '--format', 'safetensors', '--out', join(dir, 'sd.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  const { tensors } = await readSafetensors(join(dir, 'sd.safetensors'));
  const { tensors: expected } = await readSafetensors(join(EXPECTED, 'state_dict.safetensors'));
  assertSameWeights(new Map([...tensors].filter(([k]) => !k.startsWith('encoder.head.'))), new Map([...expected].filter(([k]) => !k.startsWith('encoder.head.'))), 'safetensors export');
  const bad = await runWithVariant(BAD[0]![1]);
  r = await runCli(['import-weights', bad, '--out', join(dir, 'bad.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^cts-seg: error: .*variant\.yml: net_kwargs\.backbone has the tag/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(existsSync(join(dir, 'bad.safetensors')), false);
  await writeFile(join(dir, 'a-file'), 'x');
  r = await runCli(['export-weights', '--checkpoint', model, '--out', join(dir, 'a-file', 'run')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^cts-seg: error: cannot create .*a-file\/run: /);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = await runCli(['export-weights', '--checkpoint', model, '--out', join(dir, 'run.pth')]);
  assert.match(r.stderr, /^cts-seg: error: .*writes a directory/);
  assert.equal(existsSync(join(dir, 'run.pth')), false);
  r = await runCli(['export-weights', '--checkpoint', model, '--format', 'onnx', '--out', join(dir, 'x')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--format expects one of official, safetensors/);
});

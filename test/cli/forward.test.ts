// `cts-seg forward` end to end, as a user runs it: parity output on success; on bad input a
// one-line error naming what is wrong, exit code 1, and no output files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, writeNpy } from '../../src/io/npy.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.node.js';
import { assertClose } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/fixtures.js';
import { runCli as run } from '../helpers/cli.js';

const T = fixture('tiny96/');

const tmp = () => mkdtemp(join(tmpdir(), 'cts-fwd-'));

test('forward writes logits and mask_shared matching the reference (CTS)', async () => {
  const out = join(await tmp(), 'out');
  const r = await run(['forward', '--weights', `${T}weights.safetensors`, '--input', `${T}input.npy`, '--policy-logits', `${T}cts/policy_logits.npy`, '--num-shared', '3', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /27 tokens per image/);
  const logits = await readNpy(join(out, 'logits.npy'));
  const ref = await readNpy(`${T}cts/logits.npy`);
  assert.deepEqual(logits.shape, [2, 11, 96, 96]);
  assertClose(logits.data as Float32Array, ref.data as Float32Array, 1e-4);
  const mask = await readNpy(join(out, 'mask_shared.npy'));
  assert.equal(mask.dtype, 'uint8');
  assert.deepEqual([...(mask.data as Uint8Array)], [...((await readNpy(`${T}cts/mask_scale2.npy`)).data as Uint8Array)]);
  assert.deepEqual((await readdir(out)).sort(), ['logits.npy', 'mask_shared.npy']);
});

test('forward without sharing writes only logits', async () => {
  const out = join(await tmp(), 'o');
  const r = await run(['forward', '--weights', `${T}weights.safetensors`, '--input', `${T}input.npy`, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readdir(out), ['logits.npy']);
  assertClose((await readNpy(join(out, 'logits.npy'))).data as Float32Array, (await readNpy(`${T}no_sharing/logits.npy`)).data as Float32Array, 1e-4);
});

/** Runs a failing command and checks the contract: exit 1, one line naming the problem, no output. */
async function expectFailure(args: string[], out: string, pattern: RegExp): Promise<void> {
  const r = await run([...args, '--out', out]);
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.ok(!existsSync(out) || (await readdir(out)).length === 0, 'no partial output');
}

test('bad input gives one-line errors, exit 1 and no output', async () => {
  const dir = await tmp();
  const out = join(dir, 'out');
  const w = `${T}weights.safetensors`, x = `${T}input.npy`, pl = `${T}cts/policy_logits.npy`;
  await expectFailure(['forward', '--weights', w, '--input', x, '--policy-logits', pl, '--num-shared', '30'], out, /num_shared 30 is impossible.*valid pairs are \(36 - 4S, S\) for S = 0\.\.9/);
  await expectFailure(['forward', '--weights', w, '--input', x, '--policy-logits', pl, '--num-shared', '3', '--num-not-shared', '20'], out, /20 not shared \+ 4 x 3 shared covers 32 patches, not 36/);
  await expectFailure(['forward', '--weights', w, '--input', x, '--num-shared', '3'], out, /--num-shared 3 needs --policy-logits/);
  await expectFailure(['forward', '--weights', join(dir, 'nope.safetensors'), '--input', x], out, /nope\.safetensors.*no such file/);
  await expectFailure(['forward', '--weights', w, '--input', join(dir, 'nope.npy')], out, /nope\.npy.*no such file/);
  // truncated and corrupt files
  const bytes = await readFile(w);
  await writeFile(join(dir, 'cut.safetensors'), bytes.subarray(0, bytes.length - 1000));
  await expectFailure(['forward', '--weights', join(dir, 'cut.safetensors'), '--input', x], out, /cut\.safetensors.*truncated/);
  await writeFile(join(dir, 'bad.npy'), Buffer.from('not an npy file at all'));
  await expectFailure(['forward', '--weights', w, '--input', join(dir, 'bad.npy')], out, /bad\.npy/);
  const xb = await readFile(x);
  await writeFile(join(dir, 'cut.npy'), xb.subarray(0, xb.length - 10));
  await expectFailure(['forward', '--weights', w, '--input', join(dir, 'cut.npy')], out, /cut\.npy.*expected/);
  // wrong shapes
  await expectFailure(['forward', '--weights', w, '--input', `${T}labels.npy`], out, /labels\.npy: input must be float32 \[B,3,H,W\], got uint8 \[2,96,96\]/);
  await writeNpy(join(dir, 'pl.npy'), { dtype: 'float32', shape: [2, 2, 2, 3], data: new Float32Array(24) });
  await expectFailure(['forward', '--weights', w, '--input', x, '--policy-logits', join(dir, 'pl.npy'), '--num-shared', '3'], out, /policy logits.*\[2,2,2,3\].*\[2,2,3,3\]/);
  // missing and mismatched weights
  const { tensors, metadata } = await readSafetensors(w);
  const dropped = new Map(tensors);
  dropped.delete('decoder.mask_norm.weight');
  await writeSafetensors(join(dir, 'missing.safetensors'), dropped, metadata);
  await expectFailure(['forward', '--weights', join(dir, 'missing.safetensors'), '--input', x], out, /missing\.safetensors does not match the model: missing 1 \(decoder\.mask_norm\.weight\)/);
  const bad = new Map(tensors);
  bad.set('decoder.proj_patch', { dtype: 'float32', shape: [64, 32], data: new Float32Array(64 * 32) });
  await writeSafetensors(join(dir, 'shape.safetensors'), bad, metadata);
  await expectFailure(['forward', '--weights', join(dir, 'shape.safetensors'), '--input', x], out, /shape mismatch 1 \(decoder\.proj_patch: file \[64,32\], model expects \[64,64\]\)/);
  // a bad option value
  const r = await run(['forward', '--weights', w, '--input', x, '--out', out, '--num-shared', 'abc']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--num-shared expects a non-negative integer, got 'abc'/);
});

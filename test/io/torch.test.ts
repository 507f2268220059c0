// PyTorch checkpoints written by real torch 1.13 (test/fixtures/import/make_fixtures.py): both
// serialization formats, every state-dict dtype, strided views, nested checkpoints, and refusal of
// anything that is not a plain tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { readNpz } from '../../src/io/npz.js';
import { openTorchFile, readTorchStateDict } from '../../src/io/torch.js';
import { fixture } from '../helpers/fixtures.js';

const F = (name: string) => fixture(`import/${name}`);
const STATE_DICT_ONLY = 'only plain tensors and containers are allowed';

for (const file of ['tensors_zip.pth', 'tensors_legacy.pth', 'tensors_p4.pth']) {
  test(`${file}: every tensor matches numpy's contiguous copy (dtypes, views, strides, scalars)`, async () => {
    const sd = await readTorchStateDict(F(file));
    const expected = await readNpz(F('tensors_expected.npz'));
    assert.deepEqual([...sd.keys()], [...expected.keys()], 'state-dict order is kept');
    for (const [k, want] of expected) {
      const got = sd.get(k)!;
      assert.equal(got.dtype, want.dtype, `${k} dtype`);
      assert.deepEqual(got.shape, want.shape, `${k} shape`);
      assert.deepEqual(got.data, want.data, `${k} values`);
    }
    // spot checks that do not rely on numpy: a transposed view, an offset view, float16 specials
    assert.deepEqual([...sd.get('transposed')!.data], [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    assert.deepEqual([...sd.get('sliced')!.data], [6, 7, 8, 9, 11, 12, 13, 14, 16, 17, 18, 19]);
    assert.deepEqual([...sd.get('expanded')!.data], [1, 2, 1, 2, 1, 2]);
    assert.deepEqual([...sd.get('f16')!.data], [0.5, -1.25, 65504, 2 ** -24, Infinity, -0]);
    assert.equal(sd.get('f16')!.dtype, 'float32');
    assert.deepEqual(sd.get('bn.num_batches_tracked'), { dtype: 'int64', shape: [], data: BigInt64Array.of(5n) });
    assert.deepEqual(sd.get('empty')!.shape, [0, 3]);
  });
}

test('the two formats are told apart and give the same tensors', async () => {
  const zip = await openTorchFile(F('tensors_zip.pth'));
  const legacy = await openTorchFile(F('tensors_legacy.pth'));
  assert.equal(zip.format, 'zip');
  assert.equal(legacy.format, 'legacy');
  zip.close();
  legacy.close();
  assert.deepEqual(await readTorchStateDict(F('tensors_zip.pth')), await readTorchStateDict(F('tensors_legacy.pth')));
});

test("nested checkpoints are unwrapped: {'model': sd, 'optimizer': ...} and {'state_dict': sd}", async () => {
  for (const f of ['wrapped_model.pth', 'wrapped_state_dict_legacy.pth']) {
    const sd = await readTorchStateDict(F(f));
    assert.deepEqual([...sd.keys()], ['w', 'b'], f);
    assert.deepEqual([...sd.get('w')!.data], [1, 2, 3, 4]);
    assert.deepEqual(sd.get('w')!.shape, [2, 2]);
    assert.deepEqual([...sd.get('b')!.data], [0.5, -0.5]);
  }
});

test('os.system via REDUCE is refused by name, in both formats', async () => {
  for (const f of ['evil.pth', 'evil_legacy.pth']) {
    await assert.rejects(readTorchStateDict(F(f)), (e: Error) => e instanceof CtsError && e.message === `refusing to load posix.system from ${F(f)}: ${STATE_DICT_ONLY}`);
  }
});

test('torch.storage._load_from_bytes (pickle.dumps of a tensor) is refused', async () => {
  await assert.rejects(readTorchStateDict(F('load_from_bytes.pth')), (e: Error) => e instanceof CtsError && e.message === `refusing to load torch.storage._load_from_bytes from ${F('load_from_bytes.pth')}: ${STATE_DICT_ONLY}`);
});

test('files that hold no state dict, or are not PyTorch files at all, get one clear error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-torch-'));
  const text = join(dir, 'notes.pth');
  await writeFile(text, 'just some text\n');
  const cases: [string, RegExp][] = [
    [F('no_tensors.pth'), /no_tensors\.pth holds no tensors \(keys: a, b\)/],
    [F('vit.npz'), /vit\.npz is a zip archive without exactly one <name>\/data\.pkl member/],
    [text, /notes\.pth is not a PyTorch checkpoint/],
    [join(dir, 'missing.pth'), /cannot read PyTorch file .*missing\.pth: no such file or directory/],
  ];
  for (const [p, re] of cases) await assert.rejects(readTorchStateDict(p), (e: Error) => e instanceof CtsError && re.test(e.message), re.source);
});

test('truncated files are reported, not half-read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-torch-'));
  for (const f of ['tensors_legacy.pth', 'tensors_zip.pth']) {
    const full = await readFile(F(f));
    for (const frac of [0.3, 0.6, 0.95]) {
      const p = join(dir, `cut-${frac}-${f}`);
      await writeFile(p, full.subarray(0, Math.floor(full.byteLength * frac)));
      await assert.rejects(readTorchStateDict(p), (e: Error) => e instanceof CtsError && e.message.includes(p) && /truncated|not a valid zip/.test(e.message), `${f} cut at ${frac}`);
    }
  }
});

// .npz archives as numpy writes them (np.savez with zip64 headers, np.savez_compressed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { readNpz } from '../../src/io/npz.js';
import { fixture } from '../helpers/fixtures.js';

const F = (name: string) => fixture(`import/${name}`);

test('np.savez: member names keep their slashes, arrays their dtype and shape', async () => {
  let progress = 0;
  const npz = await readNpz(F('vit.npz'), { onProgress: (done) => (progress = done) });
  assert.equal(npz.size, 40);
  assert.equal(progress, 40);
  const q = npz.get('Transformer/encoderblock_1/MultiHeadDotProductAttention_1/query/kernel')!;
  assert.deepEqual([q.dtype, q.shape], ['float32', [8, 2, 4]]);
  assert.deepEqual(npz.get('embedding/kernel')!.shape, [16, 16, 3, 8]);
});

test('np.savez_compressed (deflate members) and non-float dtypes', async () => {
  const npz = await readNpz(F('compressed.npz'));
  assert.deepEqual(npz.get('a'), { dtype: 'int32', shape: [2, 3], data: Int32Array.of(0, 1, 2, 3, 4, 5) });
  assert.deepEqual(npz.get('b'), { dtype: 'bool', shape: [2], data: Uint8Array.of(1, 0) });
  const t = await readNpz(F('tensors_expected.npz'));
  assert.deepEqual(t.get('base')!.data, Float32Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(t.get('i64')!.data, BigInt64Array.of(-(2n ** 40n), 3n));
});

test('bad archives: a non-array member, a truncated file, not a zip at all', async () => {
  await assert.rejects(readNpz(F('bad_member.npz')), (e: Error) => e instanceof CtsError && /bad_member\.npz has non-\.npy member 'readme\.txt'/.test(e.message));
  const dir = await mkdtemp(join(tmpdir(), 'cts-npz-'));
  const cut = join(dir, 'cut.npz');
  await writeFile(cut, (await readFile(F('vit.npz'))).subarray(0, 20000));
  await assert.rejects(readNpz(cut), (e: Error) => e instanceof CtsError && /cannot read npz file .*cut\.npz: not a valid zip archive/.test(e.message));
  await assert.rejects(readNpz(F('tensors_legacy.pth')), (e: Error) => e instanceof CtsError && /tensors_legacy\.pth: not a valid zip archive/.test(e.message));
});

// The torch.save writer, read back by cts-seg's own allow-listed reader: values, dtypes, the
// container layout the official code writes (stored members, data 64-byte aligned, version 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchFile, TorchTensor } from '../../src/io/torch.js';
import { crc32, serializeTorchSave } from '../../src/io/torch_save.js';
import { dumpVariant, parseVariant, pyFloat } from '../../src/io/variant.js';
import type { HostTensor } from '../../src/base/tensor.js';

test('serializeTorchSave: a checkpoint dict reads back through the allow-listed unpickler', async () => {
  const w: HostTensor = { dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 4, 5, 6e-8) };
  const n: HostTensor = { dtype: 'int64', shape: [], data: BigInt64Array.of(12345678901n) };
  const bytes = serializeTorchSave({
    ordered: false,
    entries: new Map<string, never>([
      ['model', { ordered: true, entries: new Map([['a.weight', w], ['bn.num_batches_tracked', n]]) }],
      ['n_cls', 11], ['epoch', 0], ['big', 2 ** 40], ['neg', -70000], ['name', 'é'], ['flag', true], ['none', null],
    ] as never),
  }, 'checkpoint');
  const path = join(await mkdtemp(join(tmpdir(), 'cts-torch-save-')), 'checkpoint.pth');
  await writeFile(path, bytes);
  const f = await openTorchFile(path);
  try {
    const root = f.root as Map<string, unknown>;
    assert.deepEqual([...root.keys()], ['model', 'n_cls', 'epoch', 'big', 'neg', 'name', 'flag', 'none']);
    assert.deepEqual([root.get('n_cls'), root.get('big'), root.get('neg'), root.get('name'), root.get('flag'), root.get('none')], [11, 2 ** 40, -70000, 'é', true, null]);
    const sd = root.get('model') as Map<string, TorchTensor>;
    const a = await f.tensor(sd.get('a.weight')!);
    assert.deepEqual(a.shape, [2, 3]);
    assert.deepEqual([...(a.data as Float32Array)], [...w.data as Float32Array]);
    const b = await f.tensor(sd.get('bn.num_batches_tracked')!);
    assert.deepEqual([b.dtype, b.shape, (b.data as BigInt64Array)[0]], ['int64', [], 12345678901n]);
  } finally {
    f.close();
  }
  // the container: stored entries, every member's data at a multiple of 64, version "3\n"
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const names: string[] = [];
  for (let p = 0; v.getUint32(p, true) === 0x04034b50;) {
    assert.equal(v.getUint16(p + 8, true), 0, 'stored');
    const nameLen = v.getUint16(p + 26, true), extraLen = v.getUint16(p + 28, true), size = v.getUint32(p + 22, true);
    const name = Buffer.from(bytes.subarray(p + 30, p + 30 + nameLen)).toString();
    const data = p + 30 + nameLen + extraLen;
    assert.equal(data % 64, 0, `${name} aligned`);
    assert.equal(v.getUint32(p + 14, true), crc32(bytes.subarray(data, data + size)));
    if (name.endsWith('/version')) assert.equal(Buffer.from(bytes.subarray(data, data + size)).toString(), '3\n');
    names.push(name);
    p = data + size;
  }
  assert.deepEqual(names, ['checkpoint/data.pkl', 'checkpoint/data/0', 'checkpoint/data/1', 'checkpoint/version']);
});

test('crc32 matches the zip check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('variant.yml: floats as PyYAML writes them, tuples tagged, keys sorted, other python tags refused', () => {
  assert.deepEqual([0.001, 1e-5, 0.1, 1e-4, 2.5e-7, 1e20, 0].map(pyFloat), ['0.001', '1.0e-05', '0.1', '0.0001', '2.5e-07', '1.0e+20', '0.0']);
  const text = dumpVariant({ b: { image_size: [96, 96], dropout: 0, name: 'yes', none: null }, a: 1 }, ['b.image_size']);
  assert.equal(text, "a: 1\nb:\n  dropout: 0.0\n  image_size: !!python/tuple\n  - 96\n  - 96\n  name: 'yes'\n  none: null\n");
  assert.deepEqual(parseVariant(text, 'v.yml'), { a: 1, b: { dropout: 0, image_size: [96, 96], name: 'yes', none: null } });
  assert.throws(() => parseVariant('a:\n  b: !!python/object:os.Foo {}\n', 'v.yml'), /^CtsError: v\.yml: a\.b has the tag !!python\/object:os\.Foo/);
  assert.throws(() => parseVariant('- 1\n', 'v.yml'), /expected a mapping at the top level/);
  assert.throws(() => parseVariant('a: [1\n', 'v.yml'), /v\.yml: not valid YAML/);
});

// Pascal-Context label dicts as PyTorch-Encoding's train.pth/val.pth hold them: {int id: PIL image},
// written here by real torch 1.13 + Pillow 9.4 (legacy and zip format), with the 4- and 6-element
// PIL states of other Pillow versions, and a hand-assembled Python 2 pickle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CtsError } from '../../src/base/errors.js';
import { readNpz } from '../../src/io/npz.js';
import { pcontextLabelsFromPth } from '../../src/data/pcontext.js';
import { fixture } from '../helpers/fixtures.js';

const F = (name: string) => fixture(`import/${name}`);

for (const file of ['pcontext_legacy.pth', 'pcontext_zip.pth']) {
  test(`${file}: ids become VOC names, pixels match PIL's own np.array(img) (modes L, P, PngImageFile)`, async () => {
    const labels = await pcontextLabelsFromPth(F(file));
    const expected = await readNpz(F('pcontext_expected.npz'));
    assert.deepEqual([...labels.keys()], ['2008_000002', '2008_000123', '2010_001234']);
    for (const [id, want] of expected) {
      const got = labels.get(`${id.slice(0, 4)}_${id.slice(4)}`)!;
      assert.deepEqual([got.height, got.width], want.shape, id);
      assert.deepEqual(got.data, want.data, id);
      assert.ok(got.data.every((v) => v < 60), 'values stay class ids as stored');
    }
  });
}

test("other Pillow versions' states: [info, mode, size, data] and [..., palette, data, filename]", async () => {
  const labels = await pcontextLabelsFromPth(F('pcontext_states.pth'));
  assert.deepEqual(labels.get('2009_000001'), { width: 2, height: 2, data: Uint8Array.of(1, 2, 3, 59) });
  assert.deepEqual(labels.get('2009_000002'), { width: 1, height: 3, data: Uint8Array.of(0, 5, 9) });
});

test('a Python 2 pickle (str pixel data as BINSTRING, mode as SHORT_BINSTRING) reads the same bytes', async () => {
  const labels = await pcontextLabelsFromPth(F('pcontext_py2.pth'));
  assert.deepEqual([...labels], [['2007_000001', { width: 3, height: 2, data: Uint8Array.of(3, 0, 59, 20, 17, 42) }]]);
});

test('anything but PIL images and containers is refused: code, tensors', async () => {
  const why = 'only PIL label images and plain containers are allowed';
  await assert.rejects(pcontextLabelsFromPth(F('evil_legacy.pth')), (e: Error) => e instanceof CtsError && e.message === `refusing to load posix.system from ${F('evil_legacy.pth')}: ${why}`);
  await assert.rejects(pcontextLabelsFromPth(F('tensors_zip.pth')), (e: Error) => e instanceof CtsError && e.message.startsWith('refusing to load torch._utils._rebuild_tensor_v2'));
  await assert.rejects(pcontextLabelsFromPth(F('no_tensors.pth')), (e: Error) => e instanceof CtsError && /key "a" is not a 10-digit image id/.test(e.message));
});

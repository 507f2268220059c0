// The guarded decode path (issue 16, class 1 and 2): a truncated label PNG, a palette PNG whose data
// inflates far past its declared size, and the pixel limit, in-process, through the data workers and
// through `cts-seg eval`; each failure is one CtsError line naming the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { readImage, readImageSize, readLabelPng } from '../../src/data/image.js';
import { DataLoader } from '../../src/data/loader.js';
import { trainAugmentOptions } from '../../src/data/augment.js';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli } from '../helpers/cli.js';
import { assertOneLineError, palettePng, paletteRows } from '../helpers/hostile.js';
import { tempDir, writeLabel, writeRgb } from './synth.js';

const tmp = tempDir('cts-guard-');
const root = join(tmp.dir, 'ds');
const truncated = join(root, 'labels/train/s1.png');

before(async () => {
  await writeFile(join(tmp.dir, 'x'), '');
  await mkdir(join(root, 'labels/train'), { recursive: true });
  await writeFile(join(root, 'classes.txt'), 'a\nb\nc\nd\n');
  for (const i of [0, 1]) {
    await writeRgb(join(root, `images/train/s${i}.png`), 64, 48, i + 1);
    await writeLabel(join(root, `labels/train/s${i}.png`), [0, 1, 2, 3, 1, 0, 2, 2, 3], 64, 48);
  }
  // the header and the start of the image data stay, the rest is cut: sharp reads the size, libpng fails
  const full = await readFile(truncated);
  await writeFile(truncated, full.subarray(0, Math.floor(full.length * 0.6)));
});

after(() => tmp.cleanup());

const oneLine = (e: unknown, path: string) => e instanceof CtsError && !e.message.includes('\n') && e.message.includes(path);

test('a truncated label PNG is one CtsError naming the file', async () => {
  await assert.rejects(readLabelPng(truncated), (e) => oneLine(e, truncated));
});

test('a palette label whose image data inflates beyond its declared size is refused without inflating it', async () => {
  const path = join(tmp.dir, 'bomb.png');
  // 4x4 declared, 64 MB of rows behind it (deflate packs them into ~64 KB)
  await writeFile(path, palettePng(4, 4, new Uint8Array(64 << 20)));
  const before = process.memoryUsage().arrayBuffers;
  await assert.rejects(readLabelPng(path), (e) => oneLine(e, path) && /inflates beyond/.test((e as Error).message));
  assert.ok(process.memoryUsage().arrayBuffers - before < 32 << 20, 'the bomb was inflated');
  // the same image with its exact rows reads as its indices
  const ok = join(tmp.dir, 'palette.png');
  await writeFile(ok, palettePng(5, 3, paletteRows(5, 3)));
  const l = await readLabelPng(ok);
  assert.deepEqual([...l.data], Array.from({ length: 15 }, (_, p) => ((p % 5) + Math.floor(p / 5)) % 4));
});

test('the pixel limit applies to labels and size probes, before decoding', async () => {
  const label = join(root, 'labels/train/s0.png'), image = join(root, 'images/train/s0.png');
  await assert.rejects(readLabelPng(label, 1000), (e) => oneLine(e, label) && /over the limit of 1000/.test((e as Error).message));
  await assert.rejects(readImageSize(image, 1000), (e) => oneLine(e, image) && /over the limit/.test((e as Error).message));
  await assert.rejects(readImage(image, 1000), /over the limit of 1000/);
  assert.deepEqual(await readImageSize(image), { width: 64, height: 48 });
});

test('a truncated label in a data worker arrives as one CtsError line', async () => {
  const loader = await DataLoader.create({ name: 'folder', root, split: 'train' }, {
    batchSize: 2, workers: 1, shuffle: false, augment: { kind: 'train', options: trainAugmentOptions('folder', { imgScale: [128, 32], cropSize: [32, 32] }) },
  });
  try {
    await assert.rejects(async () => {
      for await (const _ of loader.epoch(0)) { /* the first batch holds the truncated label */ }
    }, (e) => oneLine(e, truncated));
  } finally {
    await loader.close();
  }
});

test('eval over a truncated label exits 1 with one error line and no stack', async () => {
  const ckpt = join(tmp.dir, 'tiny.safetensors');
  await saveCheckpoint(ckpt, tinyCheckpoint());
  const r = await runCli(['eval', '--checkpoint', ckpt, '--dataset', 'folder', '--data-root', root, '--split', 'train', '--out', join(tmp.dir, 'eval')]);
  assertOneLineError(r, /s1\.png/);
});

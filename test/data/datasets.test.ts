// Dataset readers on tiny generated datasets in their real folder layouts, plus CamVid from ../shared.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, DATASETS, readFolderClasses } from '../../src/data/datasets.js';
import {
  ADE20K_CLASSES, ADE20K_PALETTE, CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_CLASSES, CITYSCAPES_LABELID_TO_TRAINID,
  CITYSCAPES_PALETTE, PCONTEXT_CLASSES, PCONTEXT_PALETTE,
} from '../../src/data/classes.js';
import { defaultPalette } from '../../src/cts/checkpoint.js';
import { sharedDir } from '../helpers/fixtures.js';
import { tempDir, writeLabel, writeRgb } from './synth.js';

const W = 64, H = 48;

/** Asserts that `p` rejects with a CtsError whose message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, ...patterns: (RegExp | string)[]): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.equal(e.name, 'CtsError', e.message);
    for (const pat of patterns) {
      if (typeof pat === 'string') assert.ok(e.message.includes(pat), `'${e.message}' should mention '${pat}'`);
      else assert.match(e.message, pat);
    }
    return true;
  });
}

test('class lists and palettes have the sizes of spec §7', () => {
  assert.equal(ADE20K_CLASSES.length, 150);
  assert.equal(ADE20K_PALETTE.length, 150);
  assert.equal(ADE20K_CLASSES[0], 'wall');
  assert.equal(ADE20K_CLASSES[149], 'flag');
  assert.equal(ADE20K_CLASSES[89], 'television');
  assert.equal(PCONTEXT_CLASSES.length, 60);
  assert.equal(PCONTEXT_PALETTE.length, 60);
  assert.equal(PCONTEXT_CLASSES[0], 'background');
  assert.equal(PCONTEXT_CLASSES[59], 'wood');
  assert.equal(CITYSCAPES_CLASSES.length, 19);
  assert.equal(CITYSCAPES_PALETTE.length, 19);
  assert.deepEqual(CITYSCAPES_PALETTE[0], [128, 64, 128]);
  assert.equal(CAMVID_CLASSES.length, 11);
  assert.deepEqual(CAMVID_PALETTE[4], [60, 40, 222]);
  for (const p of [ADE20K_PALETTE, PCONTEXT_PALETTE, CITYSCAPES_PALETTE, CAMVID_PALETTE]) {
    for (const c of p) assert.ok(c.length === 3 && c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
  }
  // Every name is unique within its dataset.
  for (const names of [ADE20K_CLASSES, PCONTEXT_CLASSES, CITYSCAPES_CLASSES, CAMVID_CLASSES]) assert.equal(new Set(names).size, names.length);
});

test('Cityscapes labelId -> trainId table matches cityscapesscripts', () => {
  const expected: Record<number, number> = { 7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18 };
  for (let v = 0; v < 256; v++) assert.equal(CITYSCAPES_LABELID_TO_TRAINID[v], expected[v] ?? 255, `labelId ${v}`);
});

test('registry eval protocols follow spec §6', () => {
  assert.deepEqual(DATASETS.ade20k.eval, { resizeShort: 512, maxLong: 2048, windowStride: 512 });
  assert.deepEqual(DATASETS.pcontext.eval, { resizeShort: 520, maxLong: 4160, windowStride: 320 });
  assert.equal(DATASETS.cityscapes.eval.windowStride, 512);
  assert.deepEqual(DATASETS.camvid.eval, { windowStride: 320 });
  assert.equal(DATASETS.camvid.cropSize, 352);
  assert.deepEqual([DATASETS.ade20k.cropSize, DATASETS.pcontext.cropSize, DATASETS.cityscapes.cropSize], [512, 480, 768]);
});

describe('ADE20K', () => {
  const t = tempDir();
  const ade = join(t.dir, 'ade20k');
  const img = (split: string, id: string) => join(ade, 'ADEChallengeData2016/images', split, `${id}.jpg`);
  const ann = (split: string, id: string) => join(ade, 'ADEChallengeData2016/annotations', split, `${id}.png`);
  before(async () => {
    for (const id of ['ADE_train_00000003', 'ADE_train_00000001', 'ADE_train_00000002']) {
      await writeRgb(img('training', id));
      await writeLabel(ann('training', id), [0, 1, 150, 255, 75]);
    }
    await writeRgb(img('validation', 'ADE_val_00000001'));
    await writeLabel(ann('validation', 'ADE_val_00000001'), [3]);
    await writeRgb(img('validation', 'ADE_val_00000002'));
    await writeLabel(ann('validation', 'ADE_val_00000002'), [3], W - 1, H);
    await writeRgb(img('validation', 'ADE_val_00000003'));
    await writeLabel(ann('validation', 'ADE_val_00000003'), [5, 151]);
  });
  after(t.cleanup);

  test('sorted ids and reduce_zero_label (0 -> 255, v -> v-1, 255 stays)', async () => {
    const ds = await openDataset('ade20k', ade, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['ADE_train_00000001', 'ADE_train_00000002', 'ADE_train_00000003']);
    assert.equal(ds.info.classes.length, 150);
    const l = await ds.readLabel(0);
    assert.deepEqual([l.width, l.height], [W, H]);
    assert.deepEqual([...l.data.subarray(0, 5)], [255, 0, 149, 255, 74]);
    const im = await ds.readImage(0);
    assert.deepEqual([im.width, im.height, im.data.length], [W, H, W * H * 3]);
  });

  test('the prepare DIR (parent of ade20k/) works as root too', async () => {
    const ds = await openDataset('ade20k', t.dir, 'val');
    assert.equal(ds.samples.length, 3);
    assert.equal(ds.root, ade);
  });

  test('size mismatch and out-of-range values throw naming the file', async () => {
    const ds = await openDataset('ade20k', ade, 'val');
    assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 2)], [2, 2]);
    await rejectsWith(ds.readLabel(1), ann('validation', 'ADE_val_00000002'), '63x48', '64x48');
    await rejectsWith(ds.readLabel(2), ann('validation', 'ADE_val_00000003'), 'value 151', 'x=1, y=0');
  });

  test('missing folders and labels name the expected path', async () => {
    await rejectsWith(openDataset('ade20k', join(t.dir, 'nowhere'), 'train'), join(t.dir, 'nowhere', 'ADEChallengeData2016/images'), 'cts-seg prepare ade20k');
    const orphan = img('training', 'ADE_train_00000009');
    await writeRgb(orphan);
    try {
      await rejectsWith(openDataset('ade20k', ade, 'train'), `missing label ${ann('training', 'ADE_train_00000009')}`);
    } finally {
      unlinkSync(orphan);
    }
    await rejectsWith(openDataset('ade20k', ade, 'bogus'), "unknown ADE20K split 'bogus'");
    await rejectsWith(openDataset('coco', ade, 'train'), "unknown dataset 'coco'");
  });
});

describe('Pascal-Context', () => {
  const t = tempDir();
  const voc = join(t.dir, 'pcontext/VOCdevkit/VOC2010');
  before(async () => {
    for (const id of ['2008_000002', '2008_000008', '2010_000001']) {
      await writeRgb(join(voc, 'JPEGImages', `${id}.jpg`));
      await writeLabel(join(voc, 'SegmentationClassContext', `${id}.png`), id === '2010_000001' ? [60] : [0, 59, 255, 12]);
    }
    mkdirSync(join(voc, 'ImageSets/SegmentationContext'), { recursive: true });
    writeFileSync(join(voc, 'ImageSets/SegmentationContext/train.txt'), '2008_000008\n2008_000002\n');
    writeFileSync(join(voc, 'ImageSets/SegmentationContext/val.txt'), '2010_000001\n2010_000404\n');
  });
  after(t.cleanup);

  test('ids from the split list, sorted; 0 = background kept', async () => {
    const ds = await openDataset('pcontext', join(t.dir, 'pcontext'), 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['2008_000002', '2008_000008']);
    assert.equal(ds.samples[0]!.imagePath, join(voc, 'JPEGImages/2008_000002.jpg'));
    assert.deepEqual([...(await ds.readLabel(1)).data.subarray(0, 4)], [0, 59, 255, 12]);
    assert.equal(ds.info.classes.length, 60);
  });

  test('a listed id without files, and value 60, are errors', async () => {
    await rejectsWith(openDataset('pcontext', t.dir, 'val'), `missing image ${join(voc, 'JPEGImages/2010_000404.jpg')}`, 'val.txt');
    writeFileSync(join(voc, 'ImageSets/SegmentationContext/val.txt'), '2010_000001\n');
    const ds = await openDataset('pcontext', t.dir, 'val');
    await rejectsWith(ds.readLabel(0), 'value 60', '2010_000001.png', '0..59');
  });
});

describe('Cityscapes', () => {
  const t = tempDir();
  const cs = join(t.dir, 'cityscapes');
  const names = [['bremen', 'bremen_000001_000019'], ['aachen', 'aachen_000001_000019'], ['aachen', 'aachen_000000_000019']] as const;
  before(async () => {
    for (const [city, base] of names) {
      await writeRgb(join(cs, 'leftImg8bit/train', city, `${base}_leftImg8bit.png`));
      await writeLabel(join(cs, 'gtFine/train', city, `${base}_gtFine_labelTrainIds.png`), base.startsWith('bremen') ? [19] : [0, 18, 255, 7]);
    }
    await writeRgb(join(cs, 'leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png'));
    mkdirSync(join(cs, 'gtFine/val/lindau'), { recursive: true });
    await writeLabel(join(cs, 'gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png'), [7]);
  });
  after(t.cleanup);

  test('ids city/name sorted, trainIds read as stored', async () => {
    const ds = await openDataset('cityscapes', cs, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['aachen/aachen_000000_000019', 'aachen/aachen_000001_000019', 'bremen/bremen_000001_000019']);
    assert.equal(ds.samples[0]!.labelPath, join(cs, 'gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png'));
    assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 4)], [0, 18, 255, 7]);
    await rejectsWith(ds.readLabel(2), 'value 19', 'bremen_000001_000019_gtFine_labelTrainIds.png');
  });

  test('only labelIds present: the error says to run prepare', async () => {
    await rejectsWith(openDataset('cityscapes', t.dir, 'val'), 'lindau_000000_000019_gtFine_labelTrainIds.png', 'cts-seg prepare cityscapes');
  });
});

describe('CamVid (SegNet layout)', () => {
  const t = tempDir();
  before(async () => {
    const lines: string[] = [];
    for (const id of ['0016E5_00390', '0001TP_006690']) {
      await writeRgb(join(t.dir, 'train', `${id}.png`));
      await writeLabel(join(t.dir, 'trainannot', `${id}.png`), id.startsWith('0016') ? [12] : [0, 10, 11, 3]);
      lines.push(`/SegNet/CamVid/train/${id}.png /SegNet/CamVid/trainannot/${id}.png`);
    }
    writeFileSync(join(t.dir, 'train.txt'), lines.join('\n') + '\n');
    writeFileSync(join(t.dir, 'val.txt'), '/SegNet/CamVid/val/x.png /SegNet/CamVid/valannot/x.png\n');
  });
  after(t.cleanup);

  test('prefix stripped, ids sorted, void 11 -> 255, value 12 rejected', async () => {
    const ds = await openDataset('camvid', t.dir, 'train');
    assert.deepEqual(ds.samples.map((s) => s.id), ['0001TP_006690', '0016E5_00390']);
    assert.equal(ds.samples[0]!.imagePath, join(t.dir, 'train/0001TP_006690.png'));
    assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 4)], [0, 10, 255, 3]);
    await rejectsWith(ds.readLabel(1), 'value 12', join(t.dir, 'trainannot/0016E5_00390.png'));
    await rejectsWith(openDataset('camvid', t.dir, 'val'), `missing file ${join(t.dir, 'val/x.png')}`);
  });
});

describe('folder datasets', () => {
  const t = tempDir();
  before(async () => {
    for (const id of ['b', 'a']) {
      await writeRgb(join(t.dir, 'images/train', `${id}.jpg`));
      await writeLabel(join(t.dir, 'labels/train', `${id}.png`), id === 'a' ? [0, 2, 255] : [3]);
    }
    await writeRgb(join(t.dir, 'images/test/c.png'));
  });
  after(t.cleanup);

  test('classes.json with colours, crop and eval settings', async () => {
    writeFileSync(join(t.dir, 'classes.json'), JSON.stringify({
      classes: [{ name: 'sky', color: [1, 2, 3] }, 'road', { name: 'traffic light' }], cropSize: 256, eval: { windowStride: 192 },
    }));
    try {
      const ds = await openDataset('folder', t.dir, 'train');
      assert.deepEqual(ds.samples.map((s) => s.id), ['a', 'b']);
      assert.deepEqual(ds.info.classes, ['sky', 'road', 'traffic light']);
      assert.deepEqual(ds.info.palette, [[1, 2, 3], defaultPalette(3)[1], defaultPalette(3)[2]]);
      assert.equal(ds.info.cropSize, 256);
      assert.deepEqual(ds.info.eval, { windowStride: 192 });
      assert.deepEqual([...(await ds.readLabel(0)).data.subarray(0, 3)], [0, 2, 255]);
      await rejectsWith(ds.readLabel(1), 'value 3', join(t.dir, 'labels/train/b.png'), '0..2');
      const test = await openDataset('folder', t.dir, 'test');
      assert.equal(test.samples[0]!.labelPath, undefined);
      await rejectsWith(test.readLabel(0), 'has no labels');
    } finally {
      unlinkSync(join(t.dir, 'classes.json'));
    }
  });

  test('classes.txt: names with spaces and optional colours', async () => {
    writeFileSync(join(t.dir, 'classes.txt'), '# id order\nsky 10 20 30\ntraffic light\nroad 1 2 3\nbuilding\n');
    try {
      const info = await readFolderClasses(t.dir);
      assert.deepEqual(info.classes, ['sky', 'traffic light', 'road', 'building']);
      assert.deepEqual(info.palette[0], [10, 20, 30]);
      assert.deepEqual(info.palette[2], [1, 2, 3]);
      assert.deepEqual(info.palette[1], defaultPalette(4)[1]);
      const ds = await openDataset('folder', t.dir, 'train');
      assert.deepEqual([...(await ds.readLabel(1)).data.subarray(0, 2)], [3, 3]);
    } finally {
      unlinkSync(join(t.dir, 'classes.txt'));
    }
  });

  test('bad class lists and missing labels are clear errors', async () => {
    await rejectsWith(openDataset('folder', t.dir, 'train'), 'no class list', join(t.dir, 'classes.json'));
    writeFileSync(join(t.dir, 'classes.json'), JSON.stringify({ classes: [{ name: 'x', color: [1, 2, 300] }] }));
    await rejectsWith(openDataset('folder', t.dir, 'train'), join(t.dir, 'classes.json'), 'classes.0');
    writeFileSync(join(t.dir, 'classes.txt'), 'x\n');
    await rejectsWith(openDataset('folder', t.dir, 'train'), 'keep one class list');
    unlinkSync(join(t.dir, 'classes.txt'));
    writeFileSync(join(t.dir, 'classes.json'), JSON.stringify({ classes: ['a', 'b', 'c', 'd'] }));
    await writeRgb(join(t.dir, 'images/train/z.jpg'));
    await rejectsWith(openDataset('folder', t.dir, 'train'), `missing label ${join(t.dir, 'labels/train/z.png')}`);
    unlinkSync(join(t.dir, 'images/train/z.jpg'));
    await rejectsWith(openDataset('folder', t.dir, '../x'), "invalid split name '../x'");
    await rejectsWith(openDataset('folder', t.dir, 'val'), join(t.dir, 'images/val'));
  });
});

const camvidDir = (() => {
  const s = sharedDir();
  const p = s ? join(s, 'data/camvid') : undefined;
  return p && existsSync(join(p, 'train.txt')) ? p : undefined;
})();

test('CamVid from ../shared/data/camvid: 367 train, 101 val, labels in 0..10 or 255', { skip: camvidDir ? false : 'shared/data/camvid is absent (set CTS_SHARED_DIR)' }, async () => {
  const train = await openDataset('camvid', camvidDir!, 'train');
  const val = await openDataset('camvid', camvidDir!, 'val');
  assert.equal(train.samples.length, 367);
  assert.equal(val.samples.length, 101);
  assert.equal(train.samples[0]!.id, '0001TP_006690');
  const counts = new Float64Array(256);
  for (const ds of [train, val]) {
    for (let i = 0; i < ds.samples.length; i++) {
      const l = await ds.readLabel(i);
      assert.deepEqual([l.width, l.height], [480, 360]);
      for (const v of l.data) counts[v]!++;
    }
  }
  for (let v = 0; v < 256; v++) if (counts[v]! > 0) assert.ok(v <= 10 || v === 255, `label value ${v} present`);
  // Void pixels of train+val from the data's README (2,503,995 + 297,271) all became ignore.
  assert.equal(counts[255], 2503995 + 297271);
  assert.equal(counts[0], 10682767 + 1601620);
  const im = await val.readImage(0);
  assert.deepEqual([im.width, im.height], [480, 360]);
});

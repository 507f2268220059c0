// Fuzzing the dataset lists: CamVid's and Pascal-Context's split lists and a folder dataset's
// classes.json / classes.txt, mutated byte by byte and opened (then one sample read) as the commands
// do. Every outcome is an opened dataset or one CtsError line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDataset } from '../../src/data/datasets.js';
import { tempDir, writeLabel, writeRgb } from '../data/synth.js';
import { fuzz } from './mutate.js';

const tmp = tempDir('cts-fuzz-lists-');
const camvid = join(tmp.dir, 'camvid'), folder = join(tmp.dir, 'folder'), pc = join(tmp.dir, 'pcontext');
const voc = join(pc, 'VOCdevkit/VOC2010');

before(async () => {
  for (const i of [0, 1, 2]) {
    await writeRgb(join(camvid, `train/c${i}.png`), 32, 24, i);
    await writeLabel(join(camvid, `trainannot/c${i}.png`), [0, 1, 11, 255], 32, 24);
    await writeRgb(join(folder, `images/train/f${i}.png`), 32, 24, i);
    await writeLabel(join(folder, `labels/train/f${i}.png`), [0, 1, 2], 32, 24);
    await writeRgb(join(voc, `JPEGImages/2008_00000${i}.jpg`), 32, 24, i);
    await writeLabel(join(voc, `SegmentationClassContext/2008_00000${i}.png`), [0, 5, 59], 32, 24);
  }
  await mkdir(join(voc, 'ImageSets/SegmentationContext'), { recursive: true });
});

after(() => tmp.cleanup());

/** Opens the dataset and reads its first sample, as eval and train would. */
async function open(name: string, root: string): Promise<void> {
  const ds = await openDataset(name, root, 'train');
  await Promise.all([ds.readImage(0), ds.readLabel(0)]);
}

const text = (s: string) => new TextEncoder().encode(s);

test('mutated CamVid and Pascal-Context split lists open or give one CtsError line', async () => {
  const camList = [0, 1, 2].map((i) => `/SegNet/CamVid/train/c${i}.png /SegNet/CamVid/trainannot/c${i}.png\n`).join('');
  const c = await fuzz('camvid list', 20, 250, [text(camList)], {}, async (b) => {
    await writeFile(join(camvid, 'train.txt'), b);
    await open('camvid', camvid);
  });
  const p = await fuzz('pcontext list', 21, 200, [text('2008_000000\n2008_000001\r\n2008_000002\n')], {}, async (b) => {
    await writeFile(join(voc, 'ImageSets/SegmentationContext/train.txt'), b);
    await open('pcontext', pc);
  });
  for (const s of [c, p]) assert.ok(s.refused > 20 && s.accepted > 0, JSON.stringify(s));
});

test('mutated classes.json and classes.txt open or give one CtsError line', async () => {
  const json = JSON.stringify({ classes: ['sky', { name: 'road', color: [128, 64, 128] }, { name: 'car' }], cropSize: 32, eval: { windowStride: 16 } });
  const j = await fuzz('classes.json', 22, 250, [text(json)], {}, async (b) => {
    await writeFile(join(folder, 'classes.json'), b);
    await open('folder', folder);
  });
  await rm(join(folder, 'classes.json'));
  const t = await fuzz('classes.txt', 23, 200, [text('sky 70 130 180\nroad\n# a comment\ncar 0 0 142\n')], {}, async (b) => {
    await writeFile(join(folder, 'classes.txt'), b);
    await open('folder', folder);
  });
  for (const s of [j, t]) assert.ok(s.refused > 20 && s.accepted > 0, JSON.stringify(s));
});

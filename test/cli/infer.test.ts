// `cts-seg infer` end to end: three PNGs per image at the image's size, the mask in the checkpoint's
// palette and equal to the library's prediction, the overlay a 50/50 blend, the shared picture
// marking shared regions; a bad image is named, skipped, and the run exits 1.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readImage, writePng } from '../../src/data/image.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { createPredictor, predictImage } from '../../src/eval/evaluate.js';
import { colorize, overlay, sharedView, SHARED_OUTLINE } from '../../src/eval/visualize.js';
import { randomImage, tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli as run } from '../helpers/cli.js';
import { readNpy } from '../../src/io/npy.js';
import { Segmenter } from '../../src/index.js';


let dir = '', ckptPath = '';
const sizes: [number, number][] = [[40, 50], [64, 64], [90, 130]];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cts-infer-'));
  ckptPath = join(dir, 'tiny.safetensors');
  await saveCheckpoint(ckptPath, { ...tinyCheckpoint(), palette: [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]] });
  for (const [i, [h, w]] of sizes.entries()) {
    const img = randomImage(h, w, 40 + i);
    if (i === 2) await sharp(Buffer.from(img.data), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).toFile(join(dir, `img${i}.jpg`));
    else await writePng(join(dir, `img${i}.png`), w, h, 3, img.data);
  }
  await writeFile(join(dir, 'broken.png'), 'not a png');
});

const inputs = () => [join(dir, 'img0.png'), join(dir, 'img1.png'), join(dir, 'img2.jpg')];

test('infer writes mask, overlay and shared PNGs per image at the image size, in palette colours', async () => {
  const out = join(dir, 'out');
  const r = await run(['infer', '--checkpoint', ckptPath, ...inputs(), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote 9 files for 3 of 3 images/);
  const ckpt = await loadCheckpoint(ckptPath);
  const pred = await createPredictor(ckpt);
  for (const [i, path] of inputs().entries()) {
    const [h, w] = sizes[i]!;
    const img = await readImage(path);
    const mask = await readImage(join(out, `img${i}_mask.png`));
    const ov = await readImage(join(out, `img${i}_overlay.png`));
    const sh = await readImage(join(out, `img${i}_shared.png`));
    for (const im of [mask, ov, sh]) assert.deepEqual([im.width, im.height], [w, h]);
    // exactly the library's prediction (no dataset: the short side resized to the 64 px window, stride = window), in palette colours
    const expect = await predictImage(pred, img, { stride: 64, normalization: ckpt.normalization, protocol: { resizeShort: 64 } });
    assert.deepEqual(mask.data, colorize(expect.classes, ckpt.palette));
    const colours = new Set(ckpt.palette.map((c) => c.join(',')));
    for (let p = 0; p < w * h; p += 7) assert.ok(colours.has(`${mask.data[3 * p]},${mask.data[3 * p + 1]},${mask.data[3 * p + 2]}`));
    assert.deepEqual(ov.data, overlay(img, mask.data));
    assert.equal(ov.data[0], Math.round((img.data[0]! + mask.data[0]!) / 2));
    assert.deepEqual(sh.data, img.data); // nothing is shared without a budget
  }
  await pred.release();
});

test('with token sharing the shared picture tints and outlines the shared superpatches', async () => {
  const out = join(dir, 'out-cts');
  const r = await run(['infer', '--checkpoint', ckptPath, join(dir, 'img1.png'), '--out', out, '--policy', 'random', '--num-shared', '2', '--seed', '4']);
  assert.equal(r.code, 0, r.stderr);
  const img = await readImage(join(dir, 'img1.png'));
  const sh = await readImage(join(out, 'img1_shared.png'));
  // one window (image = crop): 2 of the 4 superpatches (half the pixels) are shared, each drawn tinted or outlined
  let changed = 0, outline = 0;
  for (let p = 0; p < 64 * 64; p++) {
    const same = [0, 1, 2].every((c) => sh.data[3 * p + c] === img.data[3 * p + c]);
    if (!same) changed++;
    if ([0, 1, 2].every((c) => sh.data[3 * p + c] === SHARED_OUTLINE[c])) outline++;
  }
  assert.ok(changed >= 0.45 * 64 * 64 && changed <= 0.5 * 64 * 64, `changed ${changed}`);
  assert.ok(outline >= 2 * 31 * 2, `outline ${outline}`);
  // the library function on a 0/1 map: inside tinted, border outlined, outside untouched
  const frac = new Float32Array(64 * 64);
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) frac[y * 64 + x] = 1;
  const v = sharedView(img, frac);
  assert.deepEqual([...v.subarray(0, 3)], SHARED_OUTLINE);
  assert.deepEqual([...v.subarray((40 * 64 + 40) * 3, (40 * 64 + 40) * 3 + 3)], [...img.data.subarray((40 * 64 + 40) * 3, (40 * 64 + 40) * 3 + 3)]);
  const q = (10 * 64 + 10) * 3;
  assert.equal(v[q], Math.round(0.5 * img.data[q]! + 0.5 * 255));
});

test('a bad image is named and skipped, the others are written, and the exit code is 1', async () => {
  const out = join(dir, 'out-bad');
  const r = await run(['infer', '--checkpoint', ckptPath, join(dir, 'img0.png'), join(dir, 'broken.png'), join(dir, 'nope.png'), join(dir, 'img1.png'), '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cts-seg: error: cannot decode image .*broken\.png/);
  assert.match(r.stderr, /cts-seg: error: cannot read image .*nope\.png: no such file or directory/);
  assert.match(r.stderr, /2 of 4 images failed/);
  assert.match(r.stdout, /wrote 6 files for 2 of 4 images/);
  for (const s of ['img0', 'img1']) for (const k of ['mask', 'overlay', 'shared']) assert.ok(existsSync(join(out, `${s}_${k}.png`)));
  assert.ok(!existsSync(join(out, 'broken_mask.png')));
});

test('infer rejects the oracle policy, colliding output names and a missing checkpoint up front', async () => {
  const out = join(dir, 'out-x');
  const cases: [string[], RegExp][] = [
    [['infer', '--checkpoint', ckptPath, join(dir, 'img0.png'), '--out', out, '--policy', 'oracle', '--num-shared', '1'], /oracle policy needs ground-truth labels/],
    [['infer', '--checkpoint', ckptPath, join(dir, 'img0.png'), join(dir, 'sub/img0.jpg'), '--out', out], /same stem 'img0'/],
    [['infer', '--checkpoint', join(dir, 'none.safetensors'), join(dir, 'img0.png'), '--out', out], /none\.safetensors/],
    [['infer', '--checkpoint', ckptPath, join(dir, 'img0.png'), '--out', out, '--window-stride', '100'], /exceeds the 64x64 window/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!existsSync(join(out, 'img0_mask.png')));
});

test('infer --save-probabilities --flip writes <stem>_probs.npy equal to the Segmenter\'s flipped probabilities', async () => {
  const out = join(dir, 'out-probs');
  const r = await run(['infer', '--checkpoint', ckptPath, join(dir, 'img2.jpg'), '--out', out, '--save-probabilities', '--flip']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote 4 files for 1 of 1 images/);
  const probs = await readNpy(join(out, 'img2_probs.npy'));
  assert.deepEqual(probs.shape, [4, 90, 130]);
  const seg = await Segmenter.load(ckptPath);
  const want = await seg.segment(join(dir, 'img2.jpg'), { flip: true, probabilities: true });
  await seg.dispose();
  assert.deepEqual(probs.data, want.probabilities);
  const plain = await Segmenter.load(ckptPath).then(async (s) => (await s.segment(join(dir, 'img2.jpg'), { probabilities: true })).probabilities);
  assert.notDeepEqual(plain, want.probabilities, 'the flip view changes the probabilities');
});

test('infer whose every image fails removes the output folder it created', async () => {
  const out = join(dir, 'out-none', 'nested');
  const r = await run(['infer', '--checkpoint', ckptPath, join(dir, 'broken.png'), '--out', out]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('cts-seg: error:')).length, 1, r.stderr);
  assert.match(r.stderr, /cts-seg: error: cannot decode image .*broken\.png/);
  assert.ok(!existsSync(join(dir, 'out-none')), 'no empty output folder is left behind');
});

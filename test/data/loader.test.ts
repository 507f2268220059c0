// DataLoader over a small folder dataset of generated PNGs: batch layout, epochs and shuffling,
// identical batches whatever the number of workers, resuming, decode errors, clean exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { trainAugmentOptions } from '../../src/data/augment.js';
import { DataLoader, type Batch, type DataLoaderOptions } from '../../src/data/loader.js';
import { CtsError } from '../../src/base/errors.js';
import { createRng } from '../../src/base/rng.js';

const N = 7;
const SIZES = [[40, 30], [48, 36], [36, 44], [64, 40], [40, 40], [52, 30], [30, 50]] as const;
let root = '';

async function png(path: string, w: number, h: number, channels: 1 | 3, data: Uint8Array): Promise<void> {
  const img = sharp(Buffer.from(data), { raw: { width: w, height: h, channels } });
  await (channels === 1 ? img.toColourspace('b-w') : img).png().toFile(path);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'cts-loader-'));
  await mkdir(join(root, 'images/train'), { recursive: true });
  await mkdir(join(root, 'labels/train'), { recursive: true });
  await mkdir(join(root, 'images/bad'), { recursive: true });
  await mkdir(join(root, 'labels/bad'), { recursive: true });
  await writeFile(join(root, 'classes.txt'), 'a\nb\nc\n');
  const r = createRng(5);
  for (let i = 0; i < N; i++) {
    const [w, h] = SIZES[i]!;
    const rgb = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r.uniform() * 256));
    const lbl = Uint8Array.from({ length: w * h }, (_, p) => ((p % w) < w / 2 ? 0 : (p / w) < h / 2 ? 1 : r.uniform() < 0.1 ? 255 : 2));
    for (const split of ['train', 'bad']) {
      await png(join(root, `images/${split}/s${i}.png`), w, h, 3, rgb);
      await png(join(root, `labels/${split}/s${i}.png`), w, h, 1, lbl);
    }
  }
  // A truncated PNG: its header still gives a size, the pixels do not decode.
  const good = await sharp(Buffer.alloc(40 * 30 * 3, 90), { raw: { width: 40, height: 30, channels: 3 } }).png().toBuffer();
  await writeFile(join(root, 'images/bad/s2.png'), good.subarray(0, 60));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const options = (over: Partial<DataLoaderOptions> = {}): DataLoaderOptions => ({
  batchSize: 3,
  augment: { kind: 'train', options: trainAugmentOptions('folder', { imgScale: [64, 32], cropSize: [32, 32] }) },
  seed: 11,
  workers: 1,
  ...over,
});

async function collect(loader: DataLoader, it: AsyncGenerator<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

async function run(over: Partial<DataLoaderOptions>, epochs = 2): Promise<Batch[]> {
  const loader = await DataLoader.create({ name: 'folder', root, split: 'train' }, options(over));
  try {
    return await collect(loader, loader.batches({ epochs }));
  } finally {
    await loader.close();
  }
}

const bytes = (b: Batch) => Buffer.concat([Buffer.from(b.images.buffer, b.images.byteOffset, b.images.byteLength), Buffer.from(b.labels)]);

test('batches are [B,3,H,W] / [B,H,W]; every epoch visits each sample once; the last batch is partial', async () => {
  const batches = await run({ workers: 2 });
  assert.equal(batches.length, 6); // ceil(7 / 3) = 3 per epoch
  assert.deepEqual(batches.map((b) => [b.epoch, b.step, b.shape[0]]), [[0, 0, 3], [0, 1, 3], [0, 2, 1], [1, 0, 3], [1, 1, 3], [1, 2, 1]]);
  for (const b of batches) {
    assert.deepEqual(b.shape.slice(1), [3, 32, 32]);
    assert.equal(b.images.length, b.shape[0] * 3 * 32 * 32);
    assert.equal(b.labels.length, b.shape[0] * 32 * 32);
    assert.ok(b.labels.every((v) => v <= 2 || v === 255));
    assert.ok(b.images.every((v) => v >= -1 && v <= 1));
    assert.deepEqual(b.ids, b.indices.map((i) => `s${i}`));
  }
  const epoch = (e: number) => batches.filter((b) => b.epoch === e).flatMap((b) => b.indices);
  assert.deepEqual([...epoch(0)].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...epoch(1)].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.notDeepEqual(epoch(0), epoch(1), 'each epoch has its own shuffle');
  const ordered = await run({ shuffle: false, dropLast: true, workers: 0 }, 1);
  assert.deepEqual(ordered.map((b) => b.indices), [[0, 1, 2], [3, 4, 5]]);
});

test('the same batches, bit for bit, with 0 (in-process), 1 and 3 workers; another seed differs', async () => {
  const one = await run({ workers: 1 });
  const three = await run({ workers: 3, prefetch: 2 });
  const inproc = await run({ workers: 0 });
  assert.equal(one.length, 6);
  for (let i = 0; i < one.length; i++) {
    assert.deepEqual(three[i]!.indices, one[i]!.indices);
    assert.ok(bytes(three[i]!).equals(bytes(one[i]!)), `batch ${i} differs between 1 and 3 workers`);
    assert.ok(bytes(inproc[i]!).equals(bytes(one[i]!)), `batch ${i} differs between in-process and workers`);
  }
  const other = await run({ workers: 0, seed: 12 }, 1);
  assert.ok(!bytes(other[0]!).equals(bytes(one[0]!)));
});

test('resuming at (epoch, step) yields exactly the batches of the uninterrupted run', async () => {
  const full = await run({ workers: 0 }); // identical to any worker count (previous test)
  const loader = await DataLoader.create({ name: 'folder', root, split: 'train' }, options({ workers: 2 }));
  try {
    const resumed = await collect(loader, loader.batches({ epoch: 0, step: 2, epochs: 2 }));
    assert.deepEqual(resumed.map((b) => [b.epoch, b.step]), [[0, 2], [1, 0], [1, 1], [1, 2]]);
    resumed.forEach((b, i) => assert.ok(bytes(b).equals(bytes(full[i + 2]!))));
    const one = await collect(loader, loader.epoch(1, 1));
    assert.deepEqual(one.map((b) => b.step), [1, 2]);
    assert.ok(bytes(one[0]!).equals(bytes(full[4]!)));
    await assert.rejects(collect(loader, loader.epoch(0, 3)), /0 <= step < 3/);
  } finally {
    await loader.close();
  }
});

test('a decode error in a worker surfaces as a CtsError naming the file; other batches still load', async () => {
  const loader = await DataLoader.create({ name: 'folder', root, split: 'bad' }, options({ workers: 1, shuffle: false }));
  try {
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const b of loader.epoch(0)) seen.push(b.step);
      })(),
      (e: unknown) => e instanceof CtsError && e.message.includes(join(root, 'images/bad/s2.png')),
    );
    assert.deepEqual(seen, [], 'sample 2 is in the first batch');
    const later = await collect(loader, loader.epoch(0, 1));
    assert.deepEqual(later.map((b) => b.indices), [[3, 4, 5], [6]]);
  } finally {
    await loader.close();
  }
});

test('a process that stops iterating without close() still exits (idle workers do not hold it)', async () => {
  const mod = fileURLToPath(new URL('../../src/data/loader.js', import.meta.url));
  const aug = JSON.stringify(options().augment);
  const script = `
    const { DataLoader } = await import(${JSON.stringify(mod)});
    const l = await DataLoader.create({ name: 'folder', root: ${JSON.stringify(root)}, split: 'train' }, { batchSize: 2, augment: ${aug}, workers: 1 });
    for await (const b of l.epoch(0)) { console.log('got', b.shape.join('x')); break; }`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 20000 });
  assert.match(stdout, /got 2x3x32x32/);
});

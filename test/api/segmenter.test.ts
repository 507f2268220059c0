// The Segmenter API in Node: every model source (path, file: URL, bytes, a loaded checkpoint, an export
// with and without preprocessing, an http URL on 127.0.0.1) and every image input (path, Buffer, sharp
// pipeline, raw pixels) give the class map of the library's own prediction at the image's size; bad
// input is one CtsError naming what is wrong.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { Segmenter, CtsError, type ImageInput, type ModelSource } from '../../src/index.js';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { exportModel } from '../../src/export/export.js';
import { Predictor } from '../../src/cts/predictor.js';
import { predictImage } from '../../src/eval/evaluate.js';
import { colorize } from '../../src/eval/visualize.js';
import { randomImage, tinyCheckpoint } from '../eval/tiny-model.js';

let dir = '', ckptPath = '', pngPath = '', server: Server | undefined, base = '';
const ckpt = tinyCheckpoint('random', 1, 3);
const img = randomImage(90, 130, 7);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cts-api-'));
  ckptPath = join(dir, 'tiny.safetensors');
  await saveCheckpoint(ckptPath, ckpt);
  pngPath = join(dir, 'photo.png');
  await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } }).png().toFile(pngPath);
  server = createServer((req, res) => {
    if (req.url === '/tiny.safetensors') readFile(ckptPath).then((b) => res.writeHead(200).end(b));
    else res.writeHead(404, 'Not Found').end();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The library's own prediction with the Segmenter's default protocol (short side resized to the window). */
async function expected(policy: 'no_sharing' | 'random', numShared: number): Promise<Uint8Array> {
  const p = await Predictor.create(ckpt, { policy, numShared, batch: 4 });
  try {
    return (await predictImage(p, img, { stride: 64, normalization: ckpt.normalization, protocol: { resizeShort: 64 }, seed: 0 })).classes;
  } finally {
    await p.release();
  }
}

test('every model source and image input gives the library prediction at the image size', async () => {
  const want = await expected('random', 1);
  const sources: [string, ModelSource][] = [
    ['path', ckptPath], ['file URL', pathToFileURL(ckptPath).href], ['bytes', await readFile(ckptPath)], ['checkpoint', ckpt], ['http URL', `${base}/tiny.safetensors`],
  ];
  for (const [what, source] of sources) {
    const seg = await Segmenter.load(source);
    const r = await seg.segment(pngPath);
    assert.deepEqual([r.width, r.height, r.classMap.length], [130, 90, 130 * 90], what);
    assert.deepEqual(r.classMap, want, what);
    await seg.dispose();
  }
  const seg = await Segmenter.load(ckptPath, { pictures: undefined } as never);
  const inputs: [string, ImageInput][] = [
    ['Buffer', await readFile(pngPath)], ['sharp', sharp(pngPath)], ['raw RGB', { data: img.data, width: 130, height: 90, channels: 3 }],
  ];
  for (const [what, input] of inputs) assert.deepEqual((await seg.segment(input)).classMap, want, what);
  // RGBA raw pixels: alpha is dropped
  const rgba = new Uint8Array(130 * 90 * 4);
  for (let p = 0; p < 130 * 90; p++) rgba.set([...img.data.subarray(3 * p, 3 * p + 3), 77], 4 * p);
  assert.deepEqual((await seg.segment({ data: rgba, width: 130, height: 90, channels: 4 })).classMap, want);
  await seg.dispose();
});

test('result fields: classes, palette, tokens, shared mask, probabilities, pictures, timings', async () => {
  const seg = await Segmenter.load(ckptPath);
  assert.deepEqual([seg.info.policy, seg.info.numShared, seg.info.window, seg.info.format], ['random', 1, [64, 64], 'checkpoint']);
  const r = await seg.segment(pngPath, { probabilities: true, pictures: true });
  assert.deepEqual(r.classes, ckpt.classes);
  assert.deepEqual(r.palette, ckpt.palette);
  // 64x64 window: 16 patches, one shared superpatch -> 13 tokens; 90x130 -> 64x92 view -> 2 windows
  assert.deepEqual(r.tokens, { patches: 16, tokens: 13, shared: 1, windows: 2 });
  assert.equal(r.maskShared!.length, 130 * 90);
  assert.ok(r.maskShared!.some((v) => v === 1) && r.maskShared!.some((v) => v === 0));
  const K = ckpt.classes.length, n = 130 * 90;
  assert.equal(r.probabilities!.length, K * n);
  for (let p = 0; p < n; p += 97) {
    let sum = 0, best = 0;
    for (let k = 0; k < K; k++) {
      sum += r.probabilities![k * n + p]!;
      if (r.probabilities![k * n + p]! > r.probabilities![best * n + p]!) best = k;
    }
    assert.ok(Math.abs(sum - 1) < 1e-5, `pixel ${p} sums to ${sum}`);
    assert.equal(best, r.classMap[p]);
  }
  assert.deepEqual(r.pictures!.mask.data, colorize(r.classMap, ckpt.palette));
  assert.ok(r.timings.total >= r.timings.inference && r.timings.inference > 0);
  const [a, b] = await seg.segmentBatch([pngPath, pngPath]);
  assert.deepEqual(a!.classMap, r.classMap);
  assert.deepEqual(b!.classMap, r.classMap);
  const single = await seg.segment(pngPath, { mode: 'single' });
  assert.equal(single.tokens.windows, 1);
  assert.equal(single.classMap.length, n);
  await seg.dispose();
  await assert.rejects(seg.segment(pngPath), /disposed/);
});

test('an export (float input and uint8 input) segments like the checkpoint it came from', async () => {
  const want = await expected('no_sharing', 0);
  const plain = tinyCheckpoint('no_sharing', 0, 3);
  for (const withPreprocessing of [false, true]) {
    const file = join(dir, `tiny-${withPreprocessing}.onnx`);
    await writeFile(file, exportModel(plain, { withPreprocessing }).bytes);
    const seg = await Segmenter.load(file);
    assert.equal(seg.info.format, 'onnx');
    const r = await seg.segment(pngPath);
    assert.deepEqual(r.classMap, want, `withPreprocessing ${withPreprocessing}`);
    await seg.dispose();
  }
  await assert.rejects(Segmenter.load(join(dir, 'tiny-true.onnx'), { numShared: 1 }), /sharing built in/);
});

test('bad input: unsupported image, not a model, unreachable URL, pixel limit, bad options', async () => {
  const seg = await Segmenter.load(ckptPath, { maxPixels: 5000 });
  // a port nothing listens on: taken, then released
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const closed = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const textFile = join(dir, 'notes.txt');
  await writeFile(textFile, 'hello');
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => seg.segment(textFile), /cannot decode image .*notes\.txt: unsupported image format/],
    [() => seg.segment(join(dir, 'missing.png')), /cannot read image .*missing\.png: no such file or directory/],
    [() => seg.segment(42 as never), /unsupported image input \(number\)/],
    [() => seg.segment(pngPath), /photo\.png is 130x90 = 11700 pixels, over the limit of 5000/],
    [() => seg.segment({ data: new Uint8Array(10), width: 100, height: 100, channels: 3 }), /over the limit|expected 100x100x3/],
    [() => Segmenter.load(textFile), /notes\.txt is neither a cts-seg checkpoint \(\.safetensors\) nor a cts-seg export \(\.onnx\)/],
    [() => Segmenter.load(`${base}/missing.onnx`), /cannot download http:\/\/127\.0\.0\.1:\d+\/missing\.onnx: HTTP 404/],
    [() => Segmenter.load(`http://127.0.0.1:${closed}/model.onnx`), /cannot download http:\/\/127\.0\.0\.1:\d+\/model\.onnx: ECONNREFUSED/],
    [() => Segmenter.load(ckptPath, { precision: 'int4' as never }), /precision 'int4' is not available; expected fp32 or int8/],
    [() => Segmenter.load(ckptPath, { windowBatch: 0 }), /windowBatch must be a positive integer/],
    [() => Segmenter.load(ckptPath, { policy: 'no_sharing', numShared: 2 }), /conflicts with the no_sharing policy/],
    [() => Segmenter.load(ckptPath, { worker: true }), /browser build/],
  ];
  for (const [p, re] of cases) {
    await assert.rejects(p(), (e: unknown) => {
      assert.ok(e instanceof CtsError, String(e));
      assert.match((e as Error).message, re);
      assert.ok(!(e as Error).message.includes('\n'));
      return true;
    });
  }
  await seg.dispose();
});

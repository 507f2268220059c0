// Sizes nobody bounded (issue 16, class 2), each refused or clamped before anything is allocated:
// a window batch of 10^11 on an export, an export or a checkpoint claiming a 100000x100000 crop, a
// .pth whose zero-stride view declares far more than its storage holds, integer options past 2^53.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CtsError } from '../../src/base/errors.js';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { Predictor } from '../../src/cts/predictor.js';
import { estimateGraphBytes } from '../../src/cts/memory.js';
import { exportModel } from '../../src/export/export.js';
import { writePng } from '../../src/data/image.js';
import { readTorchStateDict } from '../../src/io/torch.js';
import { storedZip } from '../../src/io/torch_save.js';
import { Segmenter } from '../../src/index.js';
import { randomImage, tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli } from '../helpers/cli.js';
import { assertOneLineError } from '../helpers/hostile.js';
import { tempDir } from '../data/synth.js';

const tmp = tempDir('cts-limits-');
const ckptPath = join(tmp.dir, 'tiny.safetensors'), image = join(tmp.dir, 'a.png');

before(async () => {
  await saveCheckpoint(ckptPath, tinyCheckpoint());
  await writePng(image, 80, 64, 3, randomImage(64, 80, 3).data);
});

after(() => tmp.cleanup());

test('--window-batch 99999999999 on a dynamic-batch export is clamped to the windows, not a RangeError', async () => {
  const onnx = join(tmp.dir, 'dyn.onnx');
  await writeFile(onnx, exportModel(tinyCheckpoint(), { dynamicBatch: true }).bytes);
  const r = await runCli(['infer', '--checkpoint', onnx, image, '--out', join(tmp.dir, 'o-dyn'), '--window-batch', '99999999999']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(tmp.dir, 'o-dyn', 'a_mask.png')));
});

test('an integer option past 2^53 is one clean error', async () => {
  const r = await runCli(['infer', '--checkpoint', ckptPath, image, '--out', join(tmp.dir, 'o-big'), '--window-batch', '999999999999999999999']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--window-batch expects a positive integer below 2\^53/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
});

test('export --crop-size 100000x100000 is refused at once, naming the size, the estimate and --max-memory', async () => {
  const out = join(tmp.dir, 'huge', 'm.onnx');
  const t0 = Date.now();
  const r = await runCli(['export', '--checkpoint', ckptPath, '--out', out, '--crop-size', '100000x100000']);
  assertOneLineError(r, /100000x100000 needs about [\d.]+ PB of memory .*over the limit .*--max-memory/);
  assert.ok(Date.now() - t0 < 20_000);
  assert.ok(!existsSync(join(tmp.dir, 'huge')), 'a refused export leaves no folder');
  // the limit is an option: a small one refuses a small graph, a large one accepts it
  assert.throws(() => exportModel(tinyCheckpoint(), { maxMemory: 1000 }), /over the limit of 0\.0 MB/);
  assert.ok(exportModel(tinyCheckpoint(), { maxMemory: 1e12 }).bytes.length > 0);
});

test('a checkpoint whose metadata claims a 100000x100000 crop is refused before compiling', async () => {
  const claims = join(tmp.dir, 'claims.safetensors');
  await saveCheckpoint(claims, { ...tinyCheckpoint(), cropSize: [100000, 100000] });
  const r = await runCli(['infer', '--checkpoint', claims, image, '--out', join(tmp.dir, 'o-claims')]);
  assertOneLineError(r, /100000x100000 needs about .* of memory/);
  assert.ok(!existsSync(join(tmp.dir, 'o-claims')));
  await assert.rejects(Predictor.create({ ...tinyCheckpoint(), cropSize: [100000, 100000] }), CtsError);
  await assert.rejects(Segmenter.load(tinyCheckpoint(), { windowBatch: 1, maxMemory: 1000 }), /--max-memory/);
});

test('the estimate grows with tokens squared and with the batch', () => {
  const cfg = tinyCheckpoint().config;
  const a = estimateGraphBytes(cfg, { size: [512, 512], batch: 1 }), b = estimateGraphBytes(cfg, { size: [1024, 1024], batch: 1 });
  assert.ok(b > 10 * a && b < 17 * a, `${a} ${b}`);
  assert.ok(estimateGraphBytes(cfg, { size: [512, 512], batch: 8 }) > 7 * a);
});

/** A zip-format .pth holding one tensor `w` of `shape` with `stride` over a one-element float storage. */
function stridedPth(shape: number[], stride: number[]): Uint8Array {
  const op = (...b: number[]) => Buffer.from(b);
  const str = (s: string) => Buffer.concat([op(0x58), Buffer.from(Uint32Array.of(s.length).buffer), Buffer.from(s, 'latin1')]);
  const int = (n: number) => Buffer.concat([op(0x4a), Buffer.from(Int32Array.of(n).buffer)]);
  const glob = (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`, 'latin1');
  const tuple = (xs: number[]) => Buffer.concat([op(0x28), ...xs.map(int), op(0x74)]);
  const pkl = Buffer.concat([
    op(0x80, 0x02, 0x7d, 0x28), str('w'), glob('torch._utils', '_rebuild_tensor_v2'), op(0x28),
    op(0x28), str('storage'), glob('torch', 'FloatStorage'), str('0'), str('cpu'), int(1), op(0x74, 0x51),
    int(0), tuple(shape), tuple(stride), op(0x89), glob('collections', 'OrderedDict'), op(0x29, 0x52), op(0x74, 0x52),
    op(0x75, 0x2e),
  ]);
  return storedZip([{ name: 'a/data.pkl', data: pkl }, { name: 'a/data/0', data: new Uint8Array(Float32Array.of(1.5).buffer) }, { name: 'a/version', data: Buffer.from('3\n') }]);
}

test('a .pth whose zero strides declare 256 MB over a one-element storage is refused without allocating', async () => {
  const path = join(tmp.dir, 'zero-stride.pth');
  await writeFile(path, stridedPth([1 << 16, 1 << 10], [0, 0]));
  const before = process.memoryUsage().arrayBuffers, t0 = Date.now();
  await assert.rejects(readTorchStateDict(path), (e) => e instanceof CtsError && /declares 67108864 elements \(268435456 bytes\) but its storage holds 1/.test(e.message));
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20);
  assert.ok(Date.now() - t0 < 2000);
  // a view within its storage still loads
  await writeFile(path, stridedPth([1], [1]));
  assert.deepEqual([...(await readTorchStateDict(path)).get('w')!.data], [1.5]);
});

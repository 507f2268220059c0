// A handful of mutated files through the command line, as a user meets them: `infer` on damaged
// images, `eval` on a damaged label, `import-weights` on damaged .pth, .npz and safetensors files.
// Each exits 1 with exactly one `cts-seg: error:` line and no JavaScript stack.
import { test, before, after } from 'node:test';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveCheckpoint } from '../../src/cts/checkpoint.node.js';
import { tinyCheckpoint } from '../eval/tiny-model.js';
import { runCli } from '../helpers/cli.js';
import { assertOneLineError } from '../helpers/hostile.js';
import { rgbBytes, tempDir, writeLabel, writeRgb } from '../data/synth.js';

const tmp = tempDir('cts-fuzz-cli-');
const ckpt = join(tmp.dir, 'tiny.safetensors'), ds = join(tmp.dir, 'ds');
const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/import/${name}`, import.meta.url));

/** Bytes with a cut at `frac` of their length and one flipped bit just before it. */
function damage(b: Uint8Array, frac: number): Uint8Array {
  const out = Uint8Array.from(b.subarray(0, Math.floor(b.length * frac)));
  out[out.length - 1]! ^= 0x10;
  return out;
}

before(async () => {
  await saveCheckpoint(ckpt, tinyCheckpoint());
  await mkdir(join(ds, 'labels/val'), { recursive: true });
  await writeFile(join(ds, 'classes.txt'), 'a\nb\nc\nd\n');
  await writeRgb(join(ds, 'images/val/v0.png'), 64, 48, 1);
  await writeLabel(join(ds, 'labels/val/v0.png'), [0, 1, 2, 3, 3, 1], 64, 48);
});

after(() => tmp.cleanup());

test('infer on damaged PNG and JPEG images', async () => {
  for (const [name, jpg, frac] of [['a.png', false, 0.5], ['b.jpg', true, 0.4], ['c.png', false, 0.05]] as const) {
    const path = join(tmp.dir, name);
    await writeFile(path, damage(await rgbBytes(64, 48, jpg, 3), frac));
    assertOneLineError(await runCli(['infer', '--checkpoint', ckpt, path, '--out', join(tmp.dir, `o-${name}`)]), new RegExp(name.replace('.', '\\.')));
  }
});

test('eval over a damaged label', async () => {
  const label = join(ds, 'labels/val/v0.png');
  await writeFile(label, damage(await readFile(label), 0.7));
  assertOneLineError(await runCli(['eval', '--checkpoint', ckpt, '--dataset', 'folder', '--data-root', ds, '--out', join(tmp.dir, 'eval')]), /v0\.png/);
});

test('import-weights on damaged .pth (zip and legacy), .npz and safetensors files', async () => {
  for (const [src, frac] of [['segmenter.pth', 0.6], ['segmenter_legacy.pth', 0.5], ['vit.npz', 0.8]] as const) {
    const path = join(tmp.dir, `damaged-${src}`);
    await writeFile(path, damage(await readFile(fixture(src)), frac));
    assertOneLineError(await runCli(['import-weights', path, '--out', join(tmp.dir, `${src}.safetensors`)]));
  }
  const st = join(tmp.dir, 'damaged.safetensors');
  await copyFile(ckpt, st);
  await writeFile(st, damage(await readFile(st), 0.3));
  assertOneLineError(await runCli(['info', '--checkpoint', st]), /damaged\.safetensors/);
});

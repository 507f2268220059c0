// Fuzzing the weight and array readers: safetensors (and the checkpoint built from it), npy, npz and
// torch.save files in both the zip and the legacy format. Every outcome is the parsed contents or
// one CtsError line; nothing else escapes, hangs or allocates what the file does not hold.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCheckpoint, serializeCheckpoint } from '../../src/cts/checkpoint.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { parseNpy, serializeNpy } from '../../src/io/npy.js';
import { readNpz } from '../../src/io/npz.js';
import { readTorchStateDict } from '../../src/io/torch.js';
import { pcontextLabelsFromPth } from '../../src/data/pcontext.js';
import { tinyCheckpoint } from '../eval/tiny-model.js';
import { tempDir } from '../data/synth.js';
import { fuzz, NPY, SAFETENSORS, ZIP } from './mutate.js';

const fixture = (name: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`../../../test/fixtures/import/${name}`, import.meta.url))));
const tmp = tempDir('cts-fuzz-');
after(() => tmp.cleanup());

/** Runs a path-based reader on the mutated bytes written to one scratch file. */
function viaFile(name: string, read: (path: string) => Promise<unknown>): (b: Uint8Array) => Promise<unknown> {
  const path = join(tmp.dir, name);
  return async (b) => {
    await writeFile(path, b);
    return read(path);
  };
}

test('mutated safetensors parse, load as a checkpoint, or give one CtsError line', async () => {
  const ckpt = serializeCheckpoint(tinyCheckpoint());
  const raw = parseSafetensors(ckpt);
  assert.ok(raw.tensors.size > 0);
  const s = await fuzz('safetensors', 10, 500, [ckpt], SAFETENSORS, async (b) => {
    parseSafetensors(b, 'fuzz.safetensors');
    return parseCheckpoint(b, 'fuzz.safetensors');
  });
  assert.ok(s.refused > 100 && s.accepted > 10, JSON.stringify(s));
});

test('mutated npy and npz arrays parse or give one CtsError line', async () => {
  const npy = [
    serializeNpy({ dtype: 'float32', shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i / 3) }),
    serializeNpy({ dtype: 'uint8', shape: [4, 2, 3], data: Uint8Array.from({ length: 24 }, (_, i) => i) }),
    serializeNpy({ dtype: 'int64', shape: [2], data: BigInt64Array.of(1n, -7n) }),
  ];
  const a = await fuzz('npy', 11, 400, npy, NPY, async (b) => parseNpy(b, 'fuzz.npy'));
  const z = await fuzz('npz', 12, 300, [fixture('compressed.npz'), fixture('vit_expected.npz'), fixture('tensors_expected.npz')], ZIP, viaFile('fuzz.npz', (p) => readNpz(p)));
  for (const s of [a, z]) assert.ok(s.refused > 50 && s.accepted > 10, JSON.stringify(s));
});

test('mutated zip-format .pth files load or give one CtsError line', async () => {
  const seeds = [fixture('tensors_zip.pth'), fixture('wrapped_model.pth'), fixture('no_tensors.pth'), fixture('evil.pth')];
  const s = await fuzz('pth zip', 13, 350, seeds, ZIP, viaFile('fuzz.pth', (p) => readTorchStateDict(p)));
  const pc = await fuzz('pcontext zip', 14, 100, [fixture('pcontext_zip.pth')], ZIP, viaFile('pc.pth', (p) => pcontextLabelsFromPth(p)));
  assert.ok(s.refused > 50 && s.accepted > 10, JSON.stringify(s));
  assert.ok(pc.refused > 10, JSON.stringify(pc));
});

test('mutated legacy .pth files load or give one CtsError line', async () => {
  const seeds = [fixture('tensors_legacy.pth'), fixture('wrapped_state_dict_legacy.pth'), fixture('evil_legacy.pth')];
  const s = await fuzz('pth legacy', 15, 350, seeds, {}, viaFile('legacy.pth', (p) => readTorchStateDict(p)));
  const pc = await fuzz('pcontext legacy', 16, 100, [fixture('pcontext_legacy.pth'), fixture('pcontext_py2.pth')], {}, viaFile('pcl.pth', (p) => pcontextLabelsFromPth(p)));
  // the pickle stream leaves few mutations loadable: most are refused, which is the point
  assert.ok(s.refused > 50 && s.accepted > 0, JSON.stringify(s));
  assert.ok(pc.refused > 10, JSON.stringify(pc));
});

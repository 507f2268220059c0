// A zoo model end to end, the way a user meets it: `infer --model NAME` pulls the official run folder
// from the registry's URLs (a local server on 127.0.0.1 here), converts it with the real importer of
// official runs, and segments; its probabilities equal the softmax of the official forward
// (../shared/reference/official-run) within 1e-4. `Segmenter.load(NAME)` in Node does the same, and
// CTS_SEG_OFFLINE=1 then runs from the cache with no server at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { readNpy } from '../../src/io/npy.js';
import { RUN, runFiles } from './fixture.js';

const ENTRY = fileURLToPath(new URL('./main-entry.js', import.meta.url));
const skip = RUN ? false : 'shared/reference/official-run is absent (set CTS_SHARED_DIR)';
let dir = '', server: Server | undefined, base = '';

before(async () => {
  if (!RUN) return;
  dir = await mkdtemp(join(tmpdir(), 'cts-model-flag-'));
  const files = runFiles();
  server = createServer((req, res) => {
    const f = files[(req.url ?? '').replace(/^\/ok\/segmenter-tiny\//, '')];
    if (f) res.writeHead(200, { 'content-length': f.length }).end(f);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  // the centre crop the official forward ran on, as an 8-bit PNG
  const u8 = await readNpy(join(RUN, 'expected/image_u8.npy'));
  const crop = new Uint8Array(96 * 96 * 3);
  for (let y = 0; y < 96; y++) crop.set((u8.data as Uint8Array).subarray(((132 + y) * 480 + 192) * 3, ((132 + y) * 480 + 288) * 3), y * 96 * 3);
  await sharp(Buffer.from(crop), { raw: { width: 96, height: 96, channels: 3 } }).png().toFile(join(dir, 'crop.png'));
});

after(async () => {
  server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [ENTRY, ...args], { env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** max |softmax(official forward logits) - p| over the crop. */
async function worstAgainstOfficial(p: Float32Array): Promise<number> {
  const logits = (await readNpy(join(RUN!, 'expected/forward_logits.npy'))).data as Float32Array;
  const K = 11, n = 96 * 96;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let m = -Infinity, sum = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, logits[k * n + i]!);
    for (let k = 0; k < K; k++) sum += Math.exp(logits[k * n + i]! - m);
    for (let k = 0; k < K; k++) worst = Math.max(worst, Math.abs(Math.exp(logits[k * n + i]! - m) / sum - p[k * n + i]!));
  }
  return worst;
}

test('infer --model NAME pulls, imports the official run and matches the official forward', { skip }, async () => {
  const env = { CTS_SEG_CACHE: join(dir, 'cache'), CTS_SEG_MODEL_BASE: base, CI: '1' };
  const r = await run(['infer', '--model', 'test_ok_camvid', join(dir, 'crop.png'), '--out', join(dir, 'out'), '--save-probabilities'], env);
  assert.equal(r.code, 0, r.stderr);
  const probs = await readNpy(join(dir, 'out/crop_probs.npy'));
  assert.deepEqual(probs.shape, [11, 96, 96]);
  const worst = await worstAgainstOfficial(probs.data as Float32Array);
  assert.ok(worst < 1e-4, `max |dp| ${worst}`);
  console.log(`# infer --model: max |probability - softmax(official forward)| = ${worst.toExponential(2)}`);
  // offline, from the cache, with the server gone for this call: the same file
  const again = await run(['infer', '--model', 'test_ok_camvid', join(dir, 'crop.png'), '--out', join(dir, 'out2'), '--save-probabilities'], { ...env, CTS_SEG_OFFLINE: '1', CTS_SEG_MODEL_BASE: 'http://127.0.0.1:9' });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((await readNpy(join(dir, 'out2/crop_probs.npy'))).data, probs.data);
  // a name nobody has, and both sources at once: one line each
  const bad = await run(['infer', '--model', 'seg_tiny_mask_ade2k', join(dir, 'crop.png'), '--out', join(dir, 'out3')], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^cts-seg: error: .*seg_tiny_mask_ade20k/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const both = await run(['infer', '--model', 'x', '--checkpoint', 'y', join(dir, 'crop.png'), '--out', join(dir, 'out3')], env);
  assert.match(both.stderr, /give --checkpoint FILE or --model NAME, not both/);
});

test('Segmenter.load(NAME) in Node resolves a zoo name through the same cache', { skip }, async () => {
  const { Segmenter } = await import('../../src/index.js');
  const { registerModelRecord } = await import('../../src/zoo/registry.js');
  const { testRecord } = await import('./fixture.js');
  for (const route of ['ok', 'missing']) registerModelRecord(testRecord(route));
  Object.assign(process.env, { CTS_SEG_CACHE: join(dir, 'cache-api'), CTS_SEG_MODEL_BASE: base });
  const seg = await Segmenter.load('test_ok_camvid');
  assert.deepEqual([seg.info.window, seg.info.windowStride, seg.info.dataset, seg.info.classes.length], [[96, 96], 64, 'camvid', 11]);
  const r = await seg.segment(join(dir, 'crop.png'), { probabilities: true });
  await seg.dispose();
  assert.ok((await worstAgainstOfficial(r.probabilities!)) < 1e-4);
  await assert.rejects(Segmenter.load('test_missing_camvid'), /test_missing_camvid.*404|404.*test_missing_camvid|HTTP 404/);
});

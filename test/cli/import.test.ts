// `cts-seg import-weights` as a user runs it: a safetensors file on success; on bad input one line,
// exit code 1, and nothing written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpz } from '../../src/io/npz.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { importVitNpz } from '../../src/models/import.node.js';
import { inferSegmenterConfig } from '../../src/models/weights.js';
import { fixture } from '../helpers/fixtures.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const F = (name: string) => fixture(`import/${name}`);

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('import-weights: AugReg .npz with --grid -> safetensors with n_heads and pos_grid metadata', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-import-'));
  const out = join(dir, 'vit.safetensors');
  const r = await run(['import-weights', F('vit.npz'), '--out', out, '--grid', '3', '4']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /imported 30 tensors .* as vit-npz/);
  assert.match(r.stdout, /dropped 2: head\/kernel, head\/bias/);
  const { tensors, metadata } = await readSafetensors(out);
  assert.deepEqual(tensors, importVitNpz(await readNpz(F('vit.npz')), { grid: [3, 4] }).tensors);
  assert.deepEqual(metadata, { import_kind: 'vit-npz', import_source: 'vit.npz', n_heads: '2', pos_grid: '[3,4]' });
  assert.deepEqual(await readdir(dir), ['vit.safetensors'], 'no temp files left');
});

test('import-weights: a Segmenter checkpoint gives a file `forward` can read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-import-'));
  const out = join(dir, 'seg.safetensors');
  const r = await run(['import-weights', F('segmenter.pth'), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { tensors, metadata } = await readSafetensors(out);
  assert.equal(inferSegmenterConfig(tensors, { metadata }).n_cls, 3);
  assert.ok(!tensors.has('encoder.head.weight'));
});

test('import-weights refuses a malicious checkpoint: one line, exit 1, no output file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cts-import-'));
  const cases: [string[], RegExp][] = [
    [[F('evil.pth')], /^cts-seg: error: refusing to load posix\.system from .*evil\.pth: only plain tensors and containers are allowed$/],
    [[F('vit.npz'), '--grid', '3'], /^cts-seg: error: --grid expects two positive integers H W, got 1$/],
    [[F('vit.npz'), '--kind', 'onnx'], /--kind expects one of vit-npz, segmenter-pth, vit-pth, policy-pth, got 'onnx'/],
    [[F('no_tensors.pth')], /^cts-seg: error: .*no_tensors\.pth holds no tensors/],
  ];
  for (const [args, re] of cases) {
    const r = await run(['import-weights', ...args, '--out', join(dir, 'x.safetensors')]);
    assert.equal(r.code, 1, `exit code for ${args.join(' ')} (stderr: ${r.stderr})`);
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('(run with --help'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, re);
  }
  assert.deepEqual(await readdir(dir), []);
});

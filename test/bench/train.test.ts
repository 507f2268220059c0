// `cts-seg bench-train` on a tiny model (ViT-Ti at 64x64, 3 classes, batch 1), and its PyTorch
// comparison's interleaving, driven by a stand-in for Python that speaks the --serve protocol of
// bench/pytorch_train_step.py: steps alternate, warm-up steps are left out, a PyTorch failure leaves
// the cts-seg timing standing with the reason. Speed itself is measured by the command, never here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchTrainVsPytorch, type TrainBenchOptions } from '../../src/bench/train.js';
import { parsePytorchMalloc, pytorchEnv, TUNED_MALLOC_ENV } from '../../src/bench/pytorch.js';
import { runCli } from '../helpers/cli.js';
import { fakePython } from '../helpers/fake-python.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TINY: TrainBenchOptions = {
  backbone: 'vit-ti', decoder: 'mask_transformer', imageSize: 64, classes: 3, batch: 1, warmup: 1, steps: 3, numShared: 0, stochastic: false, threads: 1,
};

/**
 * A fake `python` (test/helpers/fake-python.ts) that logs its MALLOC_TOP_PAD_ at start and answers
 * step k (1-based) with ms = k after logging "torch k" to `log`, dying after `failAfter` steps when set.
 */
function fakeTrainPython(dir: string, log: string, failAfter?: number): string {
  return fakePython(dir, {
    onStart: `fs.appendFileSync(${JSON.stringify(log)}, 'top_pad ' + (process.env.MALLOC_TOP_PAD_ ?? 'unset') + '\\n'); let k = 0;`,
    onCommand: `k++;
    ${failAfter !== undefined ? `if (k > ${failAfter}) { console.error('RuntimeError: out of memory (fake)'); process.exit(1); }` : ''}
    fs.appendFileSync(${JSON.stringify(log)}, 'torch ' + k + '\\n');
    console.log(JSON.stringify({ ms: k, loss: 1.5 }));`,
  });
}

test('bench-train vs PyTorch: steps alternate, warm-up excluded, PyTorch peak memory its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cts-bt-'));
  try {
    const log = join(dir, 'log');
    const python = fakeTrainPython(dir, log);
    let ours = 0;
    const r = await benchTrainVsPytorch({ ...TINY, onRss: () => writeFileSync(log, `ours ${++ours}\n`, { flag: 'a' }), every: 1 }, python);
    // Ours (logged after each step's PyTorch turn) and PyTorch's steps interleave one to one.
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['top_pad unset', 'torch 1', 'ours 1', 'torch 2', 'ours 2', 'torch 3', 'ours 3', 'torch 4', 'ours 4']);
    assert.equal(r.pytorch.interleaved, true);
    assert.deepEqual([r.pytorch.ms_per_step_min, r.pytorch.ms_per_step_median, r.pytorch.ms_per_step_max], [2, 3, 4], 'warm-up step 1 left out');
    assert.equal(r.pytorch.peak_rss_mb, 42);
    assert.equal(r.pytorch.framework, 'pytorch 0.0-fake');
    assert.ok(r.ours.ms_per_step_median > 0 && Number.isFinite(r.ours.last_loss));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench-train vs PyTorch: --pytorch-malloc tuned reaches the PyTorch process, and is reported', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cts-bt-'));
  try {
    const log = join(dir, 'log');
    const r = await benchTrainVsPytorch({ ...TINY, steps: 1 }, fakeTrainPython(dir, log), 'tuned');
    assert.equal(readFileSync(log, 'utf8').split('\n')[0], `top_pad ${2 ** 30}`);
    assert.equal(r.pytorch.malloc, 'tuned');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pytorchEnv/parsePytorchMalloc: default is the environment as it is, tuned adds the three mallopt variables, others are refused', () => {
  const base = { PATH: '/bin', MALLOC_TOP_PAD_: '7' };
  assert.equal(pytorchEnv('default', base), base);
  assert.deepEqual(pytorchEnv('tuned', { PATH: '/bin' }), { PATH: '/bin', ...TUNED_MALLOC_ENV });
  assert.deepEqual(Object.keys(TUNED_MALLOC_ENV).sort(), ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_TRIM_THRESHOLD_']);
  assert.equal(parsePytorchMalloc('tuned'), 'tuned');
  assert.throws(() => parsePytorchMalloc('jemalloc'), /--pytorch-malloc must be default or tuned, got 'jemalloc'/);
});

test('bench-train vs PyTorch: a PyTorch failure mid-run is reported as skipped, cts-seg timing stands', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cts-bt-'));
  try {
    const r = await benchTrainVsPytorch(TINY, fakeTrainPython(dir, join(dir, 'log'), 2));
    assert.match(String(r.pytorch.skipped), /out of memory \(fake\)/);
    assert.equal(r.pytorch.ms_per_step_median, undefined);
    assert.ok(r.ours.ms_per_step_median > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cts-seg bench-train --json: one object with the step time, peak memory and the loss', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [CLI, 'bench-train', '--backbone', 'vit-ti', '--image-size', '64', '--classes', '3', '--batch', '1',
      '--warmup', '1', '--steps', '2', '--threads', '1', '--no-stochastic', '--json'], { env: { ...process.env, CI: '1' } }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)));
  });
  const r = JSON.parse(out) as { cts_seg: { ms_per_step_median: number; peak_rss_mb: number; last_loss: number }; stochastic: boolean };
  assert.equal(r.stochastic, false);
  assert.ok(r.cts_seg.ms_per_step_median > 0 && r.cts_seg.peak_rss_mb > 0);
  assert.ok(r.cts_seg.last_loss > 0 && r.cts_seg.last_loss < 10, `loss ${r.cts_seg.last_loss}`);
});

test('cts-seg bench-train: an unknown --pytorch-malloc is a one-line error before any timing', async () => {
  const r = await runCli(['bench-train', '--backbone', 'vit-ti', '--image-size', '64', '--pytorch-malloc', 'fast']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--pytorch-malloc must be default or tuned, got 'fast'/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
});

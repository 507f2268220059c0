// `cts-seg bench` and `cts-seg info` as a user runs them, on a tiny model (ViT-Ti at 64x64, 3
// classes, batch 2, warm-up 1, 2 timed iterations): the JSON report's shape and consistency, the
// sweep, and one-line errors for impossible budgets and unknown or unavailable providers.
// Speed itself is measured by the bench command, never asserted here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fakePython } from '../helpers/fake-python.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { timeStats } from '../../src/bench/machine.js';
import { budgetForReduction, sweepBudgets } from '../../src/bench/setup.js';
import { parseImageSize, parseReduction } from '../../src/cli/options.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const TINY = ['--backbone', 'vit-ti', '--image-size', '64', '--classes', '3', '--batch', '2', '--warmup', '1', '--iters', '2'];

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 1 << 24, env: { ...process.env, CI: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Asserts a one-line `cts-seg: error:` message matching `re`, exit 1, no stack trace. */
function assertCleanError(r: { code: number; stdout: string; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('cts-seg: error:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, re);
  // (Dawn's own native warning about a missing Vulkan loader may precede it: not ours to silence)
  assert.doesNotMatch(r.stderr, /\s+at .*(file:\/\/|node:internal)/, 'no JavaScript stack trace');
}

test('bench --json reports throughput, timing spread, tokens, GMACs and the machine for a shared budget', async () => {
  const r = await run(['bench', ...TINY, '--num-shared', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  assert.equal(j.batch, 2);
  assert.equal(j.micro_batch, 2, "default micro-batch");
  assert.equal(j.warmup, 1);
  assert.equal(j.iters, 2);
  assert.deepEqual(j.image_size, [64, 64]);
  assert.equal(j.classes, 3);
  assert.equal(j.backbone, 'vit_tiny_patch16_384');
  // 16 patches, 1 of 4 superpatches shared: 12 + 1 tokens
  assert.equal(j.num_shared, 1);
  assert.equal(j.num_not_shared, 12);
  assert.equal(j.tokens_per_image, 13);
  assert.equal(j.logits_fetched, false);
  assert.equal(j.reduction, 0.1875);
  assert.ok(j.images_per_second > 0 && Number.isFinite(j.images_per_second));
  for (const k of ['mean', 'median', 'p10', 'p90', 'min', 'max']) assert.ok(j.ms_per_batch[k] > 0, k);
  assert.ok(j.ms_per_batch.p10 <= j.ms_per_batch.median && j.ms_per_batch.median <= j.ms_per_batch.p90);
  // images/s is the batch over the mean time, as the paper's Im/sec
  assert.ok(Math.abs(j.images_per_second - 2000 / j.ms_per_batch.mean) / j.images_per_second < 0.01);
  assert.ok(j.policy_net.ms_per_batch.median > 0);
  assert.ok(j.policy_net.share_of_forward > 0);
  assert.equal(j.policy_width, 1);
  assert.ok(j.gmacs.policy > 0 && j.gmacs.encoder > 0 && j.gmacs.decoder > 0);
  assert.ok(Math.abs(j.gmacs.total - (j.gmacs.policy + j.gmacs.encoder + j.gmacs.decoder + j.gmacs.upsample)) < 0.02);
  assert.equal(j.provider, 'cpu');
  assert.ok(Number.isInteger(j.threads) && j.threads >= 1);
  for (const k of ['cpu_model', 'node_version', 'ort_version']) assert.equal(typeof j.machine[k], 'string', k);
  assert.ok(j.machine.cores >= 1);
  assert.ok(j.peak_rss_mb > 0);
});

test('bench --checkpoint times a CTS checkpoint at its own budget unless told otherwise', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'cts-bench-'));
  try {
    const ck = join(dir, 'cts.safetensors');
    const init = await run(['init', '--backbone', 'vit-ti', '--classes', '3', '--crop-size', '64', '--num-shared', '1', '--policy-width', '0.25', '--out', ck]);
    assert.equal(init.code, 0, init.stderr);
    const fast = ['--batch', '2', '--warmup', '1', '--iters', '1', '--json'];
    const own = JSON.parse((await run(['bench', '--checkpoint', ck, ...fast])).stdout) as Record<string, any>;
    assert.equal(own.num_shared, 1);
    assert.equal(own.tokens_per_image, 13);
    assert.equal(own.policy_width, 0.25);
    const none = JSON.parse((await run(['bench', '--checkpoint', ck, '--num-shared', '0', ...fast])).stdout) as Record<string, any>;
    assert.equal(none.num_shared, 0);
    assert.equal(none.tokens_per_image, 16);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bench --sweep times 0/15/30/44% budgets in one run and prints a table (and JSON)', async () => {
  const r = await run(['bench', ...TINY, '--sweep', '--json', '--policy-width', '0.5', '--fetch-logits']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { sweep: Record<string, any>[] };
  // at 64x64 (4 superpatches) 30% and 44% both round to S=2
  assert.deepEqual(j.sweep.map((x) => x.num_shared), [0, 1, 2]);
  assert.deepEqual(j.sweep.map((x) => x.tokens_per_image), [16, 13, 10]);
  assert.equal(j.sweep[0]!.policy_net, null);
  assert.equal(j.sweep[0]!.gmacs.policy, 0);
  assert.equal(j.sweep[2]!.policy_width, 0.5);
  assert.ok(j.sweep.every((x) => x.logits_fetched === true));
  const t = await run(['bench', ...TINY, '--sweep', '--sequential']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /reduction\s+shared\s+tokens\s+GMAC\s+images\/s/);
  assert.equal(t.stdout.trim().split('\n').filter((l) => /^\s+\d+\.\d%\s+\d+\s+\d+/.test(l)).length, 3);
});

test('bench --compare-precision times fp32 and int8 in one run and reports their ratio', async () => {
  const r = await run(['bench', ...TINY, '--compare-precision', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { results: Record<string, any>[]; ratio: { num_shared: number; int8_vs_fp32: { mean: number; median: number } } };
  assert.deepEqual(j.results.map((x) => x.precision), ['fp32', 'int8']);
  assert.deepEqual(j.results.map((x) => x.gmacs.total), [j.results[0]!.gmacs.total, j.results[0]!.gmacs.total], 'the same arithmetic is counted');
  const want = Math.round((j.results[1]!.images_per_second / j.results[0]!.images_per_second) * 1000) / 1000;
  assert.equal(j.ratio.int8_vs_fp32.mean, want);
  const text = await run(['bench', ...TINY, '--precision', 'int8']);
  assert.match(text.stdout, /^precision int8 \(Linear layers, patch embedding, attention scores: int8 weights per output channel/m);
  assertCleanError(await run(['bench', ...TINY, '--precision', 'int4']), /unknown precision 'int4': expected fp32, int8/);
});

test('bench --compare-precision --compare-pytorch: PyTorch serves fp32 and int8, each timed after the same precision of ours', async () => {
  // a fake python speaking the serve protocol: logs its arguments and every request, answers fp32 in 10 ms and int8 in 5 ms
  const dir = mkdtempSync(join(tmpdir(), 'cts-bp-'));
  try {
    const log = join(dir, 'log');
    const python = fakePython(dir, {
      onStart: `fs.appendFileSync(${JSON.stringify(log)}, 'args ' + process.argv.slice(3).join(' ') + '\\n');`,
      onCommand: `fs.appendFileSync(${JSON.stringify(log)}, cmd + '\\n'); console.log(JSON.stringify({ ms: cmd.endsWith('int8') ? 5 : 10 }));`,
    });
    const r = await run(['bench', ...TINY, '--compare-precision', '--compare-pytorch', '--python', python, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { results: Record<string, any>[] };
    assert.deepEqual(j.results.map((x) => [x.precision, x.pytorch.images_per_second]), [['fp32', 200], ['int8', 400]]);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.match(lines[0]!, /--precisions fp32,int8/);
    assert.match(lines[0]!, /--quantize-dynamic onednn/);
    // warm-up 1 + timed 2, each iteration: ours fp32, PyTorch fp32, ours int8, PyTorch int8
    assert.deepEqual(lines.slice(1), Array.from({ length: 3 }, () => ['forward 0 fp32', 'forward 0 int8']).flat());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('impossible budgets and bad options are one-line errors, not crashes', async () => {
  assertCleanError(await run(['bench', ...TINY, '--num-shared', '5']), /num_shared 5 is impossible: .*S = 0\.\.4/);
  assertCleanError(await run(['bench', ...TINY, '--reduction', '0.9']), /reduction '0\.9' is impossible/);
  assertCleanError(await run(['bench', ...TINY, '--image-size', '80', '--num-shared', '1']), /multiple of 32/);
  const mb = await run(['bench', ...TINY, '--micro-batch', '0']);
  assert.ok(mb.code !== 0 && /--micro-batch expects a positive integer, got '0'/.test(mb.stderr), mb.stderr);
  assertCleanError(await run(['bench', ...TINY, '--num-shared', '1', '--reduction', '0.3']), /--num-shared or --reduction, not both/);
  assertCleanError(await run(['bench', ...TINY, '--backbone', 'vit-xxl']), /unknown backbone 'vit-xxl'/);
  assertCleanError(await run(['bench', ...TINY, '--compare-pytorch', '--python', '/bin/false']), /--python \/bin\/false cannot import torch/);
  assertCleanError(await run(['bench', ...TINY, '--compare-pytorch', '--pytorch-malloc', 'fast']), /--pytorch-malloc must be default or tuned, got 'fast'/);
});

test('an unknown provider is an error; webgpu and cuda either run on themselves or say they are unavailable', async () => {
  // wasm is a provider of the browser build, not of Node's
  assertCleanError(await run(['bench', ...TINY, '--provider', 'wasm']), /unknown execution provider 'wasm' for Node: expected cpu, webgpu, cuda/);
  for (const provider of ['webgpu', 'cuda']) {
    const r = await run(['bench', ...TINY, '--provider', provider, '--json']);
    if (r.code === 0) assert.equal((JSON.parse(r.stdout) as { provider: string }).provider, provider);
    else assertCleanError(r, new RegExp(`the ${provider} execution provider is not available here`));
  }
});

test('info prints parameter counts, token budgets and GMACs; --json carries the same', async () => {
  const r = await run(['info', '--backbone', 'vit-s', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, any>;
  assert.deepEqual(j.budgets.map((b: { num_shared: number }) => b.num_shared), [0, 51, 103, 150]);
  assert.equal(j.budgets[2].tokens_per_image, 715);
  assert.ok(Math.abs(j.budgets[0].gmacs.total - 38.6) / 38.6 < 0.01);
  // blocks 12 x (12 D^2 + 13 D), cls D, pos (1 + 1024) D, patch embedding 768 D + D, final norm 2 D
  const D = 384;
  assert.equal(j.parameters.encoder, 12 * (12 * D * D + 13 * D) + D + 1025 * D + 769 * D + 2 * D);
  assert.ok(j.parameters.policy_net > 2.5e6 && j.parameters.policy_net < 3.5e6);
  const t = await run(['info', '--backbone', 'vit-s', '--image-size', '768', '--classes', '19', '--num-shared', '336']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /336\s+960\s+1296\s+43\.8%\s+55\.9\d/);
  assertCleanError(await run(['info', '--backbone', 'vit-s', '--num-shared', '300']), /num_shared 300 is impossible/);
});

test('size, reduction and budget helpers', () => {
  assert.deepEqual(parseImageSize('512'), [512, 512]);
  assert.deepEqual(parseImageSize('512x1024'), [512, 1024]);
  assert.throws(() => parseImageSize('big'), /N or HxW/);
  assert.equal(parseReduction('0.3'), 0.3);
  assert.equal(parseReduction('30%'), 0.3);
  assert.equal(parseReduction('44'), 0.44);
  // the paper's budgets where it has one, round(r * Nb / 3) elsewhere
  assert.equal(budgetForReduction(512, 512, 16, 0.3), 103);
  assert.equal(budgetForReduction(768, 768, 16, 0.44), 336);
  assert.equal(budgetForReduction(480, 480, 16, 0.3), 90);
  assert.equal(budgetForReduction(352, 352, 16, 0.3), 48);
  assert.deepEqual(sweepBudgets(768, 768), [0, 115, 230, 336]);
  const s = timeStats([4, 1, 3, 2, 5]);
  assert.deepEqual([s.median, s.mean, s.min, s.max, s.p10, s.p90], [3, 3, 1, 5, 1.4, 4.6]);
});

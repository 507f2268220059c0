// `cts-seg init` + `cts-seg eval` end to end, as a user runs them: a tiny random checkpoint evaluated
// on a small generated folder dataset with and without token sharing; bad inputs give one-line
// errors and exit 1. With ../shared/data/camvid present, a randomly initialised ViT-Ti on 4 CamVid
// val images as the acceptance check.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePng } from '../../src/data/image.js';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import { fixture, sharedDir } from '../helpers/fixtures.js';
import { randomImage } from '../eval/tiny-model.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const TINY = ['--backbone', 'custom', '--d-model', '32', '--depth', '1', '--heads', '2', '--decoder-layers', '1', '--crop-size', '64'];
let dir = '', data = '', valid = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cts-eval-'));
  data = join(dir, 'data');
  await mkdir(join(data, 'images/val'), { recursive: true });
  await mkdir(join(data, 'labels/val'), { recursive: true });
  await writeFile(join(data, 'classes.txt'), 'sky\nroad\ncar\n');
  // smaller than the window, equal to it, larger and non-square
  for (const [i, [h, w]] of [[40, 50], [64, 64], [90, 130]].entries()) {
    const img = randomImage(h!, w!, 100 + i);
    const label = Uint8Array.from({ length: h! * w! }, (_, p) => (p % 13 === 0 ? 255 : img.data[p * 3]! % 3));
    valid += label.filter((v) => v !== 255).length;
    await writePng(join(data, `images/val/img${i}.png`), w!, h!, 3, img.data);
    await writePng(join(data, `labels/val/img${i}.png`), w!, h!, 1, label);
  }
});

test('init writes loadable random checkpoints with and without a sharing budget', async () => {
  const r = await run(['init', ...TINY, '--classes', '3', '--out', join(dir, 'plain.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 classes, crop 64, .*policy no_sharing/);
  const c = await loadCheckpoint(join(dir, 'plain.safetensors'));
  assert.deepEqual([c.config.d_model, c.config.n_layers, c.config.n_cls, c.config.decoder_n_layers], [32, 1, 3, 1]);
  assert.deepEqual(c.cropSize, [64, 64]);
  assert.deepEqual(c.classes, ['class_0', 'class_1', 'class_2']);
  const s = await run(['init', ...TINY, '--classes', '3', '--reduction', '0.375', '--policy-width', '0.25', '--seed', '3', '--out', join(dir, 'cts.safetensors')]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /policy policy_net, 2 shared superpatches: 10 tokens per window instead of 16/);
  const cs = await loadCheckpoint(join(dir, 'cts.safetensors'));
  assert.deepEqual(cs.cts, { policy: 'policy_net', numShared: 2, policyWidth: 0.25 });
  assert.ok(cs.weights.has('policy_net.head.weight'));
  const d = await run(['init', '--backbone', 'custom', '--d-model', '32', '--depth', '1', '--dataset', 'camvid', '--out', join(dir, 'cv.safetensors')]);
  assert.equal(d.code, 0, d.stderr);
  const cv = await loadCheckpoint(join(dir, 'cv.safetensors'));
  assert.equal(cv.classes[0], 'Sky');
  assert.deepEqual(cv.palette[0], [128, 128, 128]);
  assert.deepEqual(cv.cropSize, [352, 352]);
  assert.equal(cv.dataset, 'camvid');
});

async function metricsOf(out: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8')) as Record<string, any>;
}

test('eval without sharing: per-class table on stdout, metrics.json and metrics.md written', async () => {
  const out = join(dir, 'ev-plain');
  const r = await run(['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--window-stride', '48']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\| class \| IoU \| Acc \|\n\| --- \| ---: \| ---: \|\n\| class_0 \| [0-9.]+ \| [0-9.]+ \|/);
  assert.match(r.stdout, /mIoU [0-9.]+ {2}mAcc [0-9.]+ {2}aAcc [0-9.]+/);
  assert.match(r.stdout, /tokens per window: 16 \(no sharing\)/);
  assert.match(r.stdout, /images\/s/);
  assert.match(r.stderr, /eval 3\/3/);
  const m = await metricsOf(out);
  assert.equal(m.images, 3);
  assert.equal(m.dataset, 'folder');
  assert.equal(m.split, 'val');
  assert.equal(m.per_class.length, 3);
  assert.deepEqual(m.protocol, { window: [64, 64], stride: 48, multiscale: false, views: 1 });
  assert.equal(m.tokens_per_window, 16);
  assert.equal(m.token_reduction, 0);
  assert.equal(m.policy, 'no_sharing');
  assert.equal(m.windows, 2 + 1 + 6);
  const conf = (m.confusion as number[][]).flat();
  assert.equal(conf.reduce((a, b) => a + b, 0), valid);
  // the summary numbers are the official rounding of the confusion matrix's
  const K = 3, inter = [0, 1, 2].map((k) => m.confusion[k][k] as number);
  const union = [0, 1, 2].map((k) => m.confusion[k].reduce((a: number, b: number) => a + b, 0) + m.confusion.reduce((a: number, row: number[]) => a + row[k]!, 0) - inter[k]!);
  const ious = inter.map((x, k) => x / union[k]!).filter((x) => !Number.isNaN(x));
  assert.equal(m.mIoU, Math.round((ious.reduce((a, b) => a + b, 0) / ious.length) * 10000) / 100);
  assert.equal(m.aAcc, Math.round((inter.reduce((a, b) => a + b, 0) / valid) * 10000) / 100);
  assert.equal(m.per_class.length, K);
  const md = await readFile(join(out, 'metrics.md'), 'utf8');
  assert.match(md, /# Evaluation: folder val \(3 images\)/);
});

test('eval with sharing (policy net from the checkpoint, random and oracle overrides) reports the token reduction', async () => {
  const out = join(dir, 'ev-cts');
  const r = await run(['eval', '--checkpoint', join(dir, 'cts.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--window-batch', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /tokens per window: 10 \(policy policy_net, 2 shared; 37\.5% fewer than 16 without sharing\)/);
  const m = await metricsOf(out);
  assert.equal(m.tokens_per_window, 10);
  assert.equal(m.tokens_no_sharing, 16);
  assert.equal(m.token_reduction, 0.375);
  assert.equal(m.num_shared, 2);
  assert.equal(m.window_batch, 2);
  for (const policy of ['random', 'oracle']) {
    const o2 = join(dir, `ev-${policy}`);
    const q = await run(['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', o2, '--policy', policy, '--num-shared', '3', '--limit', '2']);
    assert.equal(q.code, 0, q.stderr);
    const mq = await metricsOf(o2);
    assert.equal(mq.policy, policy);
    assert.equal(mq.tokens_per_window, 7);
    assert.equal(mq.images, 2);
  }
});

test('eval accepts a plain official state dict (no cts-seg metadata) as the checkpoint', async () => {
  const d11 = join(dir, 'data11');
  await mkdir(join(d11, 'images/val'), { recursive: true });
  await mkdir(join(d11, 'labels/val'), { recursive: true });
  await writeFile(join(d11, 'classes.json'), JSON.stringify({ classes: Array.from({ length: 11 }, (_, i) => `c${i}`) }));
  const img = randomImage(96, 120, 7);
  await writePng(join(d11, 'images/val/a.png'), 120, 96, 3, img.data);
  await writePng(join(d11, 'labels/val/a.png'), 120, 96, 1, Uint8Array.from({ length: 96 * 120 }, (_, p) => p % 11));
  const out = join(dir, 'ev-official');
  const r = await run(['eval', '--checkpoint', fixture('tiny96/weights.safetensors'), '--dataset', 'folder', '--data-root', d11, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\| class_10 \| /); // names come from the checkpoint (generic for a plain state dict)
  const m = await metricsOf(out);
  assert.deepEqual(m.protocol.window, [96, 96]);
  assert.equal(m.windows, 2);
  assert.equal((m.confusion as number[][]).flat().reduce((a, b) => a + b, 0), 96 * 120);
});

test('eval --multiscale uses 12 views', async () => {
  const out = join(dir, 'ev-ms');
  const r = await run(['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--multiscale', '--limit', '1']);
  assert.equal(r.code, 0, r.stderr);
  const m = await metricsOf(out);
  assert.equal(m.protocol.views, 12);
  assert.equal(m.protocol.multiscale, true);
  assert.match(r.stdout, /multi-scale \+ flip \(12 views\)/);
});

test('bad eval and init inputs give one-line errors, exit 1 and write nothing', async () => {
  const wrongK = join(dir, 'k4.safetensors');
  assert.equal((await run(['init', ...TINY, '--classes', '4', '--out', wrongK])).code, 0);
  const out = join(dir, 'ev-bad');
  const cases: [string[], RegExp][] = [
    [['eval', '--checkpoint', wrongK, '--dataset', 'folder', '--data-root', data, '--out', out], /predicts 4 classes but dataset folder has 3/],
    [['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--policy', 'best'], /unknown policy 'best': expected no_sharing, policy_net, oracle, random/],
    [['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--window-stride', '65'], /--window-stride 65 exceeds the 64x64 window/],
    [['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--policy', 'oracle'], /oracle policy needs a budget/],
    [['eval', '--checkpoint', join(dir, 'missing.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out], /missing\.safetensors/],
    [['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'mnist', '--data-root', data, '--out', out], /unknown dataset 'mnist'/],
    [['eval', '--checkpoint', join(dir, 'plain.safetensors'), '--dataset', 'folder', '--data-root', data, '--out', out, '--limit', '0'], /--limit expects a positive integer/],
    [['init', '--backbone', 'vit-xl', '--classes', '3', '--out', join(dir, 'x.safetensors')], /--backbone must be one of/],
    [['init', ...TINY, '--classes', '3', '--num-shared', '5', '--out', join(dir, 'x.safetensors')], /num_shared 5 is impossible: .*valid pairs/],
    [['init', ...TINY, '--classes', '3', '--dataset', 'camvid', '--out', join(dir, 'x.safetensors')], /either --dataset or --classes/],
    [['init', '--backbone', 'custom', '--classes', '3', '--out', join(dir, 'x.safetensors')], /custom needs --d-model and --depth/],
    [['init', ...TINY, '--out', join(dir, 'x.safetensors')], /give --dataset NAME or --classes N/],
    [['init', ...TINY, '--classes', '3', '--policy', 'oracle', '--out', join(dir, 'x.safetensors')], /oracle policy needs a budget/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('cts-seg: error') || l.startsWith('error:')).length, 1, r.stderr);
  }
  assert.ok(!existsSync(join(out, 'metrics.json')));
  assert.ok(!existsSync(join(dir, 'x.safetensors')));
});

const camvid = (() => {
  const s = sharedDir();
  return s && existsSync(join(s, 'data/camvid/val.txt')) ? join(s, 'data/camvid') : undefined;
})();

test('acceptance: random ViT-Ti on 4 CamVid val images prints the per-class table', { skip: camvid ? false : 'no ../shared/data/camvid (CamVid is not shipped with the repo)' }, async () => {
  const ck = join(dir, 'vit-ti-camvid.safetensors');
  const i = await run(['init', '--backbone', 'vit-ti', '--dataset', 'camvid', '--out', ck]);
  assert.equal(i.code, 0, i.stderr);
  const out = join(dir, 'ev-camvid');
  const r = await run(['eval', '--checkpoint', ck, '--dataset', 'camvid', '--data-root', camvid!, '--limit', '4', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  for (const name of ['Sky', 'Building', 'Road', 'Bicyclist']) assert.match(r.stdout, new RegExp(`\\| ${name} \\| ([0-9.]+|n/a) \\|`));
  assert.match(r.stdout, /mIoU [0-9.]+/);
  const m = await metricsOf(out);
  assert.equal(m.images, 4);
  assert.deepEqual(m.protocol, { window: [352, 352], stride: 320, multiscale: false, views: 1 });
  assert.equal(m.windows, 16); // 480x360: anchors h {0, 8}, w {0, 128}
  assert.equal(m.per_class.length, 11);
});

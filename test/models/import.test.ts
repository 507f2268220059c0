// Weight importers against fixtures made by test/fixtures/import/make_fixtures.py: a D=8, 2-head,
// 2-layer AugReg-style ViT .npz, the same weights mapped by timm 0.4.12's `_load_weights` and saved
// as a timm state dict, a tiny Segmenter checkpoint, and PyTorch's own pos-embed resize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CtsError } from '../../src/base/errors.js';
import { readNpz } from '../../src/io/npz.js';
import type { HostTensor } from '../../src/base/tensor.js';
import { readTorchStateDict } from '../../src/io/torch.js';
import { detectStateDictKind, importPolicyStateDict, importSegmenterStateDict, importVitNpz, importVitStateDict, importWeights } from '../../src/models/import.node.js';
import { initPolicyNet, policyNetSpec } from '../../src/models/policynet.js';
import { inferSegmenterConfig } from '../../src/models/weights.js';
import { fixture } from '../helpers/fixtures.js';

const F = (name: string) => fixture(`import/${name}`);
const D = 8, H = 2, DH = 4, MLP = 16, P = 16;
const f32 = (t: HostTensor | undefined) => t!.data as Float32Array;

test('AugReg .npz -> encoder.* equals timm 0.4.12 _load_weights, tensor for tensor', async () => {
  const npz = await readNpz(F('vit.npz'));
  const r = importVitNpz(npz, { source: 'vit.npz' });
  const timm = importVitStateDict(await readTorchStateDict(F('vit_timm.pth')));
  assert.deepEqual([...r.tensors.keys()].sort(), [...timm.tensors.keys()].sort());
  for (const [k, t] of timm.tensors) assert.deepEqual(r.tensors.get(k), t, k);
  assert.equal(r.tensors.size, 4 + 12 * 2 + 2);
  assert.deepEqual(r.report.dropped, ['head/kernel', 'head/bias']);
  assert.deepEqual(timm.report.dropped, ['head.weight', 'head.bias']);
  assert.deepEqual(r.metadata, { import_kind: 'vit-npz', import_source: 'vit.npz', n_heads: '2' });
});

test('the mapping itself: q,k,v fusion order, out/Dense/conv transposes, LayerNorm scale', async () => {
  const npz = await readNpz(F('vit.npz'));
  const r = importVitNpz(npz);
  const src = (k: string) => f32(npz.get(k));
  const m = 'Transformer/encoderblock_1/MultiHeadDotProductAttention_1/';
  const qkv = f32(r.tensors.get('encoder.blocks.1.attn.qkv.weight'));
  const qkvBias = f32(r.tensors.get('encoder.blocks.1.attn.qkv.bias'));
  assert.deepEqual(r.tensors.get('encoder.blocks.1.attn.qkv.weight')!.shape, [3 * D, D]);
  ['query', 'key', 'value'].forEach((n, part) => {
    const kernel = src(`${m}${n}/kernel`), bias = src(`${m}${n}/bias`); // [D, H, DH], [H, DH]
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < DH; d++) {
        const row = part * D + h * DH + d;
        assert.equal(qkvBias[row], bias[h * DH + d]);
        for (let c = 0; c < D; c++) assert.equal(qkv[row * D + c], kernel[(c * H + h) * DH + d], `${n} row ${row} col ${c}`);
      }
    }
  });
  const proj = f32(r.tensors.get('encoder.blocks.1.attn.proj.weight')), out = src(`${m}out/kernel`); // out [H, DH, D]
  for (let o = 0; o < D; o++) for (let j = 0; j < D; j++) assert.equal(proj[o * D + j], out[j * D + o]);
  const fc1 = f32(r.tensors.get('encoder.blocks.0.mlp.fc1.weight')), dense0 = src('Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel');
  assert.deepEqual(r.tensors.get('encoder.blocks.0.mlp.fc1.weight')!.shape, [MLP, D]);
  for (let o = 0; o < MLP; o++) for (let i = 0; i < D; i++) assert.equal(fc1[o * D + i], dense0[i * MLP + o]);
  const conv = f32(r.tensors.get('encoder.patch_embed.proj.weight')), kernel = src('embedding/kernel'); // [P, P, 3, D] HWIO
  assert.deepEqual(r.tensors.get('encoder.patch_embed.proj.weight')!.shape, [D, 3, P, P]);
  for (const [o, c, y, x] of [[0, 0, 0, 0], [7, 2, 15, 3], [3, 1, 4, 9], [5, 2, 11, 15]] as const) {
    assert.equal(conv[((o * 3 + c) * P + y) * P + x], kernel[((y * P + x) * 3 + c) * D + o]);
  }
  assert.deepEqual(f32(r.tensors.get('encoder.blocks.0.norm2.weight')), src('Transformer/encoderblock_0/LayerNorm_2/scale'));
  assert.deepEqual(f32(r.tensors.get('encoder.norm.bias')), src('Transformer/encoder_norm/bias'));
});

test('--grid resizes pos_embed like torch F.interpolate(bilinear, align_corners=False), CLS kept', async () => {
  const npz = await readNpz(F('vit.npz'));
  const r = importVitNpz(npz, { grid: [3, 4] });
  const pos = r.tensors.get('encoder.pos_embed')!;
  assert.deepEqual(pos.shape, [1, 13, D]);
  const want = f32((await readNpz(F('vit_expected.npz'))).get('pos_embed_3x4'));
  f32(pos).forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `pos[${i}] ${v} vs ${want[i]}`));
  assert.deepEqual(f32(pos).subarray(0, D), f32(npz.get('Transformer/posembed_input/pos_embedding')).subarray(0, D));
  assert.equal(r.metadata.pos_grid, '[3,4]');
  assert.match(r.report.notes.join('\n'), /resized from 2x2 to 3x4/);
});

test("big_vision's opt/target/ prefix is understood; optimizer leftovers are reported as dropped", async () => {
  const npz = await readNpz(F('vit.npz'));
  const prefixed = new Map([...npz].map(([k, v]) => [`opt/target/${k}`, v]));
  prefixed.set('opt/state/step', { dtype: 'int32', shape: [], data: Int32Array.of(3) });
  const r = importVitNpz(prefixed);
  assert.deepEqual(r.tensors, importVitNpz(npz).tensors);
  assert.deepEqual(r.report.dropped.sort(), ['opt/state/step', 'opt/target/head/bias', 'opt/target/head/kernel']);
});

test('an incomplete or wrong-shaped .npz fails naming the array', async () => {
  const npz = await readNpz(F('vit.npz'));
  const missing = new Map(npz);
  missing.delete('Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias');
  assert.throws(() => importVitNpz(missing, { source: 'v.npz' }), (e: Error) => e instanceof CtsError && /v\.npz: missing 'Transformer\/encoderblock_1\/MlpBlock_3\/Dense_1\/bias'/.test(e.message));
  const flat = new Map(npz);
  flat.set('Transformer/encoderblock_0/MultiHeadDotProductAttention_1/key/kernel', { dtype: 'float32', shape: [8, 8], data: new Float32Array(64) });
  assert.throws(() => importVitNpz(flat, { source: 'v.npz' }), /'Transformer\/encoderblock_0\/MultiHeadDotProductAttention_1\/key\/kernel' is \[8,8\], expected 3 dims/);
  assert.throws(() => importVitNpz(new Map([['a', npz.get('cls')!]])), /missing 'cls'/);
});

test('Segmenter checkpoint: official names kept, encoder.head dropped, result loads as a Segmenter', async () => {
  const sd = await readTorchStateDict(F('segmenter.pth'));
  const r = importSegmenterStateDict(sd, { source: 'segmenter.pth' });
  assert.deepEqual(r.report.dropped, ['encoder.head.weight', 'encoder.head.bias']);
  for (const [k, t] of r.tensors) assert.equal(t, sd.get(k), k);
  assert.equal(r.tensors.size, sd.size - 2);
  const cfg = inferSegmenterConfig(r.tensors);
  assert.deepEqual([cfg.d_model, cfg.n_layers, cfg.n_cls, cfg.decoder_n_layers, cfg.pos_grid], [8, 1, 3, 1, [2, 2]]);
  // the legacy-format copy of the same checkpoint imports to the same tensors
  assert.deepEqual(importSegmenterStateDict(await readTorchStateDict(F('segmenter_legacy.pth'))).tensors, r.tensors);
  const resized = importSegmenterStateDict(sd, { grid: [3, 3] });
  assert.deepEqual(inferSegmenterConfig(resized.tensors, { metadata: resized.metadata }).pos_grid, [3, 3]);
});

test('DataParallel module. prefixes are stripped; unknown or missing keys fail with the key names', async () => {
  const sd = await readTorchStateDict(F('segmenter.pth'));
  const wrapped = new Map([...sd].map(([k, v]) => [`module.${k}`, v]));
  const r = importSegmenterStateDict(wrapped);
  assert.ok(r.tensors.has('encoder.cls_token'));
  assert.match(r.report.notes.join(' '), /'module\.' prefix/);
  const extra = new Map(sd).set('optimizer_step', sd.get('encoder.cls_token')!);
  assert.throws(() => importSegmenterStateDict(extra, { source: 's.pth' }), /s\.pth: 1 key\(s\) are not Segmenter parameters \(encoder\.\*, decoder\.\*, policy_net\.\*\): optimizer_step$/);
  const partial = new Map(sd);
  partial.delete('decoder.mask_norm.bias');
  assert.throws(() => importSegmenterStateDict(partial, { source: 's.pth' }), /weights file s\.pth does not match the model: missing 1 \(decoder\.mask_norm\.bias\)/);
  const timm = await readTorchStateDict(F('vit_timm.pth'));
  assert.throws(() => importVitStateDict(new Map(timm).set('dist_token', timm.get('cls_token')!), { source: 't.pth' }), /t\.pth: 1 key\(s\) are not timm ViT parameters .*: dist_token$/);
});

test('policy net state dict -> policy_net.*, checked against EfficientNet-Lite0', () => {
  const sd = initPolicyNet(3);
  const r = importPolicyStateDict(sd);
  assert.equal(r.tensors.size, policyNetSpec().size);
  for (const [k, t] of sd) assert.equal(r.tensors.get(`policy_net.${k}`), t);
  const f64 = new Map(sd).set('head.bias', { dtype: 'float64', shape: [2], data: Float64Array.of(0.25, -1) });
  assert.deepEqual(r.tensors.get('policy_net.head.bias')!.dtype, 'float32');
  assert.deepEqual([...f32(importPolicyStateDict(f64).tensors.get('policy_net.head.bias'))], [0.25, -1]);
  const broken = new Map(sd);
  broken.delete('backbone.bn1.running_var');
  assert.throws(() => importPolicyStateDict(broken, { source: 'p.pth' }), /missing 1 \(backbone\.bn1\.running_var\)/);
  assert.throws(() => importPolicyStateDict(new Map(sd).set('fc.weight', sd.get('head.bias')!), { source: 'p.pth' }), /not policy-net parameters \(backbone\.\*, head\.\*\): fc\.weight$/);
});

test('kinds are detected from the file, or refused when the keys say nothing', async () => {
  assert.equal(detectStateDictKind(['module.encoder.cls_token']), 'segmenter-pth');
  assert.equal(detectStateDictKind(['backbone.conv_stem.weight', 'head.weight']), 'policy-pth');
  assert.equal(detectStateDictKind(['cls_token', 'blocks.0.norm1.weight']), 'vit-pth');
  assert.equal(detectStateDictKind(['conv.weight']), undefined);
  assert.equal((await importWeights(F('vit.npz'))).report.kind, 'vit-npz');
  assert.equal((await importWeights(F('vit_timm.pth'))).report.kind, 'vit-pth');
  assert.equal((await importWeights(F('segmenter.pth'))).report.kind, 'segmenter-pth');
  await assert.rejects(importWeights(F('tensors_zip.pth')), /cannot tell what model this state dict is for \(keys conv\.weight, conv\.bias/);
  await assert.rejects(importWeights(F('segmenter.pth'), { kind: 'vit-pth' }), /are not timm ViT parameters/);
});

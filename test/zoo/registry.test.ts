// The registry: names and URLs well formed, facts as the README states them, and docs/MODELS.md in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isDatasetName, DATASETS } from '../../src/data/catalog.js';
import { MODELS, MODEL_HOSTS, closeMatches, fileUrl, findModel, unknownModelError } from '../../src/zoo/registry.js';

test('names are unique, lower-case and follow the convention', () => {
  assert.equal(new Set(MODELS.map((m) => m.name)).size, MODELS.length);
  for (const m of MODELS) {
    assert.match(m.name, /^[a-z0-9_]+$/);
    if (m.kind === 'segmenter') assert.ok(m.name.endsWith(`_${m.dataset}`), m.name);
    else assert.equal(m.name, m.backbone.name);
  }
});

test('every release has its run folder files on the official host; backbones their .npz', () => {
  for (const m of MODELS) {
    const names = m.files.map((f) => f.name);
    assert.deepEqual(names, m.kind === 'segmenter' ? ['checkpoint.pth', 'variant.yml'] : [names[0]]);
    for (const f of m.files) assert.match(fileUrl(m, f), /^https:\/\//);
    if (m.kind === 'backbone') assert.match(m.files[0]!.name, /-res_384\.npz$/);
    if (m.kind === 'segmenter') {
      assert.ok(isDatasetName(m.dataset));
      assert.ok(m.decoder && m.miou?.ss !== undefined && m.miou.ms !== undefined);
      assert.equal(m.backbone.d_ff, 4 * m.backbone.d_model);
    }
  }
  const tiny = findModel('seg_tiny_mask_ade20k')!;
  assert.equal(fileUrl(tiny, tiny.files[0]!), `${MODEL_HOSTS.segmenter}ade20k/seg_tiny_mask/checkpoint.pth`);
  assert.equal(fileUrl(tiny, tiny.files[1]!, 'http://127.0.0.1:1'), 'http://127.0.0.1:1/ade20k/seg_tiny_mask/variant.yml');
  assert.deepEqual(tiny.miou, { ss: 38.1, ms: 38.8 });
  assert.equal(DATASETS.ade20k.classes.length, 150);
});

test('lookup is case-insensitive with - for _; unknown names suggest close ones', () => {
  assert.equal(findModel('SEG-TINY-MASK-ADE20K')?.name, 'seg_tiny_mask_ade20k');
  assert.equal(findModel('seg_tiny_mask'), undefined);
  assert.equal(closeMatches('seg_large_mask')[0]?.startsWith('seg_large_mask'), true);
  assert.deepEqual(closeMatches('vit_small')[0], 'vit_small_patch16_384');
  assert.match(unknownModelError('cityscapes').message, /seg_large_mask_cityscapes/);
});

test('docs/MODELS.md lists every model of the registry', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/MODELS.md', import.meta.url)), 'utf8');
  for (const m of MODELS) assert.ok(doc.includes(`| \`${m.name}\` |`), `docs/MODELS.md lacks ${m.name}`);
});

// The zoo tests' model: the official run folder of ../shared/reference/official-run/segmenter-tiny,
// described by test-only records whose paths a local server answers in different ways (normal, missing,
// cut short, short body), and a stand-in for the importer of official runs that reads the state dict
// the reference exported beside the run.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/cts/checkpoint.node.js';
import type { ModelCheckpoint } from '../../src/cts/checkpoint.js';
import type { ModelRecord } from '../../src/zoo/registry.js';
import { referenceCase } from '../helpers/fixtures.js';

/** The run folder, or undefined where ../shared is absent (the tests then skip). */
export const RUN = referenceCase('official-run/segmenter-tiny');

/** The run's files, as the server sends them. */
export function runFiles(): Record<string, Buffer> {
  return { 'checkpoint.pth': readFileSync(join(RUN!, 'checkpoint.pth')), 'variant.yml': readFileSync(join(RUN!, 'variant.yml')) };
}

/** A test record served under `/<route>/`; `size` false leaves the sizes unrecorded. */
export function testRecord(route: string, o: { size?: boolean } = {}): ModelRecord {
  const files = RUN ? runFiles() : {};
  return {
    name: `test_${route}_camvid`,
    title: `fixture (${route})`,
    kind: 'segmenter',
    host: 'segmenter',
    files: ['checkpoint.pth', 'variant.yml'].map((f) => ({
      name: f, path: `${route}/segmenter-tiny/${f}`, ...(o.size !== false && files[f] ? { size: files[f].length } : {}),
    })),
    backbone: { name: 'vit_tiny_patch16_384', d_model: 64, n_layers: 2, n_heads: 2, patch_size: 16, d_ff: 256, normalization: 'vit', distilled: false },
    decoder: { kind: 'mask_transformer', n_layers: 2 },
    crop: 96,
    window: { size: 96, stride: 64 },
    dataset: 'camvid',
    classesFrom: 'the camvid dataset of src/data/catalog.ts',
    licence: 'test fixture',
    source: 'shared/reference/official-run/README.md',
  };
}

/** The routes the test server knows. */
export const ROUTES = ['ok', 'flaky', 'missing', 'cut', 'short'] as const;

/** The records of every route. */
export function testRecords(): ModelRecord[] {
  return ROUTES.map((r) => testRecord(r));
}

/** Stand-in conversion: checks the run folder holds both files, then loads the reference's state dict. */
export async function standInConvert(runDir: string): Promise<ModelCheckpoint> {
  for (const f of ['checkpoint.pth', 'variant.yml']) if (!existsSync(join(runDir, f))) throw new Error(`stand-in: ${f} missing in ${runDir}`);
  return loadCheckpoint(join(RUN!, 'expected/state_dict.safetensors'), { encoderHeads: 2 });
}

// `npm run web:model [-- CHECKPOINT] [--max-mb N] [--float16]`: exports the model that ships with the
// web page into web/public/: models/cts.onnx (policy network + sharing, uint8 RGB input, tuned for
// onnxruntime-web's wasm build),
// models/baseline.onnx (same weights, no sharing), models/weights.bin (their weights, stored once as
// ONNX external data), models/manifest.json (classes, palette, normalization, sizes, token counts,
// policy width, the model configuration) and sample.png (a synthetic street scene at the model's
// input size, never seen in training). The initializers carry the checkpoint's state-dict names, so
// with the manifest the files hold the whole checkpoint (readOnnxWeights in src/export/readback.ts
// reads the weights back; test/web/int8.test.ts rebuilds the checkpoint). Weights are stored as
// float16 with --float16, or when float32 would exceed --max-mb (default 15: the files are committed).
// Default checkpoint: runs/demo/cts/model.safetensors (from `cts-seg demo`). Runs on the compiled
// library in dist/ (the npm script builds it first).
import { mkdir, writeFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../dist/src/cts/checkpoint.node.js';
import { exportModel } from '../dist/src/export/export.js';
import { packWeights } from '../dist/src/export/weights.node.js';
import { renderScene } from '../dist/src/data/synthetic.js';
import { writePng } from '../dist/src/data/image.js';
import { createRng } from '../dist/src/base/rng.js';

const args = process.argv.slice(2);
const maxAt = args.indexOf('--max-mb');
const maxMb = maxAt >= 0 ? Number(args.splice(maxAt, 2)[1]) : 15;
const f16At = args.indexOf('--float16');
const forceF16 = f16At >= 0 && args.splice(f16At, 1).length > 0;
const ckptPath = args[0] ?? 'runs/demo/cts/model.safetensors';
const out = 'web/public';
const SAMPLE_SEED = 424242; // outside the seeds generateSynthetic uses for train/val scenes

function fail(msg) {
  process.stderr.write(`web:model: error: ${msg}\n`);
  process.exit(1);
}

if (!existsSync(ckptPath)) fail(`${ckptPath} not found: run \`cts-seg demo\` (or scripts/web-train.sh) first, or pass a checkpoint: npm run web:model -- FILE`);
if (!(maxMb > 0)) fail('--max-mb expects a positive number');
const ckpt = await loadCheckpoint(ckptPath);
if (ckpt.cts.policy !== 'policy_net' || !ckpt.cts.numShared) fail(`${ckptPath} has policy ${ckpt.cts.policy} with ${ckpt.cts.numShared} shared; the page needs a CTS model with a policy network`);
// the page runs them on onnxruntime-web's wasm build: emitted with its faster op choices (EmitTarget)
const cts = exportModel(ckpt, { withPreprocessing: true, policy: 'policy_net', target: 'wasm' });
const base = exportModel(ckpt, { withPreprocessing: true, policy: 'no_sharing', target: 'wasm' });
const total = (p) => (p.models.reduce((a, m) => a + m.length, 0) + p.data.length) / 1e6;
let float16 = forceF16;
let packed = packWeights([cts.bytes, base.bytes], 'weights.bin', { float16 });
if (!float16 && total(packed) > maxMb) {
  process.stderr.write(`web:model: float32 weights take ${total(packed).toFixed(1)} MB, over ${maxMb} MB: storing them as float16\n`);
  float16 = true;
  packed = packWeights([cts.bytes, base.bytes], 'weights.bin', { float16 });
}
if (total(packed) > maxMb) fail(`the model files take ${total(packed).toFixed(1)} MB even as float16, over the ${maxMb} MB kept in the repository: use a smaller model, or raise --max-mb`);

await mkdir(join(out, 'models'), { recursive: true });
await writeFile(join(out, 'models', 'cts.onnx'), packed.models[0]);
await writeFile(join(out, 'models', 'baseline.onnx'), packed.models[1]);
await writeFile(join(out, 'models', 'weights.bin'), packed.data);
const [h, w] = ckpt.cropSize;
const scene = renderScene(h, w, createRng(SAMPLE_SEED));
await writePng(join(out, 'sample.png'), w, h, 3, scene.rgb);
const manifest = {
  classes: ckpt.classes,
  palette: ckpt.palette,
  size: [h, w],
  superpatch: 2 * ckpt.config.patch_size,
  normalization: ckpt.normalization,
  cts: { file: 'cts.onnx', numTokens: cts.budget.numTokens, numShared: cts.budget.numShared, policyWidth: ckpt.cts.policyWidth ?? 1 },
  baseline: { file: 'baseline.onnx', numTokens: base.budget.numTokens },
  weights: { file: 'weights.bin', dtype: float16 ? 'float16' : 'float32' },
  sample: 'sample.png',
  source: { checkpoint: ckptPath.split('/').slice(-3).join('/'), config: ckpt.config, dataset: ckpt.dataset ?? null },
};
await writeFile(join(out, 'models', 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
const size = async (f) => ((await stat(join(out, f))).size / 1e6).toFixed(2);
process.stdout.write(
  `wrote ${out}/models/: cts.onnx (${cts.budget.numTokens} tokens) and baseline.onnx (${base.budget.numTokens} tokens) sharing weights.bin ` +
    `(${await size('models/weights.bin')} MB, ${float16 ? 'float16' : 'float32'}), manifest.json; and ${out}/sample.png (${w}x${h}); from ${ckptPath}\n`,
);

// `cts-seg infer`: segment a user's images with a checkpoint and write, per image, the coloured
// class map, an overlay, and a picture of where tokens were shared. An image that cannot be read
// is reported and skipped; the run continues and exits 1 at the end.
import { mkdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { readImage, writePng } from '../data/image.js';
import { DATASETS, isDatasetName } from '../data/datasets.js';
import { createPredictor, predictImage } from '../eval/evaluate.js';
import { createProgress } from '../eval/report.js';
import { colorize, overlay, sharedView } from '../eval/visualize.js';
import { parsePolicy } from '../cts/spec.js';
import { parseProvider } from '../runtime/providers.js';
import { action, posInt } from './util.js';
import { checkpointOption, numSharedOption, outOption, policyOption, providerOption, seedOption, windowStrideOption } from './options.js';

interface InferOpts {
  checkpoint: string;
  out: string;
  policy?: string;
  numShared?: number;
  windowStride?: number;
  windowBatch: number;
  seed: number;
  provider: string;
}

/** Registers the `infer` command. */
export function registerInfer(program: Command): void {
  const cmd = program
    .command('infer')
    .description('segment images: writes <stem>_mask.png (class colours), <stem>_overlay.png (image + mask, 50/50) and <stem>_shared.png (shared-token regions) per image')
    .argument('<images...>', 'image files (PNG/JPEG/WebP/TIFF), any size');
  checkpointOption(cmd, { required: true });
  outOption(cmd, 'output directory (created if missing)', { required: true });
  policyOption(cmd, { note: 'default: the checkpoint\'s; oracle needs labels and is not available here' });
  numSharedOption(cmd, { note: 'per window; default: the checkpoint\'s' });
  windowStrideOption(cmd, { note: 'default: the stride of the checkpoint\'s dataset, else the window size' });
  cmd.option('--window-batch <n>', 'windows per model call', posInt('--window-batch'), 4);
  seedOption(cmd, { note: 'of the random policy', default: 0 });
  providerOption(cmd, { note: 'falls back to cpu with a message' });
  cmd.action(action(runInfer));
}

async function runInfer(images: string[], o: InferOpts): Promise<void> {
  const provider = parseProvider(o.provider);
  const policy = parsePolicy(o.policy);
  const stems = new Map<string, string>();
  for (const p of images) {
    const s = basename(p, extname(p));
    const prev = stems.get(s);
    if (prev !== undefined) throw new CtsError(`${prev} and ${p} have the same stem '${s}'; their outputs would overwrite each other`);
    stems.set(s, p);
  }
  const ckpt = await loadCheckpoint(o.checkpoint);
  if ((policy ?? ckpt.cts.policy) === 'oracle') throw new CtsError('the oracle policy needs ground-truth labels, which infer does not have; use policy_net, random or no_sharing');
  const window = ckpt.cropSize, maxStride = Math.min(window[0], window[1]);
  if (o.windowStride !== undefined && o.windowStride > maxStride) throw new CtsError(`--window-stride ${o.windowStride} exceeds the ${window.join('x')} window; use at most ${maxStride}`);
  const dsStride = ckpt.dataset && isDatasetName(ckpt.dataset) ? DATASETS[ckpt.dataset].eval.windowStride : maxStride;
  const stride = o.windowStride ?? Math.min(dsStride, maxStride);
  try {
    await mkdir(o.out, { recursive: true });
  } catch (e) {
    throw new CtsError(`cannot create output directory ${o.out}: ${describeFsError(e)}`);
  }
  const predictor = await createPredictor(ckpt, { ...(policy ? { policy } : {}), ...(o.numShared !== undefined ? { numShared: o.numShared } : {}), windowBatch: o.windowBatch, provider });
  const progress = createProgress(images.length, 'infer', 1);
  const failed: string[] = [];
  try {
    for (const [i, path] of images.entries()) {
      try {
        const img = await readImage(path);
        const pred = await predictImage(predictor, img, { stride, normalization: ckpt.normalization, seed: o.seed + i * 10_000_000, sharedFraction: true });
        const stem = join(o.out, basename(path, extname(path)));
        const mask = colorize(pred.classes, ckpt.palette);
        await writePng(`${stem}_mask.png`, img.width, img.height, 3, mask);
        await writePng(`${stem}_overlay.png`, img.width, img.height, 3, overlay(img, mask));
        await writePng(`${stem}_shared.png`, img.width, img.height, 3, sharedView(img, pred.sharedFraction));
      } catch (e) {
        if (!(e instanceof CtsError)) throw e;
        failed.push(path);
        process.stderr.write(`cts-seg: error: ${e.message}\n`);
      }
      progress.tick(basename(path));
    }
  } finally {
    progress.stop();
    await predictor.release();
  }
  const ok = images.length - failed.length;
  process.stdout.write(`wrote ${ok * 3} files for ${ok} of ${images.length} images to ${o.out}\n`);
  if (failed.length) {
    process.stderr.write(`cts-seg: error: ${failed.length} of ${images.length} images failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

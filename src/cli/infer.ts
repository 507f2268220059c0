// `cts-seg infer`: segment a user's images with a model (a checkpoint or an export) through the
// Segmenter API and write, per image, the coloured class map, an overlay, and a picture of where
// tokens were shared. An image that cannot be read is reported and skipped; the run continues and
// exits 1 at the end. An output folder this run created and wrote nothing into is removed.
import { mkdir, rm } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { describeFsError } from '../io/fs.node.js';
import { parsePolicy } from '../cts/spec.js';
import { parseProvider } from '../runtime/providers.js';
import { readImage, writePng } from '../data/image.js';
import { colorize, overlay, sharedView } from '../eval/visualize.js';
import { writeNpy } from '../io/npy.js';
import { createProgress } from '../eval/report.js';
import { DEFAULT_WINDOW_BATCH, Segmenter } from '../api/segmenter.js';
import { DEFAULT_MAX_PIXELS } from '../api/platform.js';
import { action, posInt } from './util.js';
import { modelFile } from './model_file.js';
import { checkpointOption, modelOption, numSharedOption, outOption, policyOption, precisionOption, providerOption, seedOption, windowStrideOption, checkWeightsOption, maxMemoryOption } from './options.js';
import type { Precision } from '../nn/params.js';

interface InferOpts {
  checkpoint?: string;
  model?: string;
  out: string;
  policy?: string;
  numShared?: number;
  windowStride?: number;
  windowBatch: number;
  windowSize?: number;
  flip?: boolean;
  saveProbabilities?: boolean;
  mode: string;
  maxPixels: number;
  seed: number;
  provider: string;
  precision?: Precision;
  maxMemory?: number;
  checkWeights: boolean;
}

/** Registers the `infer` command. */
export function registerInfer(program: Command): void {
  const cmd = program
    .command('infer')
    .description('segment images: writes <stem>_mask.png (class colours), <stem>_overlay.png (image + mask, 50/50) and <stem>_shared.png (shared-token regions) per image')
    .argument('<images...>', 'image files (PNG/JPEG/WebP/TIFF/GIF/AVIF), any size');
  checkpointOption(cmd, { note: 'or a cts-seg export (.onnx)' });
  modelOption(cmd);
  outOption(cmd, 'output directory (created if missing)', { required: true });
  policyOption(cmd, { note: 'default: the checkpoint\'s; oracle needs labels and is not available here' });
  numSharedOption(cmd, { note: 'per window; default: the checkpoint\'s' });
  cmd.option('--mode <mode>', 'sliding: the official protocol (short side resized to the window, sliding windows, merged, resized back); single: one pass on the image squeezed to the window', 'sliding');
  cmd.option('--window-size <px>', 'sliding-window size (checkpoints only; default: the training crop, the positional embedding is resized)', posInt('--window-size'));
  windowStrideOption(cmd, { note: 'default: the stride of the model\'s dataset, else the window size' });
  cmd.option('--window-batch <n>', 'windows per model call (at most the windows an image needs)', posInt('--window-batch'), DEFAULT_WINDOW_BATCH);
  cmd.option('--flip', 'also segment the mirrored image and average the probabilities (the official flip augmentation)');
  cmd.option('--save-probabilities', 'also write <stem>_probs.npy: float32 [K,H,W] class probabilities at the image size (4 K bytes per pixel)');
  cmd.option('--max-pixels <n>', 'largest image accepted, in pixels (refused before decoding)', posInt('--max-pixels'), DEFAULT_MAX_PIXELS);
  seedOption(cmd, { note: 'of the random policy', default: 0 });
  providerOption(cmd, { note: 'falls back to cpu with a message' });
  precisionOption(cmd, { note: 'checkpoints; default fp32 (an export runs at the precision it was exported with)', default: undefined });
  maxMemoryOption(cmd);
  checkWeightsOption(cmd);
  cmd.action(action(runInfer));
}

async function runInfer(images: string[], o: InferOpts): Promise<void> {
  const provider = parseProvider(o.provider);
  const policy = o.policy === undefined ? undefined : parsePolicy(o.policy);
  if (policy === 'oracle') throw new CtsError('the oracle policy needs ground-truth labels, which infer does not have; use policy_net, random or no_sharing');
  if (o.mode !== 'sliding' && o.mode !== 'single') throw new CtsError(`--mode must be sliding or single, got '${o.mode}'`);
  const stems = new Map<string, string>();
  for (const p of images) {
    const s = basename(p, extname(p));
    const prev = stems.get(s);
    if (prev !== undefined) throw new CtsError(`${prev} and ${p} have the same stem '${s}'; their outputs would overwrite each other`);
    stems.set(s, p);
  }
  const seg = await Segmenter.load((await modelFile(o))!, {
    provider, ...(o.windowSize !== undefined ? { windowSize: o.windowSize } : {}), windowBatch: o.windowBatch, maxPixels: o.maxPixels, checkWeights: o.checkWeights, ...(o.maxMemory !== undefined ? { maxMemory: o.maxMemory } : {}), ...(policy ? { policy } : {}), ...(o.numShared !== undefined ? { numShared: o.numShared } : {}),
    ...(o.precision ? { precision: o.precision } : {}),
  });
  if (seg.info.policy === 'oracle') {
    await seg.dispose();
    throw new CtsError('the oracle policy needs ground-truth labels, which infer does not have; use policy_net, random or no_sharing');
  }
  const [wh, ww] = seg.info.window;
  if (o.windowStride !== undefined && o.windowStride > Math.min(wh, ww)) {
    await seg.dispose();
    throw new CtsError(`--window-stride ${o.windowStride} exceeds the ${wh}x${ww} window; use at most ${Math.min(wh, ww)}`);
  }
  let created: string | undefined; // the outermost folder this run made, removed again if nothing was written
  try {
    created = await mkdir(o.out, { recursive: true });
  } catch (e) {
    await seg.dispose();
    throw new CtsError(`cannot create output directory ${o.out}: ${describeFsError(e)}`);
  }
  const progress = createProgress(images.length, 'infer', 1);
  const failed: string[] = [];
  try {
    for (const [i, path] of images.entries()) {
      try {
        // decoded here (not by segment) so the three pictures can be made and written one at a time:
        // at 8000x6000 each is 144 MB
        const img = await readImage(path, o.maxPixels);
        const r = await seg.segment({ ...img, channels: 3 }, {
          mode: o.mode, seed: o.seed + i * 10_000_000, flip: !!o.flip, probabilities: !!o.saveProbabilities,
          ...(o.windowStride !== undefined ? { windowStride: o.windowStride } : {}),
        });
        const stem = join(o.out, basename(path, extname(path)));
        const mask = colorize(r.classMap, r.palette);
        await writePng(`${stem}_mask.png`, r.width, r.height, 3, mask);
        await writePng(`${stem}_overlay.png`, r.width, r.height, 3, overlay(img, mask));
        await writePng(`${stem}_shared.png`, r.width, r.height, 3, sharedView(img, r.sharedFraction));
        if (r.probabilities) await writeNpy(`${stem}_probs.npy`, { dtype: 'float32', shape: [r.classes.length, r.height, r.width], data: r.probabilities });
      } catch (e) {
        if (!(e instanceof CtsError)) throw e;
        failed.push(path);
        process.stderr.write(`cts-seg: error: ${e.message}\n`);
      }
      progress.tick(basename(path));
    }
  } finally {
    progress.stop();
    await seg.dispose();
    if (created && failed.length === images.length) await rm(created, { recursive: true, force: true });
  }
  const ok = images.length - failed.length;
  process.stdout.write(`wrote ${ok * (o.saveProbabilities ? 4 : 3)} files for ${ok} of ${images.length} images to ${o.out}\n`);
  if (failed.length) {
    // one image's failure is its own error line; a summary is for several
    if (images.length > 1) process.stderr.write(`cts-seg: error: ${failed.length} of ${images.length} images failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

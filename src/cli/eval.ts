// `cts-seg eval`: mIoU of a checkpoint on a dataset split with the official protocol (sliding
// window at the checkpoint's crop, optional multi-scale + flip, dataset-accumulated confusion).
import type { Command } from 'commander';
import { CtsError } from '../base/errors.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { parsePolicy } from '../cts/spec.js';
import { parseProvider } from '../runtime/providers.js';
import { openDataset } from '../data/datasets.js';
import { evalViews, evaluateDataset } from '../eval/evaluate.js';
import { Segmenter } from '../api/segmenter.js';
import { createProgress, reportMarkdown, writeReport } from '../eval/report.js';
import { action, posInt } from './util.js';
import { modelFile } from './model_file.js';
import { checkpointOption, modelOption, numSharedOption, outOption, policyOption, precisionOption, providerOption, seedOption, windowStrideOption, checkWeightsOption, maxMemoryOption } from './options.js';
import type { Precision } from '../nn/params.js';
import { Predictor, predictorSharing } from '../cts/predictor.js';
import type { ModelCheckpoint } from '../cts/checkpoint.js';
import type { PolicyMethod } from '../cts/spec.js';
import type { Provider } from '../runtime/providers.js';
import type { SegDataset } from '../data/types.js';
import { ComparingRunner } from '../eval/compare.js';
import { runnerPredictor } from '../eval/evaluate.js';
import type { EvalReport } from '../eval/report.js';

/** Options of `eval` as commander parses them. */
interface EvalOpts {
  checkpoint: string;
  model?: string;
  dataset: string;
  dataRoot: string;
  split: string;
  multiscale?: boolean;
  windowStride?: number;
  windowBatch: number;
  limit?: number;
  policy?: string;
  numShared?: number;
  seed: number;
  out?: string;
  provider: string;
  precision: Precision;
  comparePrecision?: boolean;
  maxMemory?: number;
  checkWeights: boolean;
}

/** Registers the `eval` command. */
export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('evaluate a checkpoint on a dataset split (mIoU, mAcc, aAcc) with the official sliding-window protocol; writes metrics.json and metrics.md');
  checkpointOption(cmd);
  modelOption(cmd);
  cmd
    .requiredOption('--dataset <name>', 'dataset: ade20k, pcontext, cityscapes, camvid or folder')
    .requiredOption('--data-root <dir>', 'dataset folder (as prepared by `cts-seg prepare`, or the CamVid/folder dataset directory)')
    .option('--split <name>', 'split to evaluate', 'val')
    .option('--multiscale', 'multi-scale + flip: ratios 0.5-1.75 of the dataset scale, each with and without horizontal flip (12 views, softmax-averaged)');
  windowStrideOption(cmd, { note: 'default: the dataset protocol\'s stride, at most the window' });
  cmd
    .option('--window-batch <n>', 'windows per model call', posInt('--window-batch'), 4)
    .option('--limit <n>', 'evaluate only the first N images of the split (sorted by id)', posInt('--limit'));
  policyOption(cmd, { note: 'default: the checkpoint\'s' });
  numSharedOption(cmd, { note: 'per window; default: the checkpoint\'s' });
  seedOption(cmd, { note: 'of the random policy', default: 0 });
  outOption(cmd, 'output directory for metrics.json and metrics.md (default: runs/eval-<dataset>-<split>)');
  providerOption(cmd, { note: 'falls back to cpu with a message' });
  precisionOption(cmd);
  cmd.option('--compare-precision', 'also evaluate int8 on the same windows as fp32 (a second pass) and report both mIoUs, the argmax agreement and the logit error of int8 against fp32');
  maxMemoryOption(cmd);
  checkWeightsOption(cmd);
  cmd.action(action(runEval));
}

async function runEval(o: EvalOpts): Promise<void> {
  const provider = parseProvider(o.provider);
  const policy = parsePolicy(o.policy);
  o.checkpoint = (await modelFile(o))!;
  const ckpt = await loadCheckpoint(o.checkpoint, { checkWeights: o.checkWeights });
  const ds = await openDataset(o.dataset, o.dataRoot, o.split);
  const K = ds.info.classes.length;
  if (ckpt.config.n_cls !== K) {
    throw new CtsError(`${o.checkpoint} predicts ${ckpt.config.n_cls} classes but dataset ${o.dataset} has ${K}; evaluate it on a dataset with the same classes`);
  }
  const window = ckpt.cropSize;
  const maxStride = Math.min(window[0], window[1]);
  if (o.windowStride !== undefined && o.windowStride > maxStride) {
    throw new CtsError(`--window-stride ${o.windowStride} exceeds the ${window.join('x')} window of ${o.checkpoint}; use at most ${maxStride}`);
  }
  const stride = o.windowStride ?? Math.min(ds.info.eval.windowStride, maxStride);
  const seg = await Segmenter.load(ckpt, { ...(policy ? { policy } : {}), ...(o.numShared !== undefined ? { numShared: o.numShared } : {}), windowBatch: o.windowBatch, provider, precision: o.precision, ...(o.maxMemory !== undefined ? { maxMemory: o.maxMemory } : {}) });
  const n = Math.min(ds.samples.length, o.limit ?? Infinity);
  const progress = createProgress(n, 'eval');
  let res;
  try {
    res = await evaluateDataset(seg, ds, {
      stride, multiscale: !!o.multiscale, seed: o.seed, ...(o.limit ? { limit: o.limit } : {}),
      onImage: (_d, _t, id) => progress.tick(id),
    });
  } finally {
    progress.stop();
    await seg.dispose();
  }
  const b = seg.tokenBudget;
  const report = {
    checkpoint: o.checkpoint, dataset: o.dataset, split: o.split, images: res.images, classes: ckpt.classes,
    metrics: res.confusion.metrics(), confusion: res.confusion.counts,
    protocol: {
      window, stride, multiscale: !!o.multiscale, views: evalViews(1, 1, {}, !!o.multiscale).length,
      ...(ds.info.eval.resizeShort ? { resizeShort: ds.info.eval.resizeShort } : {}),
      ...(ds.info.eval.maxLong ? { maxLong: ds.info.eval.maxLong } : {}),
    },
    policy: seg.info.policy, numShared: b.numShared, tokensPerWindow: b.numTokens, tokensNoSharing: b.gh * b.gw,
    windows: res.windows, seconds: res.seconds, provider: seg.info.provider, windowBatch: o.windowBatch, precision: seg.info.precision,
    ...(o.comparePrecision ? { precisionComparison: await compareInt8(ckpt, ds, o, { stride, policy, provider }) } : {}),
  };
  const out = o.out ?? `runs/eval-${o.dataset}-${o.split}`;
  await writeReport(out, report);
  process.stdout.write(`${reportMarkdown(report)}\nwrote metrics.json and metrics.md to ${out}\n`);
}

/**
 * int8 against fp32 over the same windows: both compiled with the same sharing budget, each window
 * run through both, the int8 result scored. The policy network computes in float32 in both, from
 * float16-stored kernels in int8, so a borderline sharing decision can differ: the comparison is of
 * the whole int8 model. A pass of its own, so the main evaluation's timing is untouched.
 */
async function compareInt8(ckpt: ModelCheckpoint, ds: SegDataset, o: EvalOpts, x: { stride: number; policy: PolicyMethod | undefined; provider: Provider }): Promise<NonNullable<EvalReport['precisionComparison']>> {
  const sharing = predictorSharing(ckpt, { policy: x.policy, numShared: o.numShared });
  const make = (precision: Precision) => Predictor.create(ckpt, { sharing, batch: o.windowBatch, crop: ckpt.cropSize, precision, provider: x.provider });
  const runner = new ComparingRunner(await make('fp32'), await make('int8'));
  const n = Math.min(ds.samples.length, o.limit ?? Infinity);
  const progress = createProgress(n, 'eval int8 vs fp32');
  try {
    const res = await evaluateDataset(runnerPredictor(runner, ckpt.normalization, x.stride), ds, {
      stride: x.stride, multiscale: !!o.multiscale, seed: o.seed, ...(o.limit ? { limit: o.limit } : {}), onImage: (_d, _t, id) => progress.tick(id),
    });
    return { metrics: res.confusion.metrics(), logits: runner.stats.result(), seconds: res.seconds };
  } finally {
    progress.stop();
    await runner.release();
  }
}

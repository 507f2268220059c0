// The Segmenter(+CTS) training loop (spec §5): one readable loop in the spirit of nanoGPT's
// train.py. Data from the worker-thread DataLoader, one compiled graph per step (forward, backward,
// update), per-iteration LR, JSONL logs, periodic evaluation, atomic checkpoints and exact resume.
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CtsError } from '../base/errors.js';
import { writeFileAtomic } from '../io/fs.node.js';
import type { HostTensor } from '../base/tensor.js';
import { createRng } from '../base/rng.js';
import { createSegmenterConfig, type SegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { saveCheckpoint } from '../cts/checkpoint.node.js';
import { VIT_NORMALIZATION, type ModelCheckpoint } from '../cts/checkpoint.js';
import { resolveSharing, type CtsSettings, type SharingSpec } from '../cts/spec.js';
import { oracleScores, randomScores } from '../cts/policies.js';
import { Predictor } from '../cts/predictor.js';
import { DataLoader, deriveSeed } from '../data/loader.js';
import { openDataset } from '../data/datasets.js';
import { trainAugmentOptions } from '../data/augment.js';
import type { DatasetInfo } from '../data/types.js';
import { evaluateDataset, runnerPredictor } from '../eval/evaluate.js';
import { dropPathFactors } from '../nn/dropout.js';
import { initState, type OptimizerOptions } from './optim.js';
import { constantSchedule, polySchedule } from './schedule.js';
import { TrainStep } from './step.js';
import { latestRunCheckpoint, loadLatestRunCheckpoint, saveRunCheckpoint, type RunState } from './checkpoints.js';
import { cutLog, RunLock, sweepTemporaries } from './run_folder.js';
import { loadInitialWeights, loadPolicyWeights } from './weights.js';
import { TrainProgress } from './progress.js';
import type { TrainConfig } from './config.js';

/** Options of trainSegmenter beyond the config. */
export interface TrainOptions {
  /** Continue from the newest checkpoint in out_dir (default true); false refuses a non-empty run. */
  resume?: boolean;
  /** Stop after this many steps in this call (for tests and interrupted runs); the run stays resumable. */
  maxSteps?: number;
  /** Progress/log lines; default: stderr. */
  log?: (line: string) => void;
  /** Aborting stops the run after the step in flight and checkpoints the last completed step. */
  signal?: AbortSignal;
}

/** What a finished (or stopped) training call reports. */
export interface TrainResult {
  outDir: string;
  step: number;
  totalSteps: number;
  lastLoss: number;
  best?: RunState['best'];
  modelPath: string;
  seconds: number;
  imagesPerSecond: number;
  /** Set when `signal` was aborted: the checkpoint holding the last completed step. */
  interrupted?: { checkpoint: string };
}

/** Model configuration of a run (dataset classes, crop and the architecture overrides). */
export function runModelConfig(cfg: TrainConfig, info: DatasetInfo): SegmenterConfig {
  return createSegmenterConfig(cfg.backbone, { ...cfg.model, n_cls: info.classes.length, image_size: cfg.crop_size, decoder: cfg.decoder, decoder_n_layers: cfg.decoder_layers });
}

/** The sharing of a run at its crop (resolveSharing's rules; the config is what the run's model will store). */
export function runSharing(cts: CtsSettings, crop: readonly [number, number], model: SegmenterConfig, numNotShared?: number): SharingSpec {
  return resolveSharing(cts, { numNotShared }, { size: crop, patchSize: model.patch_size });
}

/** CTS settings of a run, validated against the crop. */
export function runCtsSettings(cfg: TrainConfig, model: SegmenterConfig): CtsSettings {
  const stored: CtsSettings = { policy: cfg.policy_method, numShared: cfg.num_tokens_shared, ...(cfg.policy_width !== undefined ? { policyWidth: cfg.policy_width } : {}) };
  const { budget: _b, ...cts } = runSharing(stored, [cfg.crop_size, cfg.crop_size], model, cfg.num_tokens_notshared);
  return cts;
}

function optimizerOf(cfg: TrainConfig): OptimizerOptions {
  return cfg.optimizer === 'sgd'
    ? { kind: 'sgd', momentum: cfg.momentum, nesterov: true, weightDecay: cfg.weight_decay }
    : { kind: 'adamw', beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: cfg.weight_decay };
}

/** Config keys that may change between a run and its resumption. */
const RESUMABLE = new Set(['out_dir', 'workers', 'threads', 'provider', 'eval_every', 'eval_limit', 'log_every', 'checkpoint_every', 'data_root']);

/** Trains Segmenter(+CTS) as configured; resumable; returns the summary. */
export async function trainSegmenter(cfg: TrainConfig, o: TrainOptions = {}): Promise<TrainResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const out = cfg.out_dir;
  const lock = await RunLock.acquire(out, log);
  try {
    return await trainLocked(cfg, o, log);
  } finally {
    lock.release();
  }
}

async function trainLocked(cfg: TrainConfig, o: TrainOptions, log: (l: string) => void): Promise<TrainResult> {
  const out = cfg.out_dir;
  await sweepTemporaries(out);
  const train = await openDataset(cfg.dataset, cfg.data_root, 'train');
  const model = runModelConfig(cfg, train.info);
  let cts = runCtsSettings(cfg, model);
  const crop: [number, number] = [cfg.crop_size, cfg.crop_size];
  const optimizer = optimizerOf(cfg);
  const augment = trainAugmentOptions(cfg.dataset, {
    cropSize: crop,
    ...(cfg.img_scale ? { imgScale: cfg.img_scale } : cfg.dataset === 'folder' ? { imgScale: [4 * cfg.crop_size, cfg.crop_size] as [number, number] } : {}),
    ...(cfg.photometric ? {} : { photometric: null }),
  });
  const loader = await DataLoader.create(train, { batchSize: cfg.batch_size, augment: { kind: 'train', options: augment }, seed: cfg.seed, dropLast: true, ...(cfg.workers !== undefined ? { workers: cfg.workers } : {}) });
  const perEpoch = loader.stepsPerEpoch;
  const total = cfg.iterations ?? (cfg.epochs ?? 1) * perEpoch;
  if (cfg.warmup_iter >= total) throw new CtsError(`warmup_iter ${cfg.warmup_iter} must be smaller than the ${total} training steps`);
  const schedule = cfg.lr_schedule === 'constant' ? constantSchedule(cfg.learning_rate) : polySchedule({ lr: cfg.learning_rate, total, minLr: cfg.min_lr, warmup: cfg.warmup_iter });

  // state: fresh, or resumed from the newest complete checkpoint
  let params: Map<string, HostTensor>, state: Map<string, HostTensor>, policy: Map<string, HostTensor> | undefined;
  let run: RunState = { step: 0, config: cfg as unknown as Record<string, unknown>, seconds: 0 };
  const existing = o.resume === false ? await latestRunCheckpoint(out) : undefined;
  if (existing) throw new CtsError(`${out} already holds a run (${existing}); resume it or choose another --out`);
  const found = await loadLatestRunCheckpoint(out, log);
  const latest = found?.dir;
  if (found) {
    const ck = found.ck;
    const diff = Object.keys({ ...cfg, ...ck.state.config }).filter((k) => !RESUMABLE.has(k) && JSON.stringify((cfg as Record<string, unknown>)[k]) !== JSON.stringify(ck.state.config[k]));
    if (diff.length) throw new CtsError(`cannot resume ${latest}: the configuration differs in ${diff.join(', ')} (use another --out for a new run)`);
    run = ck.state;
    cts = ck.model.cts;
    params = new Map([...segmenterSpec(model).keys()].map((k) => [k, ck.model.weights.get(k)!]));
    state = ck.optimizer;
    policy = cts.policy === 'policy_net' ? new Map([...ck.model.weights].filter(([k]) => k.startsWith('policy_net.'))) : undefined;
    log(`resuming ${out} at step ${run.step}/${total}`);
  } else {
    params = cfg.pretrained ? await loadInitialWeights(cfg.pretrained, model, cfg.seed) : initSegmenterWeights(segmenterSpec(model), cfg.seed);
    state = initState(optimizer, segmenterSpec(model));
    if (cts.policy === 'policy_net') {
      const pw = await loadPolicyWeights(cfg.policynet_ckpt, cts.policyWidth);
      policy = pw.weights;
      if (pw.width !== undefined) cts = { ...cts, policyWidth: pw.width };
    }
    await writeFileAtomic(join(out, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  }
  // what a killed run logged after its checkpoint is written again, identically, by this one
  await cutLog(join(out, 'log.jsonl'), run.step);

  const step = await TrainStep.create({
    config: model, batch: cfg.batch_size, crop, optimizer, cts, policyBnMode: cfg.policy_bn,
    dropPath: cfg.drop_path, dropout: cfg.dropout, decoderDropout: cfg.decoder_dropout,
    provider: cfg.provider, ...(cfg.threads ? { threads: cfg.threads } : {}),
  });
  const snapshot = (): ModelCheckpoint => ({
    config: model, weights: new Map([...params, ...(policy ?? [])]), classes: train.info.classes, palette: train.info.palette,
    normalization: VIT_NORMALIZATION, cropSize: crop, cts, dataset: cfg.dataset,
  });
  const ckptEvery = cfg.checkpoint_every ?? cfg.eval_every ?? Math.max(1, Math.min(total, 500));
  const progress = new TrainProgress(total, run.step, log);
  const end = Math.min(total, o.maxSteps !== undefined ? run.step + o.maxSteps : total);
  const { sh, sw } = runSharing(cts, crop, model).budget;
  let windowLoss = run.window?.loss ?? 0, windowSteps = run.window?.steps ?? 0, images = 0;
  const t0 = Date.now(), secondsBefore = run.seconds;
  let lastCkpt: string | undefined = latest, ckptStep = latest ? run.step : -1;
  const checkpoint = async () => {
    run.seconds = secondsBefore + (Date.now() - t0) / 1000;
    run.window = { loss: windowLoss, steps: windowSteps };
    lastCkpt = await saveRunCheckpoint(out, snapshot(), state, run);
    ckptStep = run.step;
  };
  try {
    if (run.step < end && !o.signal?.aborted) {
      const it = loader.batches({ epoch: Math.floor(run.step / perEpoch), step: run.step % perEpoch });
      for await (const batch of it) {
        if (o.signal?.aborted) break; // the batch arrived after the stop: abandon it
        const t = run.step; // updates done so far
        const rng = createRng(deriveSeed(cfg.seed, 0x5eed, t));
        const dp = new Float32Array(2 * model.n_layers * cfg.batch_size);
        for (let i = 0; i < model.n_layers; i++) {
          const rate = model.n_layers > 1 ? (cfg.drop_path * i) / (model.n_layers - 1) : 0;
          for (const w of [0, 1]) dp.set(dropPathFactors(rate, cfg.batch_size, rng.uniform), (2 * i + w) * cfg.batch_size);
        }
        const scores = cts.policy === 'oracle'
          ? (oracleScores({ dtype: 'uint8', shape: [cfg.batch_size, crop[0], crop[1]], data: batch.labels }).data as Float32Array)
          : cts.policy === 'random' ? (randomScores(cfg.batch_size, sh * sw, deriveSeed(cfg.seed, 0x7a4d, t)).data as Float32Array) : undefined;
        const ts = Date.now();
        const r = await step.run({ params, state, ...(policy ? { policy } : {}), images: batch.images, labels: batch.labels, ...(scores ? { scores } : {}), lr: schedule(t), t: t + 1, seed: deriveSeed(cfg.seed, t) & 0x7fffffff, dropPath: dp });
        if (!Number.isFinite(r.loss)) {
          throw new CtsError(`loss is ${r.loss} at step ${t + 1}: training stopped; the last good checkpoint is ${lastCkpt ?? 'none (none was written yet)'}`);
        }
        params = r.params;
        state = r.state;
        if (r.policyStats && policy) for (const [k, v] of r.policyStats) policy.set(k, v);
        run.step = t + 1;
        windowLoss += r.loss;
        windowSteps++;
        images += cfg.batch_size;
        progress.tick(run.step, r.loss, (cfg.batch_size * 1000) / Math.max(1, Date.now() - ts));
        if (run.step % cfg.log_every === 0 || run.step === end) {
          run.lastLoss = windowLoss / windowSteps;
          const rec = { step: run.step, epoch: Math.floor((run.step - 1) / perEpoch), loss: run.lastLoss, lr: schedule(t), images_per_second: (images * 1000) / Math.max(1, Date.now() - t0), seconds: secondsBefore + (Date.now() - t0) / 1000, rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) };
          await appendFile(join(out, 'log.jsonl'), JSON.stringify(rec) + '\n');
          windowLoss = 0;
          windowSteps = 0;
        }
        if (cfg.eval_every && run.step % cfg.eval_every === 0) {
          const m = await evaluate(cfg, snapshot(), train.info, log);
          await appendFile(join(out, 'log.jsonl'), JSON.stringify({ step: run.step, eval: m }) + '\n');
          if (!run.best || m.miou > run.best.value) {
            run.best = { metric: 'mIoU', value: m.miou, step: run.step };
            await saveCheckpoint(join(out, 'best.safetensors'), snapshot());
          }
        }
        if (run.step % ckptEvery === 0 || run.step === end) await checkpoint();
        if (run.step >= end || o.signal?.aborted) break;
      }
    }
    if (o.signal?.aborted && ckptStep !== run.step) await checkpoint();
  } finally {
    progress.stop();
    await step.release();
    await loader.close();
  }
  const modelPath = join(out, 'model.safetensors');
  const interrupted = o.signal?.aborted;
  if (!interrupted || run.step >= end) await saveCheckpoint(modelPath, snapshot());
  const seconds = secondsBefore + (Date.now() - t0) / 1000;
  return {
    outDir: out, step: run.step, totalSteps: total, lastLoss: run.lastLoss ?? NaN, ...(run.best ? { best: run.best } : {}),
    modelPath, seconds, imagesPerSecond: (images * 1000) / Math.max(1, Date.now() - t0), ...(interrupted ? { interrupted: { checkpoint: lastCkpt! } } : {}),
  };
}

/** Validation mIoU (single scale, the dataset's protocol) of a model snapshot. */
async function evaluate(cfg: TrainConfig, ckpt: ModelCheckpoint, info: DatasetInfo, log: (l: string) => void) {
  const ds = await openDataset(cfg.dataset, cfg.data_root, cfg.eval_split);
  const pred = await Predictor.create(ckpt, { batch: 2, provider: cfg.provider, ...(cfg.threads ? { threads: cfg.threads } : {}) });
  try {
    const r = await evaluateDataset(runnerPredictor(pred, ckpt.normalization), ds, { stride: Math.min(info.eval.windowStride, ...ckpt.cropSize), ...(cfg.eval_limit ? { limit: cfg.eval_limit } : {}), seed: cfg.seed });
    const metrics = r.confusion.metrics();
    const m = { miou: metrics.mIoU, macc: metrics.mAcc, aacc: metrics.aAcc, images: r.images };
    log(`eval: mIoU ${(100 * m.miou).toFixed(2)}  mAcc ${(100 * m.macc).toFixed(2)}  aAcc ${(100 * m.aacc).toFixed(2)} on ${m.images} ${cfg.eval_split} images`);
    return m;
  } finally {
    await pred.release();
  }
}

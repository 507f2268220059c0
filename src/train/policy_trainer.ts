// Training the policy network (spec §2.3-2.4): EfficientNet-Lite0 + 1x1 head learns, per 32x32
// superpatch, whether it holds a single class. AdamW lr 5e-5, wd 1e-3, batch 8, constant LR, the
// dataset's resize/crop and flip, CE with ignore 255, cell accuracy on val. Unlike the official
// script it keeps both the last and the best checkpoint, and every save is one atomic file that
// holds the weights, the optimizer state and the step (so a run resumes exactly); the save before it
// stays beside it as policy_previous.safetensors, for when the last one cannot be read back.
import { appendFile, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CtsError } from '../base/errors.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.node.js';
import type { HostTensor } from '../base/tensor.js';
import { zodMessage } from '../models/config.js';
import { initPolicyNet } from '../models/policynet.js';
import { policyTargets } from '../cts/policies.js';
import { DataLoader, type LoaderAugment } from '../data/loader.js';
import { openDataset } from '../data/datasets.js';
import { POLICY_CROP, trainAugmentOptions, type AugmentDataset } from '../data/augment.js';
import { initState } from './optim.js';
import { PolicyStep, policyAccuracyGraph } from './policy_step.js';
import { TrainProgress } from './progress.js';
import { cutLog, RunLock, sweepTemporaries } from './run_folder.js';

/** Schema of a policy-network training run (official defaults). */
export const PolicyConfigSchema = z.strictObject({
  dataset: z.string().min(1),
  data_root: z.string().min(1),
  iterations: z.number().int().positive().default(50_000),
  batch_size: z.number().int().positive().default(8),
  learning_rate: z.number().positive().default(5e-5),
  weight_decay: z.number().nonnegative().default(1e-3),
  /** Channel multiplier (1 = EfficientNet-Lite0, the paper's); smaller is a cheaper policy net. */
  width: z.number().positive().max(1).default(1),
  /** Crop for datasets without an official policy pipeline (folder datasets); multiple of 32. */
  crop_size: z.number().int().positive().optional(),
  eval_every: z.number().int().positive().default(10_000),
  eval_limit: z.number().int().positive().optional(),
  log_every: z.number().int().positive().default(50),
  seed: z.number().int().nonnegative().default(0),
  workers: z.number().int().nonnegative().optional(),
  threads: z.number().int().positive().optional(),
  out_dir: z.string().min(1),
});
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;

/** Validates a policy-training config. */
export function resolvePolicyConfig(raw: Record<string, unknown>): PolicyConfig {
  const r = PolicyConfigSchema.safeParse(raw);
  if (!r.success) throw new CtsError(`policy training config is invalid: ${zodMessage(r.error)}`);
  return r.data;
}

/** Per-dataset target rules (spec §2.2): PC treats background as ignore; ADE adds the border rule. */
function targetRule(dataset: string) {
  return { zeroIsIgnore: dataset === 'pcontext', borderRule: dataset === 'ade20k' };
}

function pipeline(cfg: PolicyConfig): { augment: LoaderAugment; crop: [number, number] } {
  if (cfg.dataset in POLICY_CROP && cfg.crop_size === undefined) {
    const s = POLICY_CROP[cfg.dataset as AugmentDataset];
    return { augment: { kind: 'policy', dataset: cfg.dataset as AugmentDataset }, crop: [s, s] };
  }
  const c = cfg.crop_size;
  if (!c || c % 32) throw new CtsError(`dataset ${cfg.dataset} needs --crop-size, a multiple of 32 (got ${c ?? 'none'})`);
  const options = trainAugmentOptions(cfg.dataset, { cropSize: [c, c], imgScale: [4 * c, c], photometric: null, catMaxRatio: 1 });
  return { augment: { kind: 'train', options }, crop: [c, c] };
}

/** Grid targets of a batch of label crops [B,H,W]. */
function batchTargets(labels: Uint8Array, b: number, h: number, w: number, dataset: string): Uint8Array {
  const per = (h / 32) * (w / 32), out = new Uint8Array(b * per);
  for (let i = 0; i < b; i++) out.set(policyTargets(labels.subarray(i * h * w, (i + 1) * h * w), h, w, targetRule(dataset)), i * per);
  return out;
}

/** Result of a policy training call. */
export interface PolicyTrainResult {
  step: number;
  lastPath: string;
  bestPath?: string;
  bestAccuracy?: number;
  lastLoss: number;
  /** Set when the abort signal was aborted: the checkpoint holding the last completed step. */
  interrupted?: { checkpoint: string };
}

/** Options of trainPolicy. */
export interface PolicyTrainOptions {
  /** Stop after this many steps in this call; the run stays resumable. */
  maxSteps?: number;
  /** Progress/log lines; default: stderr. */
  log?: (l: string) => void;
  /** Aborting stops the run after the step in flight and checkpoints the last completed step. */
  signal?: AbortSignal;
}

function logWindow(raw: string | undefined, path: string): [number, number] {
  try {
    const w = JSON.parse(raw ?? '[0,0]') as unknown;
    if (Array.isArray(w) && w.length === 2 && w.every((x) => typeof x === 'number')) return w as [number, number];
  } catch {
    // reported below with the file's name
  }
  throw new CtsError(`${path}: malformed log_window metadata ${JSON.stringify(raw)}`);
}

type SafetensorsFile = Awaited<ReturnType<typeof readSafetensors>>;

/** The newest of policy_last / policy_previous that reads back, saying which it passed over. */
async function readLatest(paths: string[], log: (l: string) => void): Promise<{ path: string; file: SafetensorsFile } | undefined> {
  const present = paths.filter((p) => existsSync(p));
  for (const [i, p] of present.entries()) {
    try {
      const f = await readSafetensors(p);
      if (!Number.isInteger(Number(f.metadata.step))) throw new CtsError(`${p} holds no step`);
      return { path: p, file: f };
    } catch (e) {
      if (!(e instanceof CtsError)) throw e;
      if (i + 1 === present.length) throw new CtsError(`cannot resume from ${p}: ${e.message}`);
      log(`checkpoint ${p} is unreadable (${e.message}); falling back to ${present[i + 1]}`);
    }
  }
  return undefined;
}

/** Trains (or resumes) the policy network; writes policy_last.safetensors and policy_best.safetensors. */
export async function trainPolicy(cfg: PolicyConfig, o: PolicyTrainOptions = {}): Promise<PolicyTrainResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const lock = await RunLock.acquire(cfg.out_dir, log);
  try {
    return await trainPolicyLocked(cfg, o, log);
  } finally {
    lock.release();
  }
}

async function trainPolicyLocked(cfg: PolicyConfig, o: PolicyTrainOptions, log: (l: string) => void): Promise<PolicyTrainResult> {
  await sweepTemporaries(cfg.out_dir);
  const { augment, crop } = pipeline(cfg);
  const opt = { kind: 'adamw' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: cfg.weight_decay };
  const step = await PolicyStep.create({ batch: cfg.batch_size, crop, optimizer: opt, width: cfg.width, ...(cfg.threads ? { threads: cfg.threads } : {}) });
  const lastPath = join(cfg.out_dir, 'policy_last.safetensors'), bestPath = join(cfg.out_dir, 'policy_best.safetensors');
  const prevPath = join(cfg.out_dir, 'policy_previous.safetensors');
  let weights: Map<string, HostTensor> = initPolicyNet(cfg.seed, { width: cfg.width });
  let state: Map<string, HostTensor> = initState(opt, step.spec);
  let done = 0, best = -1, lastLoss = NaN, window = 0, count = 0;
  const found = await readLatest([lastPath, prevPath], log);
  const f = found?.file;
  // an unreadable policy_last must not replace the readable policy_previous at the next save
  let lastIsGood = found?.path === lastPath;
  if (f) {
    if (f.metadata.config !== JSON.stringify({ ...cfg, out_dir: undefined, workers: undefined, threads: undefined })) {
      throw new CtsError(`${lastPath} was trained with another configuration; choose another --out`);
    }
    weights = new Map([...f.tensors].filter(([k]) => !k.startsWith('optimizer.')));
    state = new Map([...f.tensors].filter(([k]) => k.startsWith('optimizer.')).map(([k, v]) => [k.slice('optimizer.'.length), v]));
    done = Number(f.metadata.step);
    best = Number(f.metadata.best_accuracy ?? -1);
    // the logging window open at the save, so the next logged average is the uninterrupted run's
    [window, count] = logWindow(f.metadata.log_window, lastPath);
    log(`resuming policy training at step ${done}/${cfg.iterations}`);
  }
  await cutLog(join(cfg.out_dir, 'log.jsonl'), done);
  let savedStep = f ? done : -1;
  const save = async (path: string, withOptimizer: boolean, acc?: number) => {
    if (path === lastPath && lastIsGood) await rename(lastPath, prevPath);
    const t = new Map(weights);
    if (withOptimizer) for (const [k, v] of state) t.set(`optimizer.${k}`, v);
    await writeSafetensors(path, t, {
      format: 'cts-seg/policy', policy_width: String(cfg.width), dataset: cfg.dataset, step: String(done),
      config: JSON.stringify({ ...cfg, out_dir: undefined, workers: undefined, threads: undefined }), best_accuracy: String(best),
      ...(acc !== undefined ? { val_accuracy: String(acc) } : {}), log_window: JSON.stringify([window, count]),
    });
    if (path === lastPath) {
      savedStep = done;
      lastIsGood = true;
    }
  };
  const train = await openDataset(cfg.dataset, cfg.data_root, 'train');
  const loader = await DataLoader.create(train, { batchSize: cfg.batch_size, augment, seed: cfg.seed, dropLast: true, ...(cfg.workers !== undefined ? { workers: cfg.workers } : {}) });
  const end = Math.min(cfg.iterations, o.maxSteps !== undefined ? done + o.maxSteps : cfg.iterations);
  const progress = new TrainProgress(cfg.iterations, done, log);
  try {
    if (done < end && !o.signal?.aborted) {
      for await (const b of loader.batches({ epoch: Math.floor(done / loader.stepsPerEpoch), step: done % loader.stepsPerEpoch })) {
        if (o.signal?.aborted) break; // the batch arrived after the stop: abandon it
        const targets = batchTargets(b.labels, cfg.batch_size, crop[0], crop[1], cfg.dataset);
        const ts = Date.now();
        const r = await step.run(weights, state, b.images, targets, cfg.learning_rate, done + 1);
        if (!Number.isFinite(r.loss)) throw new CtsError(`policy loss is ${r.loss} at step ${done + 1}; the last good checkpoint is ${existsSync(lastPath) ? lastPath : 'none'}`);
        weights = r.weights;
        state = r.state;
        done++;
        window += r.loss;
        count++;
        progress.tick(done, r.loss, (cfg.batch_size * 1000) / Math.max(1, Date.now() - ts));
        if (done % cfg.log_every === 0 || done === end) {
          lastLoss = window / count;
          await appendFile(join(cfg.out_dir, 'log.jsonl'), JSON.stringify({ step: done, loss: lastLoss, rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) }) + '\n');
          window = 0;
          count = 0;
        }
        if (done % cfg.eval_every === 0 || done === end) {
          const acc = await cellAccuracy(cfg, weights, crop, augment);
          log(`policy eval: cell accuracy ${(100 * acc).toFixed(2)}% at step ${done}`);
          await appendFile(join(cfg.out_dir, 'log.jsonl'), JSON.stringify({ step: done, val_accuracy: acc }) + '\n');
          if (acc > best) {
            best = acc;
            await save(bestPath, false, acc);
          }
          await save(lastPath, true, acc);
        }
        if (done >= end || o.signal?.aborted) break;
      }
    }
    if (o.signal?.aborted && savedStep !== done) await save(lastPath, true);
  } finally {
    progress.stop();
    await step.release();
    await loader.close();
  }
  const interrupted = o.signal?.aborted;
  return { step: done, lastPath, ...(existsSync(bestPath) ? { bestPath, bestAccuracy: best } : {}), lastLoss, ...(interrupted ? { interrupted: { checkpoint: lastPath } } : {}) };
}

/** Cell accuracy (ignoring 255) on the val split, through the same pipeline with a fixed seed. */
async function cellAccuracy(cfg: PolicyConfig, weights: Map<string, HostTensor>, crop: [number, number], augment: LoaderAugment): Promise<number> {
  const val = await openDataset(cfg.dataset, cfg.data_root, 'val');
  const bs = Math.min(cfg.batch_size, val.samples.length);
  const loader = await DataLoader.create(val, { batchSize: bs, augment, seed: 12345, shuffle: false, dropLast: true, workers: cfg.workers ?? 1 });
  const graph = await policyAccuracyGraph(weights, bs, crop, cfg.width);
  let correct = 0, total = 0, seen = 0;
  try {
    for await (const b of loader.epoch(0)) {
      const targets = batchTargets(b.labels, bs, crop[0], crop[1], cfg.dataset);
      const r = await graph.run({ images: { dtype: 'float32', shape: [bs, 3, crop[0], crop[1]], data: b.images }, targets: { dtype: 'uint8', shape: [bs, crop[0] / 32, crop[1] / 32], data: targets } });
      correct += (r.correct!.data as Float32Array)[0]!;
      total += (r.total!.data as Float32Array)[0]!;
      seen += bs;
      if (cfg.eval_limit && seen >= cfg.eval_limit) break;
    }
  } finally {
    await graph.release();
    await loader.close();
  }
  return total ? correct / total : NaN;
}

// `cts-seg demo`: the whole system on a built-in default, in minutes on a laptop CPU. It generates
// synthetic street scenes, trains a light policy network, trains the same Segmenter with and
// without token sharing, evaluates both, measures throughput (policy network included) and writes
// an HTML report. Every step uses the public library (the same code paths as the CLI commands).
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSynthetic } from '../data/synthetic.js';
import { openDataset } from '../data/datasets.js';
import { loadCheckpoint } from '../cts/checkpoint.node.js';
import { type ModelCheckpoint } from '../cts/checkpoint.js';
import { policyNetMacs } from '../models/policynet.js';
import { Predictor } from '../cts/predictor.js';
import { tokenBudget } from '../cts/budget.js';
import { evaluateDataset, predictImage, runnerPredictor } from '../eval/evaluate.js';
import { resolveTrainConfig } from '../train/config.js';
import { trainSegmenter } from '../train/trainer.js';
import { resolvePolicyConfig, trainPolicy } from '../train/policy_trainer.js';
import { writeDemoReport, type DemoResults, type ModelResult } from './report.js';

/** The demo's knobs; the defaults fit the 10-minute budget of a 2-core machine. */
export interface DemoOptions {
  out: string;
  size: number;
  train: number;
  val: number;
  /** Segmenter width, depth, heads. */
  dModel: number;
  layers: number;
  heads: number;
  /** Shared superpatches of the CTS model. */
  numShared: number;
  policyWidth: number;
  policySteps: number;
  segSteps: number;
  batch: number;
  benchBatch: number;
  benchIters: number;
  seed: number;
  workers?: number;
  log: (line: string) => void;
}

/** Default demo: 256x256 scenes, a 6-layer ViT of width 192, 37.5% fewer tokens with sharing. */
export const DEMO_DEFAULTS: Omit<DemoOptions, 'out' | 'log'> = {
  size: 256, train: 192, val: 32, dModel: 192, layers: 6, heads: 3, numShared: 32, policyWidth: 0.25,
  policySteps: 60, segSteps: 160, batch: 8, benchBatch: 8, benchIters: 10, seed: 0,
};

/** A much smaller configuration for tests (seconds, not minutes). */
export const DEMO_QUICK: Omit<DemoOptions, 'out' | 'log'> = {
  size: 64, train: 8, val: 4, dModel: 32, layers: 2, heads: 2, numShared: 2, policyWidth: 0.25,
  policySteps: 6, segSteps: 8, batch: 2, benchBatch: 2, benchIters: 2, seed: 0,
};

async function lossCurve(runDir: string): Promise<[number, number][]> {
  const lines = (await readFile(join(runDir, 'log.jsonl'), 'utf8')).trim().split('\n');
  const pts = new Map<number, number>();
  for (const l of lines) {
    const r = JSON.parse(l) as { step: number; loss?: number };
    if (r.loss !== undefined) pts.set(r.step, r.loss);
  }
  return [...pts].sort((a, b) => a[0] - b[0]);
}

/**
 * Median images/s of each predictor over `iters` timed batches after 2 warm-up batches (policy
 * network included). The predictors' batches alternate, so a change of machine load during the
 * timing hits every model alike (one model timed after the other measured 1.15x-1.34x for the
 * same two demo models on a busy afternoon).
 */
async function throughputs(preds: Predictor[], batch: number, size: number, iters: number): Promise<{ imagesPerSecond: number; msPerBatch: number }[]> {
  const x = { dtype: 'float32' as const, shape: [batch, 3, size, size], data: new Float32Array(batch * 3 * size * size).fill(0.1) };
  for (let i = 0; i < 2; i++) for (const p of preds) await p.run(x);
  const times = preds.map((): number[] => []);
  for (let i = 0; i < iters; i++) {
    for (const [k, p] of preds.entries()) {
      const t0 = performance.now();
      await p.run(x);
      times[k]!.push(performance.now() - t0);
    }
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    const ms = t[Math.floor(t.length / 2)]!;
    return { imagesPerSecond: (batch * 1000) / ms, msPerBatch: ms };
  });
}

/** Runs the demo end to end; returns the results that the report shows. */
export async function runDemo(o: DemoOptions): Promise<DemoResults> {
  const t0 = Date.now();
  const data = join(o.out, 'data');
  await mkdir(o.out, { recursive: true });
  o.log(`[1/5] generating ${o.train + o.val} synthetic street scenes (${o.size}x${o.size}) in ${data}`);
  await generateSynthetic(data, { train: o.train, val: o.val, height: o.size, width: o.size, seed: o.seed });
  const common = { ...(o.workers !== undefined ? { workers: o.workers } : {}), seed: o.seed };

  o.log(`[2/5] training the policy network (EfficientNet-Lite0 at width ${o.policyWidth}) for ${o.policySteps} steps`);
  const pol = await trainPolicy(resolvePolicyConfig({
    dataset: 'folder', data_root: data, iterations: o.policySteps, batch_size: o.batch, learning_rate: 2e-3, weight_decay: 1e-3,
    width: o.policyWidth, crop_size: o.size, eval_every: o.policySteps, log_every: 5, out_dir: join(o.out, 'policy'), ...common,
  }), { log: o.log });

  const budget = tokenBudget(o.size, o.size, 16, o.numShared);
  const seg = (name: string, sharing: boolean) => resolveTrainConfig(undefined, {}, {
    dataset: 'folder', data_root: data, backbone: 'custom', model: { d_model: o.dModel, n_layers: o.layers, n_heads: o.heads },
    decoder: 'mask_transformer', crop_size: o.size, batch_size: o.batch, iterations: o.segSteps, optimizer: 'adamw',
    learning_rate: 1e-3, min_lr: 1e-5, weight_decay: 0.01, warmup_iter: Math.floor(o.segSteps / 10), drop_path: 0, log_every: 5,
    checkpoint_every: o.segSteps, out_dir: join(o.out, name),
    ...(sharing ? { policy_method: 'policy_net', num_tokens_shared: o.numShared, policynet_ckpt: pol.bestPath ?? pol.lastPath } : { policy_method: 'no_sharing' }),
    ...common,
  });
  o.log(`[3/5] training Segmenter without sharing (${budget.gh * budget.gw} tokens) for ${o.segSteps} steps`);
  const base = await trainSegmenter(seg('baseline', false), { log: o.log });
  o.log(`[4/5] training Segmenter with CTS (${budget.numTokens} tokens, ${(100 * budget.reduction).toFixed(1)}% fewer) for ${o.segSteps} steps`);
  const cts = await trainSegmenter(seg('cts', true), { log: o.log });

  o.log('[5/5] evaluating both models and measuring throughput');
  const val = await openDataset('folder', data, 'val');
  const results: Omit<ModelResult, 'imagesPerSecond' | 'msPerBatch'>[] = [];
  const samples: DemoResults['samples'] = [];
  const benches: Predictor[] = [];
  for (const [name, r] of [['baseline', base], ['cts', cts]] as const) {
    const ckpt: ModelCheckpoint = await loadCheckpoint(r.modelPath);
    const pred = await Predictor.create(ckpt, { batch: 1 });
    const ev = await evaluateDataset(runnerPredictor(pred, ckpt.normalization), val, { stride: o.size, seed: o.seed });
    const m = ev.confusion.metrics();
    for (let i = 0; i < Math.min(3, val.samples.length); i++) {
      const img = await val.readImage(i);
      const p = await predictImage(pred, img, { stride: o.size, normalization: ckpt.normalization, sharedFraction: true });
      samples.push({ model: name, id: val.samples[i]!.id, image: img, classes: p.classes, ...(p.sharedFraction ? { shared: p.sharedFraction } : {}) });
    }
    await pred.release();
    benches.push(await Predictor.create(ckpt, { batch: o.benchBatch }));
    results.push({
      name, miou: m.mIoU, macc: m.mAcc, aacc: m.aAcc, iou: [...m.iou], tokens: name === 'cts' ? budget.numTokens : budget.gh * budget.gw,
      trainSeconds: r.seconds, loss: await lossCurve(join(o.out, name)), modelPath: r.modelPath,
    });
  }
  const speeds = await throughputs(benches, o.benchBatch, o.size, o.benchIters);
  for (const b of benches) await b.release();
  const models: ModelResult[] = results.map((r, i) => ({ ...r, ...speeds[i]! }));
  // the policy network's own cost, timed alone at the same batch
  const polMacs = policyNetMacs(o.size, o.size, { width: o.policyWidth });
  const out: DemoResults = {
    options: { ...o, log: undefined },
    classes: val.info.classes, palette: val.info.palette, models, samples,
    policy: { accuracy: pol.bestAccuracy ?? NaN, gmacs: polMacs / 1e9, width: o.policyWidth, steps: pol.step, loss: await lossCurve(join(o.out, 'policy')) },
    budget: { numShared: o.numShared, tokens: budget.numTokens, full: budget.gh * budget.gw, reduction: budget.reduction },
    seconds: (Date.now() - t0) / 1000,
  };
  await writeDemoReport(join(o.out, 'report.html'), out);
  return out;
}

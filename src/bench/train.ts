// Training-step benchmark (issue: "a ViT-S/16 training step at 512x512, batch 2, forward + backward
// + update, at most half the time of PyTorch 1.13 CPU with no more peak memory; resident memory
// flat over 2,000 steps"). Random weights and data: speed does not depend on the values.
import { createSegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { initPolicyNet } from '../models/policynet.js';
import { TrainStep } from '../train/step.js';
import { initState, SGD_DEFAULTS } from '../train/optim.js';
import { createRng } from '../base/rng.js';
import type { HostTensor } from '../base/tensor.js';
import { findTorchPython, pytorchScript, PytorchServer, type PytorchMalloc } from './pytorch.js';

/** Options of the training-step benchmark. */
export interface TrainBenchOptions {
  backbone: string;
  decoder: 'mask_transformer' | 'linear';
  imageSize: number;
  classes: number;
  batch: number;
  warmup: number;
  steps: number;
  numShared: number;
  /** Decoder dropout and encoder drop-path as the official recipe (0.1 / 0.1); 0 to match a plain model. */
  stochastic: boolean;
  threads?: number;
  /** Called every `every` steps with (step, rss MB) for the memory-flatness check. */
  onRss?: (step: number, rssMb: number) => void;
  every?: number;
  /** Awaited after every step (0-based index i), outside the timed region: the PyTorch step runs here. */
  between?: (i: number) => Promise<void>;
}

/** Result of the training-step benchmark. */
export interface TrainBenchResult {
  framework: string;
  ms_per_step_median: number;
  ms_per_step_min: number;
  ms_per_step_max: number;
  peak_rss_mb: number;
  compile_seconds: number;
  rss_first_mb?: number;
  rss_last_mb?: number;
  last_loss: number;
}

/** Times `steps` training steps after `warmup` ones. */
export async function benchTrainStep(o: TrainBenchOptions): Promise<TrainBenchResult> {
  const size = o.imageSize, b = o.batch;
  const config = createSegmenterConfig(o.backbone, { n_cls: o.classes, image_size: size, decoder: o.decoder });
  // the step resolves the sharing: S = 0 is the plain Segmenter
  const cts = { policy: 'policy_net' as const, numShared: o.numShared };
  const t0 = Date.now();
  const step = await TrainStep.create({
    config, batch: b, crop: [size, size], optimizer: SGD_DEFAULTS, cts,
    dropPath: o.stochastic ? 0.1 : 0, decoderDropout: o.stochastic ? 0.1 : 0, ...(o.threads ? { threads: o.threads } : {}),
  });
  const compile = (Date.now() - t0) / 1000;
  let params: Map<string, HostTensor> = initSegmenterWeights(segmenterSpec(config), 0);
  let state: Map<string, HostTensor> = initState(SGD_DEFAULTS, step.spec);
  const policy = step.policySpec.size > 0 ? new Map([...initPolicyNet(0)].map(([k, v]) => [`policy_net.${k}`, v])) : undefined;
  const r = createRng(1);
  const images = Float32Array.from({ length: b * 3 * size * size }, () => r.uniform() * 2 - 1);
  const labels = Uint8Array.from({ length: b * size * size }, () => Math.floor(r.uniform() * o.classes));
  const dropPath = new Float32Array(2 * config.n_layers * b).fill(1);
  const times: number[] = [];
  let loss = NaN, first: number | undefined, last: number | undefined;
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const ts = performance.now();
    const out = await step.run({ params, state, ...(policy ? { policy } : {}), images, labels, lr: 1e-3, t: i + 1, seed: i, dropPath });
    if (i >= o.warmup) times.push(performance.now() - ts);
    params = out.params;
    state = out.state;
    loss = out.loss;
    await o.between?.(i);
    if (o.every && (i + 1) % o.every === 0) {
      const rss = process.memoryUsage().rss / 2 ** 20;
      first ??= rss;
      last = rss;
      o.onRss?.(i + 1, rss);
    }
  }
  await step.release();
  times.sort((a, c) => a - c);
  return {
    framework: 'cts-seg (onnxruntime-node)', ms_per_step_median: times[Math.floor(times.length / 2)]!, ms_per_step_min: times[0]!,
    ms_per_step_max: times[times.length - 1]!, peak_rss_mb: process.resourceUsage().maxRSS / 1024, compile_seconds: compile,
    ...(first !== undefined ? { rss_first_mb: first, rss_last_mb: last! } : {}), last_loss: loss,
  };
}

/**
 * benchTrainStep with bench/pytorch_train_step.py's steps alternated with ours (PyTorch in its own
 * process, so each side's peak memory is its own): a change of machine load during the run hits
 * both alike, which a run of one after the other does not. Without torch, or if the PyTorch side
 * fails, `pytorch` says why it was skipped and the cts-seg timing stands. `malloc` sets up
 * PyTorch's allocator (see PytorchMalloc).
 */
export async function benchTrainVsPytorch(o: TrainBenchOptions, python?: string, malloc: PytorchMalloc = 'default'): Promise<{ ours: TrainBenchResult; pytorch: Record<string, unknown> }> {
  const found = findTorchPython(python);
  if (!found.python) return { ours: await benchTrainStep(o), pytorch: { skipped: found.reason } };
  let server: PytorchServer | undefined;
  let skipped: string | undefined;
  try {
    server = await PytorchServer.launch(found.python, pytorchScript('pytorch_train_step.py'), [
      '--backbone', o.backbone, '--decoder', o.decoder, '--image-size', String(o.imageSize), '--classes', String(o.classes),
      '--batch', String(o.batch), ...(o.threads ? ['--threads', String(o.threads)] : []),
    ], malloc);
  } catch (e) {
    skipped = e instanceof Error ? e.message : String(e);
  }
  const times: number[] = [];
  let loss = NaN;
  try {
    const ours = await benchTrainStep({
      ...o,
      between: async (i) => {
        if (!server || skipped) return;
        try {
          const r = await server.request('step');
          if (i >= o.warmup) times.push(r.ms);
          loss = Number(r.loss);
        } catch (e) {
          skipped = e instanceof Error ? e.message : String(e);
        }
      },
    });
    if (!server || skipped) return { ours, pytorch: { skipped } };
    const info = await server.close();
    times.sort((a, c) => a - c);
    return {
      ours,
      pytorch: {
        framework: `pytorch ${info.torch_version}`, blas: info.blas, threads: info.threads, malloc, interleaved: true,
        ms_per_step_median: times[Math.floor(times.length / 2)], ms_per_step_min: times[0], ms_per_step_max: times[times.length - 1],
        peak_rss_mb: info.peak_rss_mb, last_loss: loss,
      },
    };
  } finally {
    server?.kill();
  }
}

// One Segmenter(+CTS) training step as one graph: forward with drop-path and dropout, mean
// cross-entropy (ignore 255), backward by our autodiff, and the optimizer update. Parameters and
// optimizer state go in as inputs and come back as outputs; the host only swaps buffers.
import { Graph, cast, reshape, slice, softmaxCrossEntropy, upsampledCrossEntropy, type Value } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { dropout, dropPath } from '../nn/dropout.js';
import { inputParams, type ParamSpec } from '../nn/params.js';
import type { SegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { policyNetSpec } from '../models/policynet.js';
import { resolveSharing, type CtsSettings } from '../cts/spec.js';
import { buildCtsSegmenter, type PolicySource } from '../cts/segmenter.js';
import { appendTrainingUpdate, updateFeeds, type OptimizerOptions } from './optim.js';

/** What a training step is built for. */
export interface TrainStepOptions {
  config: SegmenterConfig;
  batch: number;
  crop: [number, number];
  optimizer: OptimizerOptions;
  cts: CtsSettings;
  /** Policy-net BatchNorm during Segmenter training: 'eval' (frozen, default) or 'train' (the official behaviour). */
  policyBnMode?: 'eval' | 'train';
  /** Encoder stochastic depth: rates linspace(0, dropPath, depth) (official default 0.1; here 0 when omitted). The per-step factors come from the host. */
  dropPath?: number;
  /** Encoder dropout (after the positional embedding and inside the blocks; official default 0). */
  dropout?: number;
  /** Decoder dropout (official mask transformer: 0.1). */
  decoderDropout?: number;
  provider?: Provider;
  threads?: number;
}

/** Per-step host inputs. */
export interface StepInputs {
  params: Map<string, HostTensor>;
  state: Map<string, HostTensor>;
  /** Policy-net weights and BN buffers (`policy_net.*`) when the policy is the network. */
  policy?: Map<string, HostTensor>;
  /** Normalised images [B,3,H,W]. */
  images: Float32Array;
  /** Labels [B,H,W], 255 = ignore. */
  labels: Uint8Array;
  /** Share scores [B, superpatches] for the oracle and random policies. */
  scores?: Float32Array;
  lr: number;
  /** 1-based optimizer step (AdamW bias correction). */
  t: number;
  /** Seed of this step's dropout masks (non-negative, < 2^31). */
  seed: number;
  /** Drop-path factors [2*depth, B]: 0 or 1/(1-rate) per residual branch and sample. */
  dropPath: Float32Array;
}

/** Results of one step. */
export interface StepOutputs {
  loss: number;
  params: Map<string, HostTensor>;
  state: Map<string, HostTensor>;
  /** Updated policy-net BN running stats (train-mode BN only). */
  policyStats?: Map<string, HostTensor>;
}

/** A compiled training step. */
export class TrainStep {
  private constructor(
    private readonly session: CompiledGraph,
    readonly options: TrainStepOptions,
    /** Trainable parameters. */
    readonly spec: ParamSpec,
    /** Policy-net inputs (weights and float buffers). */
    readonly policySpec: ParamSpec,
    readonly policyStatNames: string[],
  ) {}

  /** Builds and compiles the step graph. */
  static async create(o: TrainStepOptions): Promise<TrainStep> {
    const { config, batch, crop } = o;
    const sharing = resolveSharing(o.cts, {}, { size: crop, patchSize: config.patch_size });
    const S = sharing.numShared;
    const budget = S > 0 ? sharing.budget : undefined;
    const g = new Graph();
    const spec = segmenterSpec(config);
    const { p: pSeg, inputs } = inputParams(g, spec);
    const policySpec: ParamSpec = new Map();
    if (sharing.policy === 'policy_net') {
      for (const [k, v] of policyNetSpec(sharing.policyWidth !== undefined ? { width: sharing.policyWidth } : {})) {
        if (v.dtype === 'float32') policySpec.set(`policy_net.${k}`, v);
      }
    }
    const { p: pPol } = inputParams(g, policySpec);
    const p = (name: string) => (name.startsWith('policy_net.') ? pPol(name) : pSeg(name));
    const x = g.input('images', [batch, 3, crop[0], crop[1]]);
    const labels = g.input('labels', [batch, crop[0], crop[1]], 'uint8');
    const seed = g.input('seed', [], 'int64');
    const depth = config.n_layers;
    const dp = g.input('drop_path', [2 * depth, batch]);
    let policy: PolicySource | undefined;
    if (budget && sharing.policy === 'policy_net') policy = { kind: 'policy_net', bnMode: o.policyBnMode ?? 'eval', ...(sharing.policyWidth !== undefined ? { width: sharing.policyWidth } : {}) };
    else if (budget) policy = { kind: 'scores', scores: g.input('scores', [batch, budget.sh * budget.sw]) };
    const sites = new Map<string, number>();
    const site = (name: string) => {
      if (!sites.has(name)) sites.set(name, sites.size);
      return sites.get(name)!;
    };
    const encDrop = o.dropout ?? 0, decDrop = o.decoderDropout ?? 0.1, dpRate = o.dropPath ?? 0;
    const out = buildCtsSegmenter(x, p, config, {
      numShared: S,
      ...(policy ? { policy } : {}),
      afterEmbed: (t) => dropout(t, encDrop, seed, site('encoder.dropout')),
      encoderHooks: {
        // Blocks whose drop-path rate is 0 (the first, or all when drop_path is 0) get no multiply:
        // the factor would always be 1, and skipping it saves a stored activation per branch.
        branch: (y, block, which) => {
          const i = Number(block.split('.')[2]);
          if (!(dpRate > 0) || i === 0) return y;
          const row = reshapeRow(dp, 2 * i + (which === 'mlp' ? 1 : 0), batch);
          return dropPath(y, row);
        },
        drop: (t, s) => dropout(t, encDrop, seed, site(s)),
      },
      decoderHooks: { drop: (t, s) => dropout(t, decDrop, seed, site(s)) },
    });
    // Without padding the logits are exactly the x16 upsampling of the mask logits: the fused loss then
    // recomputes them per image in the backward instead of holding them (the step's memory peak).
    const unpadded = out.masksGrid.shape[2]! * config.patch_size === crop[0] && out.masksGrid.shape[3]! * config.patch_size === crop[1];
    const y = cast(labels, 'int64');
    const loss = unpadded ? upsampledCrossEntropy(out.masksGrid, y, 255) : softmaxCrossEntropy(out.logits, y, 255);
    g.output('loss', loss);
    appendTrainingUpdate(g, o.optimizer, loss, spec, inputs);
    const statNames: string[] = [];
    for (const [k, v] of out.policyStats ?? []) {
      g.output(`new:${k}`, v);
      statNames.push(k);
    }
    const session = await CompiledGraph.compile(g, { ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}) });
    return new TrainStep(session, o, spec, policySpec, statNames);
  }

  /** Runs one step. */
  async run(i: StepInputs): Promise<StepOutputs> {
    const { batch, crop } = this.options;
    const feeds: Record<string, HostTensor> = {
      ...updateFeeds(this.options.optimizer, i.lr, i.t),
      images: { dtype: 'float32', shape: [batch, 3, crop[0], crop[1]], data: i.images },
      labels: { dtype: 'uint8', shape: [batch, crop[0], crop[1]], data: i.labels },
      seed: { dtype: 'int64', shape: [], data: BigInt64Array.of(BigInt(i.seed)) },
      drop_path: { dtype: 'float32', shape: [2 * this.options.config.n_layers, batch], data: i.dropPath },
    };
    if (i.scores) feeds.scores = { dtype: 'float32', shape: [batch, i.scores.length / batch], data: i.scores };
    for (const [k, v] of i.params) feeds[k] = v;
    for (const [k, v] of i.state) feeds[k] = v;
    for (const k of this.policySpec.keys()) {
      const v = i.policy?.get(k);
      if (!v) throw new CtsError(`policy-network weight ${k} missing for the policy_net policy`);
      feeds[k] = v;
    }
    const res = await this.session.run(feeds);
    const params = new Map([...this.spec.keys()].map((k) => [k, res[`new:${k}`]!]));
    const state = new Map([...i.state.keys()].map((k) => [k, res[`new:${k}`]!]));
    const policyStats = this.policyStatNames.length ? new Map(this.policyStatNames.map((k) => [k, res[`new:${k}`]!])) : undefined;
    return { loss: (res.loss!.data as Float32Array)[0]!, params, state, ...(policyStats ? { policyStats } : {}) };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Row `row` of the drop-path factor matrix as a [B] vector. */
function reshapeRow(dp: Value, row: number, batch: number): Value {
  return reshape(slice(dp, [row], [row + 1], [0]), [batch]);
}

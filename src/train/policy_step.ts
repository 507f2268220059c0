// The policy network's training step (spec §2.4): EfficientNet-Lite0 + 1x1 head in train-mode
// BatchNorm, cross-entropy over the superpatch grid (ignore 255), AdamW update, running statistics
// returned as outputs. Also an eval graph for cell accuracy.
import { Graph, argMax, cast, equal, not, reduceSum, softmaxCrossEntropy, mul } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import type { HostTensor } from '../base/tensor.js';
import { constantParams, inputParams, type ParamSpec } from '../nn/params.js';
import { buildPolicyNet, policyNetSpec } from '../models/policynet.js';
import { appendTrainingUpdate, updateFeeds, type OptimizerOptions } from './optim.js';

/** Options of the policy training step. */
export interface PolicyStepOptions {
  batch: number;
  crop: [number, number];
  optimizer: OptimizerOptions;
  width?: number;
  provider?: Provider;
  threads?: number;
}

/** A compiled policy-net training step. */
export class PolicyStep {
  private constructor(
    private readonly session: CompiledGraph,
    readonly options: PolicyStepOptions,
    /** Trainable weights (conv weights, BN affine, head). */
    readonly spec: ParamSpec,
    /** BN running buffers (inputs, updated as outputs). */
    readonly buffers: ParamSpec,
  ) {}

  /** Builds the step graph. */
  static async create(o: PolicyStepOptions): Promise<PolicyStep> {
    const full = policyNetSpec(o.width !== undefined ? { width: o.width } : {});
    const spec: ParamSpec = new Map(), buffers: ParamSpec = new Map();
    for (const [k, v] of full) {
      if (/running_(mean|var)$/.test(k)) buffers.set(k, v);
      else if (v.dtype === 'float32') spec.set(k, v);
    }
    const g = new Graph();
    const { p: pw, inputs } = inputParams(g, spec);
    const { p: pb } = inputParams(g, buffers);
    const p = (n: string) => (buffers.has(n) ? pb(n) : pw(n));
    const x = g.input('images', [o.batch, 3, o.crop[0], o.crop[1]]);
    const y = g.input('targets', [o.batch, o.crop[0] / 32, o.crop[1] / 32], 'uint8');
    const net = buildPolicyNet(x, p, { bnMode: 'train', ...(o.width !== undefined ? { width: o.width } : {}) });
    const loss = softmaxCrossEntropy(net.logits, cast(y, 'int64'), 255);
    g.output('loss', loss);
    appendTrainingUpdate(g, o.optimizer, loss, spec, inputs);
    for (const [k, v] of net.runningStats) g.output(`new:${k}`, v);
    const session = await CompiledGraph.compile(g, { ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}) });
    return new PolicyStep(session, o, spec, buffers);
  }

  /** One step: returns the loss and the updated weights, buffers and optimizer state. */
  async run(weights: Map<string, HostTensor>, state: Map<string, HostTensor>, images: Float32Array, targets: Uint8Array, lr: number, t: number) {
    const { batch, crop } = this.options;
    const feeds: Record<string, HostTensor> = {
      ...updateFeeds(this.options.optimizer, lr, t),
      images: { dtype: 'float32', shape: [batch, 3, crop[0], crop[1]], data: images },
      targets: { dtype: 'uint8', shape: [batch, crop[0] / 32, crop[1] / 32], data: targets },
    };
    for (const k of [...this.spec.keys(), ...this.buffers.keys()]) feeds[k] = weights.get(k)!;
    for (const [k, v] of state) feeds[k] = v;
    const res = await this.session.run(feeds);
    const next = new Map(weights);
    for (const k of [...this.spec.keys(), ...this.buffers.keys()]) next.set(k, res[`new:${k}`]!);
    // PyTorch counts BN forward passes in train mode; kept for checkpoint compatibility
    for (const [k, v] of weights) {
      if (k.endsWith('num_batches_tracked')) next.set(k, { ...v, data: BigInt64Array.of((v.data as BigInt64Array)[0]! + 1n) });
    }
    const nextState = new Map([...state.keys()].map((k) => [k, res[`new:${k}`]!]));
    return { loss: (res.loss!.data as Float32Array)[0]!, weights: next, state: nextState };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Compiles an eval-mode graph that counts correct cells (ignoring 255) for a batch. */
export async function policyAccuracyGraph(weights: Map<string, HostTensor>, batch: number, crop: [number, number], width?: number, provider?: Provider) {
  const g = new Graph();
  const x = g.input('images', [batch, 3, crop[0], crop[1]]);
  const y = cast(g.input('targets', [batch, crop[0] / 32, crop[1] / 32], 'uint8'), 'int64');
  const net = buildPolicyNet(x, constantParams(g, weights), { bnMode: 'eval', ...(width !== undefined ? { width } : {}) });
  const pred = argMax(net.logits, 1);
  const valid = cast(not(equal(y, 255)), 'float32');
  g.output('correct', reduceSum(mul(cast(equal(pred, y), 'float32'), valid)));
  g.output('total', reduceSum(valid));
  g.output('logits', net.logits);
  return CompiledGraph.compile(g, provider ? { provider } : {});
}

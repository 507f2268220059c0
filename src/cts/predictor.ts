// Batched inference at a fixed crop: compiles the Segmenter(+CTS) graph once with the weights baked
// in, then runs windows through it. Evaluation, inference and benchmarks all go through here.
import { Graph } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import { CtsError } from '../io/errors.js';
import type { HostTensor } from '../io/tensor.js';
import { constantParams } from '../nn/params.js';
import type { ModelCheckpoint, PolicyMethod } from '../models/checkpoint.js';
import { buildCtsSegmenterMicroBatched, defaultMicroBatch, type PolicySource } from './segmenter.js';
import { tokenBudget, type TokenBudget } from './budget.js';

/** Options of Predictor.create. */
export interface PredictorOptions {
  /** Static batch size of the compiled graph (smaller batches are zero-padded). Default 1. */
  batch?: number;
  /** Window size (default: the checkpoint's crop). */
  crop?: [number, number];
  /** Override the checkpoint's policy / budget (e.g. 'no_sharing' for a baseline timing). */
  policy?: PolicyMethod;
  numShared?: number;
  provider?: Provider;
  threads?: number;
  /** Images per micro-batch inside the graph (default: defaultMicroBatch, 2 for ViT-S at 512x512 and up, else the batch). */
  microBatch?: number;
}

/** Output of one batch. */
export interface Prediction {
  /** [b,K,h,w] float32 logits (pre-softmax). */
  logits: HostTensor;
  /** [b,h/32,w/32] uint8, 1 = shared superpatch (when sharing). */
  maskShared?: HostTensor;
}

/** A compiled model at one window size and batch. */
export class Predictor {
  private constructor(
    private readonly session: CompiledGraph,
    /** Window (height, width). */
    readonly crop: [number, number],
    /** Static batch. */
    readonly batch: number,
    /** Policy actually used. */
    readonly policy: PolicyMethod,
    /** Token budget (numShared 0 without sharing). */
    readonly budget: TokenBudget,
    readonly numClasses: number,
  ) {}

  /** Compiles the model for a window size and batch. */
  static async create(ckpt: ModelCheckpoint, o: PredictorOptions = {}): Promise<Predictor> {
    const crop = o.crop ?? ckpt.cropSize;
    const batch = o.batch ?? 1;
    let policy = o.policy ?? ckpt.cts.policy;
    const S = policy === 'no_sharing' ? 0 : (o.numShared ?? ckpt.cts.numShared);
    if (S === 0) policy = 'no_sharing';
    if (policy === 'policy_net' && !ckpt.weights.has('policy_net.head.weight')) {
      throw new CtsError('the policy_net policy needs policy-network weights (policy_net.*) in the checkpoint');
    }
    const budget = S > 0 ? tokenBudget(crop[0], crop[1], ckpt.config.patch_size, S) : plainBudget(crop, ckpt.config.patch_size);
    const g = new Graph();
    const x = g.input('input', [batch, 3, crop[0], crop[1]]);
    let source: PolicySource | undefined;
    if (policy === 'policy_net') source = { kind: 'policy_net', bnMode: 'eval', ...(ckpt.cts.policyWidth !== undefined ? { width: ckpt.cts.policyWidth } : {}) };
    else if (policy === 'oracle' || policy === 'random') source = { kind: 'scores', scores: g.input('policy_scores', [batch, budget.sh * budget.sw]) };
    const { logits, maskShared } = buildCtsSegmenterMicroBatched(x, constantParams(g, ckpt.weights), ckpt.config, {
      numShared: S, microBatch: o.microBatch ?? defaultMicroBatch(ckpt.config, crop[0], crop[1], batch), ...(source ? { policy: source } : {}),
    });
    g.output('logits', logits);
    if (maskShared) g.output('mask_shared', maskShared);
    const session = await CompiledGraph.compile(g, { ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}) });
    return new Predictor(session, crop, batch, policy, budget, ckpt.config.n_cls);
  }

  /** Execution provider in use. */
  get provider(): Provider {
    return this.session.provider;
  }

  /** Whether run() needs `scores` (oracle and random policies). */
  get needsScores(): boolean {
    return this.policy === 'oracle' || this.policy === 'random';
  }

  /**
   * Runs up to `batch` normalised windows [b,3,h,w]; `scores` [b, h/32*w/32] for oracle/random.
   * Returns exactly b results.
   */
  async run(x: HostTensor, scores?: HostTensor): Promise<Prediction> {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    if (x.shape.length !== 4 || c !== 3 || h !== this.crop[0] || w !== this.crop[1] || b > this.batch || b < 1) {
      throw new CtsError(`predictor expects [1..${this.batch},3,${this.crop[0]},${this.crop[1]}] windows, got [${x.shape.join(',')}]`);
    }
    if (this.needsScores && !scores) throw new CtsError(`the ${this.policy} policy needs share scores for each window`);
    const feeds: Record<string, HostTensor> = { input: padBatch(x, this.batch) };
    if (this.needsScores) feeds.policy_scores = padBatch(scores!, this.batch);
    const res = await this.session.run(feeds);
    return {
      logits: takeBatch(res.logits!, b),
      ...(res.mask_shared ? { maskShared: takeBatch(res.mask_shared, b) } : {}),
    };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

function plainBudget(crop: [number, number], patch: number): TokenBudget {
  const gh = Math.ceil(crop[0] / patch), gw = Math.ceil(crop[1] / patch);
  return { gh, gw, sh: Math.floor(gh / 2), sw: Math.floor(gw / 2), numShared: 0, numNotShared: gh * gw, numTokens: gh * gw, reduction: 0 };
}

function padBatch(t: HostTensor, batch: number): HostTensor {
  const b = t.shape[0]!;
  if (b === batch) return t;
  const per = t.data.length / b;
  const data = new (t.data.constructor as new (n: number) => HostTensor['data'])(per * batch);
  (data as Float32Array).set(t.data as Float32Array);
  return { dtype: t.dtype, shape: [batch, ...t.shape.slice(1)], data };
}

function takeBatch(t: HostTensor, b: number): HostTensor {
  if (t.shape[0] === b) return t;
  const per = t.data.length / t.shape[0]!;
  return { dtype: t.dtype, shape: [b, ...t.shape.slice(1)], data: t.data.subarray(0, per * b) as HostTensor['data'] };
}

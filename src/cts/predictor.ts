// Batched inference at a fixed crop: compiles the Segmenter(+CTS) graph once with the weights baked
// in, then runs windows through it. Evaluation, inference and benchmarks all go through here.
import { Graph } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { constantParams, type Precision } from '../nn/params.js';
import type { ModelCheckpoint } from './checkpoint.js';
import type { PolicyMethod } from './spec.js';
import { buildCtsSegmenterMicroBatched, defaultMicroBatch, type PolicySource } from './segmenter.js';
import type { TokenBudget } from './budget.js';
import { resolveSharing, type SharingSpec } from './spec.js';
import { checkGraphMemory } from './memory.js';

/** Options of Predictor.create. */
export interface PredictorOptions {
  /** Static batch size of the compiled graph (smaller batches are zero-padded). Default 1. */
  batch?: number;
  /** Window size (default: the checkpoint's crop). */
  crop?: [number, number];
  /** Override the checkpoint's policy / budget (e.g. 'no_sharing' for a baseline timing); see resolveSharing. */
  policy?: PolicyMethod;
  numShared?: number;
  /** An already resolved sharing decision (takes precedence over policy and numShared). */
  sharing?: SharingSpec;
  provider?: Provider | Provider[];
  threads?: number;
  /** Called with a message when a preferred provider is not available (default: console.warn). */
  onFallback?: (message: string) => void;
  /** Largest estimated graph memory in bytes (default: the machine's memory, see cts/memory.ts). */
  maxMemory?: number;
  /** Images per micro-batch inside the graph (default: defaultMicroBatch, 2 for ViT-S at 512x512 and up, else the batch). */
  microBatch?: number;
  /** float32 (default) or int8 products (see constantParams). */
  precision?: Precision;
}

/** Output of one batch. */
export interface Prediction {
  /** [b,K,h,w] float32 logits (pre-softmax). */
  logits: HostTensor;
  /** [b,h/32,w/32] uint8, 1 = shared superpatch (when sharing). */
  maskShared?: HostTensor;
}

/** Output of WindowRunner.runPixels for one window. */
export interface PixelPrediction {
  /** [h*w] class ids: the model's argmax over the classes (first index wins ties). */
  classMap: Uint8Array;
  /** [1,h/32,w/32] uint8, 1 = shared superpatch (when sharing). */
  maskShared?: HostTensor;
}

/**
 * Something that segments fixed-size normalised windows: a Predictor (a checkpoint compiled here) or
 * an exported ONNX model. The sliding window and the Segmenter API work on this interface.
 */
export interface WindowRunner {
  /** Window (height, width). */
  readonly crop: [number, number];
  /** Most windows per run() call. */
  readonly batch: number;
  readonly numClasses: number;
  /** Policy actually used. */
  readonly policy: PolicyMethod;
  /** Token budget of one window (numShared 0 without sharing). */
  readonly budget: TokenBudget;
  /** Whether run() needs `scores` (oracle and random policies). */
  readonly needsScores: boolean;
  /** Execution provider in use. */
  readonly provider: Provider;
  /** Runs 1..batch normalised windows [b,3,h,w] (`scores` [b, h/32*w/32] for oracle/random); exactly b results. */
  run(x: HostTensor, scores?: HostTensor): Promise<Prediction>;
  /**
   * Optional shortcut for one window that is a whole view (unresized, unflipped, exactly the window's
   * size): its 8-bit RGB pixels [h*w*3] straight to the model's own class map, so that the logits
   * never leave the runtime. Offered by exports that take uint8 pixels (`withPreprocessing`); equal to
   * run() followed by the host argmax.
   */
  readonly runPixels?: (rgb: Uint8Array) => Promise<PixelPrediction>;
  /** Frees the session. */
  release(): Promise<void>;
}

/** A compiled model at one window size and batch. */
export class Predictor implements WindowRunner {
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
    const spec = o.sharing ?? predictorSharing(ckpt, o, crop);
    const { policy, numShared: S, budget } = spec;
    const microBatch = o.microBatch ?? defaultMicroBatch(ckpt.config, crop[0], crop[1], batch);
    checkGraphMemory(ckpt.config, { size: crop, batch, microBatch, tokens: budget.numTokens }, o.maxMemory);
    const g = new Graph();
    const x = g.input('input', [batch, 3, crop[0], crop[1]]);
    let source: PolicySource | undefined;
    if (policy === 'policy_net') source = { kind: 'policy_net', bnMode: 'eval', ...(spec.policyWidth !== undefined ? { width: spec.policyWidth } : {}) };
    else if (policy === 'oracle' || policy === 'random') source = { kind: 'scores', scores: g.input('policy_scores', [batch, budget.sh * budget.sw]) };
    const { logits, maskShared } = buildCtsSegmenterMicroBatched(x, constantParams(g, ckpt.weights, { precision: o.precision ?? 'fp32' }), ckpt.config, {
      numShared: S, microBatch, ...(source ? { policy: source } : {}),
    });
    g.output('logits', logits);
    if (maskShared) g.output('mask_shared', maskShared);
    const session = await CompiledGraph.compile(g, {
      ...(o.provider ? { provider: o.provider } : {}), ...(o.threads ? { threads: o.threads } : {}), ...(o.onFallback ? { onFallback: o.onFallback } : {}),
    });
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

/** The sharing of a checkpoint compiled at `crop` with a user's overrides (see resolveSharing). */
export function predictorSharing(ckpt: ModelCheckpoint, o: Pick<PredictorOptions, 'policy' | 'numShared'>, crop: readonly [number, number] = ckpt.cropSize): SharingSpec {
  return resolveSharing(ckpt.cts, { policy: o.policy, numShared: o.numShared }, {
    size: crop, patchSize: ckpt.config.patch_size, storedSize: ckpt.cropSize, hasPolicyNet: ckpt.weights.has('policy_net.head.weight'),
  });
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

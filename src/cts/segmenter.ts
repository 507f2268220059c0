// Segmenter + CTS: the policy decides which superpatches share a token, the sharing layout feeds
// the reduced token set through the unchanged ViT and decoder, and unsharing restores the grid.
import { GraphError, concat, slice, type Value } from '../graph/index.js';
import type { ParamFn } from '../nn/params.js';
import type { SegmenterConfig } from '../models/config.js';
import { buildSegmenter, type SegmenterBuildOptions, type SegmenterOutputs } from '../models/segmenter.js';
import { buildPolicyNet } from '../models/policynet.js';
import { tokenBudget, type TokenBudget } from './budget.js';
import { planSharing, shareScores, sharingLayout, type SharingPlan } from './sharing.js';

/**
 * Where the sharing scores come from:
 * - `logits`: policy logits [B,2,H/32,W/32] given as a graph value (e.g. an input);
 * - `scores`: p(share) [B, H/32*W/32] given directly (oracle and random policies);
 * - `policy_net`: the EfficientNet-Lite0 policy network inside the graph, parameters `policy_net.*`.
 */
export type PolicySource =
  | { kind: 'logits'; logits: Value }
  | { kind: 'scores'; scores: Value }
  | { kind: 'policy_net'; bnMode?: 'eval' | 'train'; width?: number };

/** Options of buildCtsSegmenter. */
export interface CtsBuildOptions extends Omit<SegmenterBuildOptions, 'layout' | 'padMultiple'> {
  /** Shared superpatches S; 0 (or omitted) runs the plain Segmenter. */
  numShared?: number;
  /** Optional N1 to validate against S. */
  numNotShared?: number;
  policy?: PolicySource;
}

/** Outputs of the CTS Segmenter graph. */
export interface CtsOutputs extends SegmenterOutputs {
  budget: TokenBudget;
  /** Present when sharing is on. */
  plan?: SharingPlan;
  /** Policy logits when computed in-graph or given. */
  policyLogits?: Value;
  /** Updated policy-net BatchNorm buffers (train-mode BN only), by state-dict name. */
  policyStats?: Map<string, Value>;
}

/**
 * Images per micro-batch of an inference graph whose per-image attention maps are large. A batch is
 * then run as a sequence of independent micro-batches inside one graph: each one's activations stay
 * in cache between its matmuls and elementwise passes, and the matmuls run nearer MLAS's peak.
 * Measured for ViT-S 512x512 (25 MB of attention maps per image), batch 8, 2 CPU threads: 2.08
 * images/s in micro-batches of 1 or 2 against 1.87 in one piece. Small models do not gain: the
 * demo's (256 tokens, <1 MB of maps per image, batch 8) ran its CTS graph 2-7% slower in
 * micro-batches of 2 (its baseline 2-6% faster), the per-node overhead of four graphs' worth of
 * small nodes outweighing any cache gain; defaultMicroBatch keeps those in one piece.
 */
export const MICRO_BATCH = 2;

/** Attention maps per image from which micro-batches pay (ViT-S at 512x512 has 25 MB, ViT-Ti 13). */
const MICRO_BATCH_FROM_BYTES = 16 * 2 ** 20;

/**
 * The default micro-batch for `batch` images of h x w: MICRO_BATCH where one image's encoder
 * attention maps (heads x N^2 floats, N tokens without sharing) reach MICRO_BATCH_FROM_BYTES, else
 * the whole batch in one piece.
 */
export function defaultMicroBatch(cfg: SegmenterConfig, h: number, w: number, batch: number): number {
  const n = Math.ceil(h / cfg.patch_size) * Math.ceil(w / cfg.patch_size) + 1;
  return cfg.n_heads * n * n * 4 >= MICRO_BATCH_FROM_BYTES ? Math.min(MICRO_BATCH, batch) : batch;
}

/**
 * Builds `build` on consecutive micro-batches of `micro` images of x [B,...] (start offset and size
 * given) and concatenates each of its outputs along axis 0. ORT runs a graph depth-first from its
 * outputs, so one micro-batch finishes before the next starts and its temporaries are freed.
 */
export function inMicroBatches(x: Value, micro: number, build: (xb: Value, start: number, size: number) => Value[]): Value[] {
  const B = x.shape[0]!;
  if (!Number.isInteger(micro) || micro < 1) throw new GraphError(`micro-batch must be a positive integer, got ${micro}`);
  if (micro >= B) return build(x, 0, B);
  const parts: Value[][] = [];
  for (let b = 0; b < B; b += micro) parts.push(build(slice(x, [b], [Math.min(B, b + micro)], [0]), b, Math.min(micro, B - b)));
  return parts[0]!.map((_, i) => concat(parts.map((q) => q[i]!), 0));
}

/**
 * Inference-graph Segmenter(+CTS) over x [B,3,H,W] in micro-batches of `microBatch` images (see
 * MICRO_BATCH): the logits [B,K,H,W] (or what `reduce` makes of each micro-batch's logits, e.g. a
 * per-image probe for timing) and, with sharing, the shared-superpatch masks. The policy network runs
 * once on the whole batch (its convolutions are ~2x less efficient per image at 1-2 images) and each
 * micro-batch takes its slice of the policy logits or scores.
 */
export function buildCtsSegmenterMicroBatched(
  x: Value, p: ParamFn, cfg: SegmenterConfig, o: CtsBuildOptions & { microBatch: number; reduce?: (logits: Value) => Value },
): { logits: Value; maskShared?: Value } {
  const { microBatch, reduce, ...co } = o;
  let policy = co.policy;
  if (policy?.kind === 'policy_net' && (co.numShared ?? 0) > 0 && microBatch < x.shape[0]!) {
    if (policy.bnMode === 'train') throw new GraphError('micro-batches need the eval-mode policy network (train-mode BatchNorm mixes the images of a batch)');
    policy = { kind: 'logits', logits: buildPolicyNet(x, prefixed(p, 'policy_net.'), { bnMode: 'eval', ...(policy.width !== undefined ? { width: policy.width } : {}) }).logits };
  }
  const [logits, maskShared] = inMicroBatches(x, microBatch, (xb, start, size) => {
    const part = (v: Value) => (size === x.shape[0] ? v : slice(v, [start], [start + size], [0]));
    const src = policy?.kind === 'logits' ? { kind: 'logits' as const, logits: part(policy.logits) }
      : policy?.kind === 'scores' ? { kind: 'scores' as const, scores: part(policy.scores) } : policy;
    const out = buildCtsSegmenter(xb, p, cfg, { ...co, ...(src ? { policy: src } : {}) });
    const l = reduce ? reduce(out.logits) : out.logits;
    return out.plan ? [l, out.plan.maskShared] : [l];
  });
  return { logits: logits!, ...(maskShared ? { maskShared } : {}) };
}

/** Prefixes a ParamFn, e.g. for the policy net's `policy_net.` names inside a Segmenter checkpoint. */
export function prefixed(p: ParamFn, prefix: string): ParamFn {
  return (name) => p(prefix + name);
}

/** Builds Segmenter with token sharing on a normalised crop x [B,3,H,W], H and W multiples of 32. */
export function buildCtsSegmenter(x: Value, p: ParamFn, cfg: SegmenterConfig, o: CtsBuildOptions = {}): CtsOutputs {
  const [, , h, w] = x.shape as [number, number, number, number];
  const S = o.numShared ?? 0;
  // S = 0 (no sharing) is the plain Segmenter at any input size, whatever the policy
  const budget = tokenBudget(h, w, cfg.patch_size, S, o.numNotShared);
  if (budget.numShared === 0) return { ...buildSegmenter(x, p, cfg, o), budget };
  const policy = o.policy;
  if (!policy) throw new GraphError(`num_shared ${S} needs a policy (policy logits, scores or the policy network)`);
  let scores: Value;
  let policyLogits: Value | undefined;
  let policyStats: Map<string, Value> | undefined;
  if (policy.kind === 'scores') scores = policy.scores;
  else {
    if (policy.kind === 'logits') policyLogits = policy.logits;
    else {
      // The official forward runs the policy net on the unpadded crop (segmenter.py), before padding.
      const net = buildPolicyNet(x, prefixed(p, 'policy_net.'), { bnMode: policy.bnMode ?? 'eval', ...(policy.width !== undefined ? { width: policy.width } : {}) });
      policyLogits = net.logits;
      policyStats = new Map([...net.runningStats].map(([k, v]) => [`policy_net.${k}`, v]));
    }
    const want = [x.shape[0], 2, budget.sh, budget.sw];
    if (policyLogits.shape.some((d, i) => d !== want[i]) || policyLogits.rank !== 4) {
      throw new GraphError(`policy logits ${policyLogits} do not match [${want.join(',')}] for a ${h}x${w} input`);
    }
    scores = shareScores(policyLogits);
  }
  if (scores.shape[0] !== x.shape[0] || scores.shape[1] !== budget.sh * budget.sw) {
    throw new GraphError(`share scores ${scores} do not match [${x.shape[0]},${budget.sh * budget.sw}]`);
  }
  const plan = planSharing(scores, budget);
  const out = buildSegmenter(x, p, cfg, { ...o, layout: sharingLayout(plan, budget), padMultiple: 2 * cfg.patch_size });
  return { ...out, budget, plan, ...(policyLogits ? { policyLogits } : {}), ...(policyStats ? { policyStats } : {}) };
}

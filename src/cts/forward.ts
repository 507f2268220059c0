// One forward pass on typed arrays: the library form of `cts-seg forward`, for checking cts-seg
// against other implementations (weights in the official naming, normalised input, optional
// policy logits and token budget).
import { Graph } from '../graph/index.js';
import { CompiledGraph, type Provider } from '../runtime/session.js';
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { constantParams, type Precision } from '../nn/params.js';
import { inferSegmenterConfig } from '../models/weights.js';
import type { SegmenterConfig } from '../models/config.js';
import { buildCtsSegmenter } from './segmenter.js';

/** Options of segmenterForward. */
export interface ForwardOptions {
  /** Model configuration; inferred from the tensor shapes (and metadata) when omitted. */
  config?: SegmenterConfig;
  /** Encoder / decoder heads where they are not d_model/64 (used only when inferring). */
  encoderHeads?: number;
  decoderHeads?: number;
  /** safetensors metadata of the weights (used only when inferring). */
  metadata?: Record<string, string>;
  /** Policy logits [B,2,H/32,W/32] float32; numShared > 0 needs these or policyScores. */
  policyLogits?: HostTensor;
  /** p(share) scores [B, H/32*W/32] float32 instead of logits (oracle and random policies, see policies.ts). */
  policyScores?: HostTensor;
  /** Shared superpatches S (default 0: no sharing). */
  numShared?: number;
  /** Optional N1, checked against S (N1 + 4S = patch count). */
  numNotShared?: number;
  /** Also return the intermediates of the reference files. */
  intermediates?: boolean;
  provider?: Provider;
  /** float32 (default) or int8 products (see constantParams). */
  precision?: Precision;
}

/** Result of segmenterForward. */
export interface ForwardResult {
  /** [B,K,H,W] float32. */
  logits: HostTensor;
  /** [B,H/32,W/32] uint8 (1 = shared) when sharing is on. */
  maskShared?: HostTensor;
  /** Named intermediates (tokens_embedded, encoder_out, decoder_masks_tokens, decoder_masks_grid, mask_scale1, policy_code) when asked. */
  intermediates?: Record<string, HostTensor>;
  config: SegmenterConfig;
  /** Tokens entering the encoder per image, CLS excluded. */
  numTokens: number;
}

/** Runs Segmenter(+CTS) once on a normalised batch [B,3,H,W] float32. */
export async function segmenterForward(weights: Map<string, HostTensor>, input: HostTensor, o: ForwardOptions = {}): Promise<ForwardResult> {
  if (input.dtype !== 'float32' || input.shape.length !== 4 || input.shape[1] !== 3) {
    throw new CtsError(`input must be float32 [B,3,H,W] (normalised), got ${input.dtype} [${input.shape.join(',')}]`);
  }
  const config = o.config ?? inferSegmenterConfig(weights, { ...o, ...(o.metadata ? { metadata: o.metadata } : {}) });
  const S = o.numShared ?? 0;
  if (S > 0 && !o.policyLogits && !o.policyScores) throw new CtsError(`num_shared ${S} needs policy logits [B,2,H/32,W/32] or scores`);
  const g = new Graph();
  const x = g.input('input', input.shape, 'float32');
  const logitsIn = S > 0 && o.policyLogits ? g.input('policy_logits', o.policyLogits.shape, 'float32') : undefined;
  const scoresIn = S > 0 && !logitsIn && o.policyScores ? g.input('policy_scores', o.policyScores.shape, 'float32') : undefined;
  const out = buildCtsSegmenter(x, constantParams(g, weights, { precision: o.precision ?? 'fp32' }), config, {
    numShared: S,
    ...(o.numNotShared !== undefined ? { numNotShared: o.numNotShared } : {}),
    ...(logitsIn ? { policy: { kind: 'logits' as const, logits: logitsIn } } : {}),
    ...(scoresIn ? { policy: { kind: 'scores' as const, scores: scoresIn } } : {}),
  });
  g.output('logits', out.logits);
  if (out.plan) g.output('mask_shared', out.plan.maskShared);
  if (o.intermediates) {
    g.output('tokens_embedded', out.tokensEmbedded);
    g.output('encoder_out', out.encoderOut);
    g.output('decoder_masks_tokens', out.masksTokens);
    g.output('decoder_masks_grid', out.masksGrid);
    if (out.plan) {
      g.output('mask_scale1', out.plan.maskNotShared);
      g.output('policy_code', out.plan.policyCode);
    }
  }
  const sess = await CompiledGraph.compile(g, o.provider ? { provider: o.provider } : {});
  try {
    const res = await sess.run({
      input,
      ...(o.policyLogits ? { policy_logits: o.policyLogits } : {}),
      ...(o.policyScores ? { policy_scores: o.policyScores } : {}),
    });
    const { logits, mask_shared, ...rest } = res;
    return {
      logits: logits!,
      ...(mask_shared ? { maskShared: mask_shared } : {}),
      ...(o.intermediates ? { intermediates: rest } : {}),
      config,
      numTokens: out.budget.numTokens,
    };
  } finally {
    await sess.release();
  }
}

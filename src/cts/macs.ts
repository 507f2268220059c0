// Per-image MACs of Segmenter(+CTS) at a budget, counted on the graph that inference builds (the
// counter itself lives beside the graph, src/graph/macs.ts). The budget goes through resolveSharing
// like every other consumer's, so info and bench count the model that would run.
import { Graph, attributeMacs, countMacs } from '../graph/index.js';
import type { SegmenterConfig } from '../models/config.js';
import { inputParams } from '../nn/params.js';
import { checkpointSpec } from './checkpoint.js';
import { buildCtsSegmenter } from './segmenter.js';
import { resolveSharing } from './spec.js';
import type { TokenBudget } from './budget.js';

/** Per-image MACs of Segmenter(+CTS), split as spec §9.3's table. */
export interface SegmenterMacs {
  /** Everything the logits need. */
  total: number;
  /** Policy network (0 without sharing). */
  policy: number;
  /** Patch embedding and transformer blocks. */
  encoder: number;
  /** Decoder up to the per-token class scores on the grid. */
  decoder: number;
  /** The final bilinear upsample to the input size (4 per output element). */
  upsample: number;
  /** Tokens entering the encoder, CLS excluded. */
  tokens: number;
  /** The budget counted (resolveSharing's, so an impossible one has already thrown). */
  budget: TokenBudget;
  byOp: Record<string, number>;
}

/** Options of segmenterMacs. */
export interface SegmenterMacsOptions {
  /** Input (height, width); default the config's pos grid times the patch size. */
  size?: [number, number];
  /** Shared superpatches S (default 0). With S > 0 the policy network is in the graph. */
  numShared?: number;
  /** Policy network width multiplier (default 1 = EfficientNet-Lite0). */
  policyWidth?: number;
}

/**
 * Builds the batch-1 graph (parameters as graph inputs, so no weights are allocated) and counts
 * its MACs. Graph construction only: no ORT session, fast even for ViT-L.
 */
export function segmenterMacs(cfg: SegmenterConfig, o: SegmenterMacsOptions = {}): SegmenterMacs {
  const size = o.size ?? [cfg.pos_grid[0] * cfg.patch_size, cfg.pos_grid[1] * cfg.patch_size];
  // the benchmark protocol times the policy network whenever tokens are shared
  const sharing = resolveSharing({ policy: 'policy_net', numShared: o.numShared ?? 0, ...(o.policyWidth !== undefined ? { policyWidth: o.policyWidth } : {}) }, {}, { size, patchSize: cfg.patch_size });
  const g = new Graph();
  const x = g.input('input', [1, 3, size[0], size[1]]);
  const { p } = inputParams(g, checkpointSpec(cfg, sharing));
  const out = buildCtsSegmenter(x, p, cfg, {
    numShared: sharing.numShared,
    ...(sharing.policy === 'policy_net' ? { policy: { kind: 'policy_net' as const, bnMode: 'eval' as const, ...(sharing.policyWidth !== undefined ? { width: sharing.policyWidth } : {}) } } : {}),
  });
  const parts = attributeMacs(g, [
    ['policy', out.policyLogits],
    ['encoder', out.encoderOut],
    ['decoder', out.masksGrid],
    ['upsample', out.logits],
  ]);
  const { total, byOp } = countMacs(g, [out.logits]);
  return {
    total,
    policy: parts.policy!,
    encoder: parts.encoder!,
    decoder: parts.decoder!,
    upsample: parts.upsample!,
    tokens: out.budget.numTokens,
    budget: sharing.budget,
    byOp,
  };
}

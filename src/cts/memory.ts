// An estimate of the memory a compiled model graph needs, checked before the graph is built: a crop
// or batch nobody bounded (a checkpoint claiming a 100000x100000 crop, --window-batch 100000) would
// otherwise spend minutes resizing positional embeddings and die inside ONNX Runtime's allocator.
import { CtsError } from '../base/errors.js';
import type { SegmenterConfig } from '../models/config.js';

/**
 * The limit when the caller gives none: the Node platform sets the machine's memory; elsewhere (a
 * browser tab, whose WebAssembly heap tops out near 4 GiB) it stays at this.
 */
let defaultLimit = 4 * 2 ** 30;

/** Sets the default graph memory limit (the Node platform: the machine's total memory). */
export function setDefaultGraphMemoryLimit(bytes: number): void {
  defaultLimit = bytes;
}

/** The default graph memory limit in bytes. */
export function defaultGraphMemoryLimit(): number {
  return defaultLimit;
}

/** What drives the estimate of one compiled graph. */
export interface GraphShape {
  /** Input (height, width). */
  size: readonly [number, number];
  batch: number;
  /** Images whose attention is held at once (the graph's micro-batch; default the batch). */
  microBatch?: number;
  /** Encoder tokens per image without the CLS token (fewer than the patches with sharing). */
  tokens?: number;
}

/**
 * Peak bytes of a forward pass, roughly: the larger of the encoder's and the decoder's attention
 * (scores and softmax, heads x tokens^2 floats each, per micro-batch), the token activations (the
 * MLP's d_ff wide) and the pixel-sized tensors (input, upsampled logits). An order of magnitude,
 * meant to refuse the impossible, not to predict ONNX Runtime's arena.
 */
export function estimateGraphBytes(cfg: SegmenterConfig, g: GraphShape): number {
  const [h, w] = g.size, f = 4;
  const patches = Math.ceil(h / cfg.patch_size) * Math.ceil(w / cfg.patch_size);
  const n = (g.tokens ?? patches) + 1, nd = patches + cfg.n_cls;
  const micro = Math.min(g.microBatch ?? g.batch, g.batch);
  const attention = Math.max(cfg.n_heads * n * n, cfg.decoder === 'mask_transformer' ? cfg.decoder_n_heads * nd * nd : 0) * 2 * f * micro;
  const tokens = Math.max(n, nd) * (4 * cfg.d_model + Math.max(cfg.d_ff, cfg.decoder_d_ff)) * f * micro;
  const pixels = h * w * (3 + 2 * cfg.n_cls) * f * g.batch;
  return attention + tokens + pixels;
}

/** Bytes in GB (10^9) with two decimals, or MB below one GB. */
export function formatBytes(b: number): string {
  if (b >= 1e15) return `${(b / 1e15).toPrecision(3)} PB`;
  if (b >= 1e12) return `${(b / 1e12).toPrecision(3)} TB`;
  return b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / 1e6).toFixed(1)} MB`;
}

/**
 * Refuses a graph whose estimated memory exceeds `limit` (default: defaultGraphMemoryLimit), naming
 * the size, the estimate and how to raise the limit.
 */
export function checkGraphMemory(cfg: SegmenterConfig, g: GraphShape, limit = defaultLimit, what = 'the model'): void {
  const est = estimateGraphBytes(cfg, g);
  if (est <= limit) return;
  const [h, w] = g.size;
  throw new CtsError(`${what} at ${h}x${w}${g.batch > 1 ? ` with a batch of ${g.batch}` : ''} needs about ${formatBytes(est)} of memory ` +
    `(attention over ${(g.tokens ?? Math.ceil(h / cfg.patch_size) * Math.ceil(w / cfg.patch_size)) + 1} tokens x ${cfg.n_heads} heads), over the limit of ${formatBytes(limit)}; ` +
    'use a smaller size or batch, or raise the limit with --max-memory GB (the maxMemory option)');
}

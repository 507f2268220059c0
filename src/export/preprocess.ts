// In-graph preprocessing for exported models: the raw RGB bytes a browser canvas gives (HWC, alpha
// dropped) become the normalised NCHW float32 crop the model was trained on, so a web page or a Node
// service only copies pixels and never re-implements the normalisation.
import { GraphError, cast, constant, div, sub, transpose, type Graph, type Value } from '../graph/index.js';

/** Per-channel RGB mean and std in 0..255 units. */
export interface ExportNormalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/**
 * Declares the uint8 input `name` [B,H,W,3] and returns it with its normalised float32 [B,3,H,W]
 * view. The arithmetic is (float(x) - mean) / std in float32: subtracting a float32 mean from an
 * integer is exact and the division is correctly rounded, which is what the library's own float64
 * normaliser rounds to, so the logits match its preprocessing.
 */
export function rgbInput(g: Graph, name: string, batch: number, h: number, w: number, norm: ExportNormalization): { input: Value; x: Value } {
  if (norm.std.some((s) => !(s > 0))) throw new GraphError(`normalisation std must be positive, got [${norm.std.join(', ')}]`);
  const input = g.input(name, [batch, h, w, 3], 'uint8');
  const chw = transpose(cast(input, 'float32'), [0, 3, 1, 2]);
  const mean = constant(g, 'float32', [1, 3, 1, 1], norm.mean);
  const std = constant(g, 'float32', [1, 3, 1, 1], norm.std);
  return { input, x: div(sub(chw, mean), std) };
}

/**
 * The same normalisation on the host, for feeding a float graph the exact values the uint8 graph
 * computes: rgb is [B,H,W,3] bytes, the result [B,3,H,W] float32.
 */
export function normalizeRgb(rgb: Uint8Array, batch: number, h: number, w: number, norm: ExportNormalization): Float32Array {
  if (rgb.length !== batch * h * w * 3) throw new GraphError(`expected ${batch}x${h}x${w}x3 RGB bytes, got ${rgb.length}`);
  const out = new Float32Array(batch * 3 * h * w);
  const plane = h * w;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < 3; c++) {
      const mean = Math.fround(norm.mean[c]!), std = Math.fround(norm.std[c]!);
      const dst = (b * 3 + c) * plane, src = b * plane * 3 + c;
      for (let i = 0; i < plane; i++) out[dst + i] = Math.fround(rgb[src + 3 * i]! - mean) / std;
    }
  }
  return out;
}

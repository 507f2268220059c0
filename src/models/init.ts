// Parameter initialisation as in the official code (segm/model/vit.py, decoder.py init_weights):
// Linear trunc_normal(std 0.02) with zero bias, LayerNorm 1/0, cls_token/pos_embed/cls_emb
// trunc_normal(0.02), proj_patch/proj_classes D^-0.5 * N(0,1), patch-embedding conv as PyTorch's
// default (kaiming-uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))). Seeded.
import type { HostTensor } from '../base/tensor.js';
import type { ParamSpec } from '../nn/params.js';
import { createRng, type Rng } from '../base/rng.js';

/** Normal(0, std) truncated to +-2 std (resampled), as timm's trunc_normal_ at small std. */
function truncNormal(n: number, std: number, r: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = r.normal();
    while (Math.abs(v) > 2) v = r.normal();
    out[i] = v * std;
  }
  return out;
}

/** Fresh weights for every float entry of a Segmenter spec (names decide the rule). */
export function initSegmenterWeights(spec: ParamSpec, seed = 0): Map<string, HostTensor> {
  const r = createRng(seed);
  const out = new Map<string, HostTensor>();
  for (const [name, { shape, dtype }] of spec) {
    const n = shape.reduce((a, b) => a * b, 1);
    const parts = name.split('.');
    const leaf = parts[parts.length - 1]!, owner = parts[parts.length - 2] ?? '';
    let data: Float32Array;
    if (/norm/.test(owner)) data = new Float32Array(n).fill(leaf === 'weight' ? 1 : 0);
    else if (leaf === 'proj_patch' || leaf === 'proj_classes') data = Float32Array.from({ length: n }, () => r.normal() * shape[0]! ** -0.5);
    else if (name === 'encoder.patch_embed.proj.weight' || name === 'encoder.patch_embed.proj.bias') {
      const fanIn = 3 * (spec.get('encoder.patch_embed.proj.weight')!.shape[2]! ** 2);
      const bound = 1 / Math.sqrt(fanIn);
      data = Float32Array.from({ length: n }, () => (2 * r.uniform() - 1) * bound);
    } else if (leaf === 'bias') data = new Float32Array(n);
    else data = truncNormal(n, 0.02, r);
    out.set(name, { dtype, shape: [...shape], data });
  }
  return out;
}

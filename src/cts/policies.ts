// Policies other than the learned network, for ablations: the ground-truth oracle (spec §2.2: a
// superpatch is shareable when its 32x32 label block holds one value) and a seeded random policy.
// Both produce p(share)-like scores [B, sh*sw]; the in-graph top-S selection does the rest, ties
// going to the lower superpatch index.
import { CtsError } from '../base/errors.js';
import type { HostTensor } from '../base/tensor.js';
import { createRng } from '../base/rng.js';

/** Label conventions for policy ground truth. */
export interface PolicyLabelOptions {
  /** Superpatch side in pixels (2 x patch; default 32). */
  block?: number;
  /** Ignore value (default 255). */
  ignore?: number;
  /** Map raw label 0 to ignore first (ADE20K and Pascal-Context do; default false). */
  zeroIsIgnore?: boolean;
  /** ADE20K's rule: "one class + ignore" blocks on the grid border get 255 (ignored by the loss). */
  borderRule?: boolean;
}

/**
 * Policy-network targets of one label map [h, w] (spec §2.2): 1 where the block is uniform (ignore
 * counts as a value, so an all-ignore block is 1), else 0, and 255 for ADE's border blocks that
 * hold one class plus ignore. Returns a Uint8Array of (h/block) x (w/block), row-major.
 */
export function policyTargets(label: ArrayLike<number>, h: number, w: number, o: PolicyLabelOptions = {}): Uint8Array {
  const bs = o.block ?? 32, ignore = o.ignore ?? 255;
  if (h % bs || w % bs) throw new CtsError(`label map ${h}x${w} is not a multiple of the ${bs}px superpatch`);
  if (label.length !== h * w) throw new CtsError(`label has ${label.length} values, expected ${h}x${w}`);
  const sh = h / bs, sw = w / bs;
  const out = new Uint8Array(sh * sw);
  for (let i = 0; i < sh; i++) {
    for (let j = 0; j < sw; j++) {
      let mx = -Infinity, mn = Infinity, mxValid = -Infinity;
      for (let y = i * bs; y < (i + 1) * bs; y++) {
        for (let x = j * bs; x < (j + 1) * bs; x++) {
          let v = label[y * w + x]!;
          if (o.zeroIsIgnore && v === 0) v = ignore;
          if (v > mx) mx = v;
          if (v < mn) mn = v;
          if (v !== ignore && v > mxValid) mxValid = v;
        }
      }
      let t = mx === mn ? 1 : 0;
      const border = i === 0 || j === 0 || i === sh - 1 || j === sw - 1;
      if (o.borderRule && t === 0 && mxValid === mn && border) t = 255;
      out[i * sw + j] = t;
    }
  }
  return out;
}

/** Oracle scores from labels [B,H,W] (uint8/int): 1 for uniform superpatches, 0 otherwise. */
export function oracleScores(labels: HostTensor, o: PolicyLabelOptions = {}): HostTensor {
  if (labels.shape.length !== 3) throw new CtsError(`oracle policy needs labels [B,H,W], got [${labels.shape.join(',')}]`);
  const [b, h, w] = labels.shape as [number, number, number];
  const bs = o.block ?? 32;
  const per = (h / bs) * (w / bs);
  const data = new Float32Array(b * per);
  const src = labels.data instanceof BigInt64Array ? Float64Array.from(labels.data, Number) : (labels.data as ArrayLike<number>);
  for (let i = 0; i < b; i++) {
    const view = Array.prototype.slice.call(src, i * h * w, (i + 1) * h * w) as number[];
    const t = policyTargets(view, h, w, { ...o, borderRule: false });
    for (let k = 0; k < per; k++) data[i * per + k] = t[k] === 1 ? 1 : 0;
  }
  return { dtype: 'float32', shape: [b, per], data };
}

/** Seeded uniform random scores [B, n], for the random-policy ablation. */
export function randomScores(b: number, n: number, seed: number): HostTensor {
  const r = createRng(seed);
  return { dtype: 'float32', shape: [b, n], data: Float32Array.from({ length: b * n }, () => r.uniform()) };
}

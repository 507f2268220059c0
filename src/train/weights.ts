// Initial weights of a training run: pretrained encoder weights a user brings (our safetensors,
// AugReg .npz or a PyTorch .pth, positional embedding resized to the crop's grid) and the frozen
// policy network. Unlike the official code, a missing or mismatched policy checkpoint is an error.
import { CtsError } from '../base/errors.js';
import { loadStateDict } from '../io/safetensors.js';
import { readSafetensors } from '../io/safetensors.node.js';
import type { HostTensor } from '../base/tensor.js';
import type { SegmenterConfig } from '../models/config.js';
import { segmenterSpec } from '../models/segmenter.js';
import { initSegmenterWeights } from '../models/init.js';
import { policyNetSpec } from '../models/policynet.js';
import { resizePosEmbed } from '../models/vit.js';
import { importWeights } from '../models/import.node.js';

/**
 * Fresh weights with the pretrained tensors a file provides laid over them: every tensor of the file
 * must be a model parameter of the right shape (pos_embed is resized when only its grid differs);
 * parameters the file lacks (typically the decoder) keep their fresh initialisation.
 */
export async function loadInitialWeights(path: string, model: SegmenterConfig, seed: number): Promise<Map<string, HostTensor>> {
  const spec = segmenterSpec(model);
  const grid = model.pos_grid;
  const file = /\.safetensors$/i.test(path) ? (await readSafetensors(path)).tensors : (await importWeights(path, { grid })).tensors;
  const out = initSegmenterWeights(spec, seed);
  const bad: string[] = [];
  let used = 0;
  for (const [k, t0] of file) {
    if (k.startsWith('encoder.head.') || k.startsWith('policy_net.')) continue;
    const want = spec.get(k);
    if (!want) {
      bad.push(`unexpected ${k}`);
      continue;
    }
    let t = t0;
    if (k === 'encoder.pos_embed' && t.shape[1] !== want.shape[1]) {
      const n0 = t.shape[1]! - 1, g0 = Math.round(Math.sqrt(n0));
      if (g0 * g0 !== n0) {
        bad.push(`encoder.pos_embed holds ${n0} positions, not a square grid`);
        continue;
      }
      t = resizePosEmbed(t, [g0, g0], grid);
    }
    if (t.shape.join(',') !== want.shape.join(',')) {
      bad.push(`${k}: file [${t.shape.join(',')}], model expects [${want.shape.join(',')}]`);
      continue;
    }
    out.set(k, t);
    used++;
  }
  if (bad.length) throw new CtsError(`pretrained weights ${path} do not fit the model: ${bad.slice(0, 5).join('; ')}${bad.length > 5 ? `; …and ${bad.length - 5} more` : ''}`);
  if (used === 0) throw new CtsError(`pretrained weights ${path} hold no parameter of this model`);
  return out;
}

/**
 * The frozen policy network for Segmenter training, as `policy_net.*` tensors. Accepts the output of
 * `cts-seg train-policy` (names backbone.* and head.*), a Segmenter checkpoint with policy_net.*, or an
 * official policynet model.pth. Strict: every tensor present, no stranger, right shapes.
 */
export async function loadPolicyWeights(path: string | undefined, width?: number): Promise<{ weights: Map<string, HostTensor>; width?: number }> {
  if (!path) throw new CtsError('policy_method policy_net needs --policynet-ckpt (train one with `cts-seg train-policy`), or use --policy oracle|random|no_sharing');
  const raw = /\.safetensors$/i.test(path) ? await readSafetensors(path) : { tensors: (await importWeights(path, { kind: 'policy-pth', ...(width !== undefined ? { policyWidth: width } : {}) })).tensors, metadata: {} as Record<string, string> };
  const w = width ?? (raw.metadata.policy_width ? Number(raw.metadata.policy_width) : undefined);
  const spec = policyNetSpec(w !== undefined ? { width: w } : {});
  const tensors = new Map<string, HostTensor>();
  for (const [k, v] of raw.tensors) {
    if (k.startsWith('policy_net.')) tensors.set(k.slice('policy_net.'.length), v);
    else if (!/^(encoder|decoder|optimizer)\./.test(k)) tensors.set(k, v);
  }
  const loaded = loadStateDict(spec, tensors, { source: path });
  return { weights: new Map([...loaded].map(([k, v]) => [`policy_net.${k}`, v])), ...(w !== undefined ? { width: w } : {}) };
}
